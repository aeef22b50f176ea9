"""The console's HTTP edge: its routes under `/console`, the login gate, the CSRF check, the
security headers and HTML answers. The page modules (`relay.console.pages`) never see a request.

Every answer carries a Content-Security-Policy that allows nothing but the console's own files
(no inline script or style, no frame, forms only to itself), `X-Frame-Options: DENY`,
`X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.
The session cookie is signed (`relay.console.session`), HttpOnly, SameSite=Strict, scoped to
`/console`, and Secure when the request came over HTTPS: on the connection itself, or as a
TLS-terminating proxy says with `X-Forwarded-Proto: https` (which can only add the flag, so a
client gains nothing by sending it). Every POST must carry the session's CSRF token.
The only redirects are `303`s to fixed paths of the console.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from relay.console.page import Ask, Goto, Page, Shown
from relay.console.pages import PAGES
from relay.console.session import (
    COOKIE,
    MAX_AGE,
    Session,
    Sessions,
    csrf_matches,
    token_matches,
)
from relay.console.throttle import LoginThrottle
from relay.console.views import environment
from relay.ops.services import Services

MAX_FORM_BYTES = 1 << 20  # a confirmation form lists ids: 1 MiB holds over 100,000 of them
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

Endpoint = Callable[[Request], Awaitable[Response]]
MENU = tuple(p for p in PAGES if p.menu)


class FormTooLarge(Exception):
    pass


def _secure(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _form(request: Request) -> dict[str, list[str]]:
    """An urlencoded form, bounded in size; anything else reads as an empty form (whose
    missing CSRF token then refuses it)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge
    text = body.decode("utf-8", errors="replace")
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=10_000)
    except ValueError:  # more fields than any console form has
        raise FormTooLarge from None


class Console:
    """The console of one running relay (one admin token)."""

    def __init__(self, services: Services, admin_token: str) -> None:
        self.services = services
        self.admin_token = admin_token
        self.sessions = Sessions(admin_token)
        self.throttle = LoginThrottle(services.store)
        self.env = environment()

    # ------------------------------------------------------------ answers

    def _html(
        self,
        template: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        session: Session | None = None,
        page: Page | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        frame = {
            "csrf": session.csrf if session else "",
            "menu": MENU if session and session.authenticated else (),
            "current": (page.section or page.path) if page else None,
            "title": page.title if page else context.get("title", "relay"),
        }
        html = self.env.get_template(template).render({**context, **frame})
        response = HTMLResponse(html, status, headers={**HEADERS, **(headers or {})})
        response.headers["Cache-Control"] = "no-store"
        return response

    def _goto(self, path: str) -> Response:
        response = RedirectResponse(Goto(path).path, 303, headers=HEADERS)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _refused(self, status: int, title: str, detail: str, **headers: str) -> Response:
        context = {"title": title, "detail": detail}
        return self._html("refused.html.j2", context, status=status, headers=headers)

    def _set_session(self, response: Response, request: Request, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.sessions.dump(session),
            max_age=MAX_AGE,
            path="/console",
            secure=_secure(request),
            httponly=True,
            samesite="strict",
        )

    def _session(self, request: Request) -> Session | None:
        return self.sessions.load(request.cookies.get(COOKIE))

    # ------------------------------------------------------------ login and logout

    async def login(self, request: Request) -> Response:
        session = self._session(request)
        if request.method != "POST":
            if session and session.authenticated:
                return self._goto("/console")
            session = session or self.sessions.new(authenticated=False)
            response = self._html("login.html.j2", {"error": ""}, session=session)
            self._set_session(response, request, session)
            return response
        client = _client(request)
        wait = await self.throttle.wait(client)
        if wait:
            return self._refused(
                429,
                "Too many failed logins",
                f"Too many failed logins from your address: try again in {wait:.0f} seconds.",
                **{"Retry-After": f"{wait:.0f}"},
            )
        try:
            form = await _form(request)
        except FormTooLarge:
            return self._refused(413, "Form too large", "The form sent was too large.")
        if session is None or not csrf_matches(session, _first(form, "csrf")):
            return self._refused(403, "Form expired", "This form expired: reload the login page.")
        if not token_matches(self.admin_token, _first(form, "token")):
            await self.throttle.failed(client)
            return self._html(
                "login.html.j2", {"error": "That is not the admin token."}, status=401,
                session=session,
            )  # fmt: skip
        await self.throttle.succeeded(client)
        done = self._goto("/console")
        # a new session (and CSRF token) at login: one planted before it is worth nothing
        self._set_session(done, request, self.sessions.new(authenticated=True))
        return done

    async def logout(self, request: Request) -> Response:
        session = self._session(request)
        try:
            form = await _form(request)
        except FormTooLarge:
            return self._refused(413, "Form too large", "The form sent was too large.")
        if session is not None and not csrf_matches(session, _first(form, "csrf")):
            return self._refused(403, "Form expired", "This form expired: reload the page.")
        response = self._goto("/console/login")
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
        return response

    # ------------------------------------------------------------ pages and files

    def page(self, page: Page) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            session = self._session(request)
            if session is None or not session.authenticated:
                if request.method == "POST":
                    return self._refused(403, "Logged out", "Your session ended: log in again.")
                return self._goto("/console/login")
            path = {k: str(v) for k, v in request.path_params.items()}
            try:
                query = parse_qs(request.url.query, keep_blank_values=True, max_num_fields=100)
            except ValueError:  # more parameters than any console page reads
                query = {}
            if request.method == "POST":
                if page.act is None:  # not routed, but kept safe if it ever is
                    return self._refused(405, "Not allowed", "This page takes no form.")
                try:
                    form = await _form(request)
                except FormTooLarge:
                    return self._refused(413, "Form too large", "The form sent was too large.")
                if not csrf_matches(session, _first(form, "csrf")):
                    return self._refused(
                        403, "Form expired", "This form expired or came from elsewhere: reload."
                    )
                answer = await page.act(Ask(self.services, query, form, path))
            else:
                answer = await page.show(Ask(self.services, query, path=path))
            if isinstance(answer, Goto):
                return self._goto(answer.path)
            assert isinstance(answer, Shown)
            return self._html(
                answer.template, answer.context, status=answer.status, session=session,
                page=page,
            )  # fmt: skip

        return endpoint

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        kind = next((t for ext, t in STATIC_TYPES.items() if name.endswith(ext)), None)
        folder = resources.files("relay.console").joinpath("static")
        if kind is None or "/" in name or name.startswith("."):
            return self._refused(404, "Not found", "No such file.")
        file = folder.joinpath(name)
        if not file.is_file():
            return self._refused(404, "Not found", "No such file.")
        return Response(file.read_bytes(), media_type=kind, headers=HEADERS)


def _first(form: Mapping[str, Sequence[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


def console_routes(services: Services) -> list[BaseRoute]:
    """The console's routes; none (so `/console` is a plain `404`) without an admin token."""
    token = services.admin_token
    if not token:
        return []
    console = Console(services, token)
    routes: list[BaseRoute] = [
        Route("/console/login", console.login, methods=["GET", "POST"]),
        Route("/console/logout", console.logout, methods=["POST"]),
        Route("/console/static/{name}", console.static, methods=["GET"]),
    ]
    for page in PAGES:
        methods = ["GET", "POST"] if page.act is not None else ["GET"]
        routes.append(Route(f"/console{page.path}", console.page(page), methods=methods))
    return routes
