"""The console's pages, one module each, listed in menu order in `PAGES`.

To add a page: a module here with a `PAGE` (`relay.console.page.Page`: its path, menu title,
`show` for GET and optional `act` for POST, each taking an `Ask` and returning `Shown` or
`Goto`), a template `relay/console/templates/<name>.html.j2` that extends `base.html.j2`, and
its `PAGE` in `PAGES` below. The frame (`relay.console.frame`) gives it the login gate, the
CSRF check, the security headers and the menu.
"""

from __future__ import annotations

from relay.console.page import Page
from relay.console.pages import dead, overview

PAGES: tuple[Page, ...] = (overview.PAGE, dead.PAGE)
