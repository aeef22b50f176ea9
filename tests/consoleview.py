"""Test helper: read a console page as a browser would, without running one: every tag and
attribute (to find script, event handlers and links) and the text a reader sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class PageView:
    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    text: str = ""
    inline_script: str = ""  # any text inside a <script> element (none may be there)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def hidden(self, name: str) -> list[str]:
        """The values of the hidden inputs called `name`, in page order."""
        return [
            a.get("value", "")
            for a in self.all("input")
            if a.get("type") == "hidden" and a.get("name") == name
        ]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.view = PageView()
        self.parts: list[str] = []

        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.view.tags.append((tag, {k: v or "" for k, v in attrs}))
        self.in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_script = False

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if self.in_script:
            self.view.inline_script += data
            return
        self.parts.append(data)


def read(html: str) -> PageView:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    reader.view.text = "".join(reader.parts)
    return reader.view


def assert_inert(view: PageView) -> None:
    """Nothing on the page runs or links anywhere but relay and http(s): no script but the
    console's own static files (no inline script), no inline handler, no `javascript:`/`data:`
    link, no frame or object, no inline style."""
    assert view.inline_script.strip() == "", view.inline_script[:200]
    for tag, attrs in view.tags:
        if tag == "script":
            assert set(attrs) <= {"src", "defer"}, attrs
            assert attrs.get("src", "").startswith("/console/static/"), attrs
            continue
        assert tag not in ("script", "iframe", "object", "embed", "img", "base", "meta") or (
            tag == "meta" and set(attrs) <= {"charset", "name", "content"}
        ), (tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            assert name != "style", (tag, attrs)
            if name in ("href", "src", "action", "formaction"):
                ok = value.startswith(("/console", "http://", "https://")) or value == "data:,"
                assert ok, (tag, name, value)
