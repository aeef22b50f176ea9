"""The console's pages, one module each, listed in menu order in `PAGES`.

To add a page: a module here with a `PAGE` (`relay.console.page.Page`: its path, menu title,
`show` for GET and optional `act` for POST, each taking an `Ask` and returning `Shown` or
`Goto`), a template `relay/console/templates/<name>.html.j2` that extends `base.html.j2`, and
its `PAGE` in `PAGES` below (`menu=False` for a page reached from another, such as one
event). The frame (`relay.console.frame`) gives it the login gate, the
CSRF check, the security headers and the menu.
"""

from __future__ import annotations

from relay.console.page import Page
from relay.console.pages import dead, event, events, overview, silences

# `events.NEW` before `event.PAGE`: both are under /events (the latter's `{id}` is a number)
PAGES: tuple[Page, ...] = (
    overview.PAGE,
    events.PAGE,
    events.NEW,
    event.PAGE,
    dead.PAGE,
    silences.PAGE,
)
