"""The web console at `/console`: server-rendered pages for operators, on only when
`RELAY_ADMIN_TOKEN` is set.

- `frame.py` is the console's HTTP edge: its routes, the login gate, the CSRF check on every
  POST, the security headers of every answer, the Jinja environment and the static files. It
  alone sees a Starlette `Request`.
- `session.py` signs the session cookie (a key derived from the admin token, so replicas agree)
  and compares tokens in constant time; `throttle.py` slows down failed logins per client.
- `pages/` holds one small module per page (a `Page`: its path, its title in the menu, a `show`
  for GET and an optional `act` for POST) with one template of the same name under
  `templates/`; `pages/__init__.py` lists them in menu order.
- `views.py` has what templates share (safe links, times), `charts.py` server-side SVG charts,
  `preview.py` a message laid out as its chat shows it (the event page).
- `static/` holds the stylesheet and `live.js`, the one script (the events list's live rows);
  every page works without it.
"""

from __future__ import annotations

from relay.console.frame import console_routes

__all__ = ["console_routes"]
