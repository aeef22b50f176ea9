"""What a console page is and what it returns (the page modules are in `relay.console.pages`).

A page is a `Page`: a path under `/console`, a title for the menu, `show` (GET) and, when the
page has forms that change something, `act` (POST). Both take an `Ask` (the query string, the
form, the running services) and return `Shown` (a template of `relay/console/templates/` and
its context) or `Goto` (a path of the console to go to, as `303 See Other`). They never see an
HTTP request: `relay.console.frame` checks the login and the CSRF token before calling them and
turns their answer into HTML.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.ops.services import Services


@dataclass(frozen=True, slots=True)
class Ask:
    """What a page is asked: the query string and form fields (each name with all its values,
    in order), and the running relay."""

    services: Services
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    form: Mapping[str, Sequence[str]] = field(default_factory=dict)
    path: Mapping[str, str] = field(default_factory=dict)  # the path's `{name}` parts

    def part(self, name: str) -> str:
        """A `{name}` part of the page's path (`/events/{id}`)."""
        return self.path.get(name, "")

    def arg(self, name: str, default: str = "") -> str:
        """A query parameter's first value, stripped."""
        values = self.query.get(name)
        return values[0].strip() if values else default

    def field(self, name: str, default: str = "") -> str:
        """A form field's first value, stripped."""
        values = self.form.get(name)
        return values[0].strip() if values else default

    def fields(self, name: str) -> list[str]:
        return list(self.form.get(name, ()))


@dataclass(frozen=True, slots=True)
class Shown:
    """A page to show: a template and its context (`status` for the HTTP answer)."""

    template: str
    context: Mapping[str, Any]
    status: int = 200


@dataclass(frozen=True, slots=True)
class Goto:
    """Go to another console page (a path starting with `/console`) with `303 See Other`."""

    path: str

    def __post_init__(self) -> None:
        # a fixed path of the console's own: never an address built from the request
        if not (self.path == "/console" or self.path.startswith(("/console/", "/console?"))):
            raise ValueError("a console redirect must stay inside /console")


Answer = Shown | Goto
Handler = Callable[[Ask], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Page:
    path: str  # under /console: "" for the overview, "/dead", "/events/{id}", ...
    title: str  # in the menu and the page's <title>
    show: Handler
    act: Handler | None = None
    menu: bool = True  # listed in the menu (a page reached from another one is not)
    section: str | None = None  # the menu entry it belongs to, when it is not one itself
