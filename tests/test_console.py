"""The web console's server side, in-process through httpx's ASGI transport, on SQLite and the
real PostgreSQL: off without an admin token, the login (cookie flags, throttle, CSRF), the
security headers, the overview and the dead letters page with its actions, with hostile event
text that must show as text. The browser test is tests/test_console_browser.py."""

from __future__ import annotations

import io
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from consoleview import assert_inert, read
from inbox import accept
from oldschema import store_at

from relay.config import load_config
from relay.console.throttle import LoginThrottle
from relay.event import Event
from relay.http.app import build_app
from relay.messages import Blocks, Button, Card
from relay.ops.services import Services
from relay.records import NewMessage, Reason, Settlement, Status
from relay.server import build_services
from relay.store.schema import VERSION

TOKEN = "console-admin-token-Zq81xT"
SLACK_TOKEN = "xoxb-console-secret-77"
CONFIG = f"""
sources:
  anchor: {{provider: anchor, secrets: [console-signing-secret-93]}}
slack: {{token: {SLACK_TOKEN}, api_url: "http://127.0.0.1:9/api/"}}
destinations:
  alerts: {{type: slack, channel: "#alerts"}}
  events: {{type: slack, channel: "#events"}}
  quiet: {{type: console}}
default: {{to: [events]}}
"""
SECRETS = (TOKEN, SLACK_TOKEN, "console-signing-secret-93")
LONG = "L" * 9_990 + "<END>"  # 10,000 characters
HOSTILE = [
    "<script>alert('pwned')</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(document.cookie)",
]


async def _services(tmp_path: Path, url: str, token: str | None) -> Services:
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    env = {"RELAY_DATABASE_URL": url, **({"RELAY_ADMIN_TOKEN": token} if token else {})}
    built = build_services(load_config(config, env={}), env, tmp_path, io.StringIO())
    await built.store.open()
    return built


@pytest.fixture(params=["sqlite", "postgres"])
async def services(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Services]:
    if request.param == "postgres":
        from pgschema import fresh_schema

        with fresh_schema() as url:
            built = await _services(tmp_path, url, TOKEN)
            yield built
            await built.store.close()
    else:
        built = await _services(tmp_path, f"sqlite:///{tmp_path}/relay.db", TOKEN)
        yield built
        await built.store.close()


def _client(services: Services, base: str = "http://relay") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_app(services), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base)


@pytest.fixture
async def anon(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(services) as http:
        yield http


async def csrf_of(http: httpx.AsyncClient, path: str = "/console/login") -> str:
    page = await http.get(path)
    assert page.status_code == 200, page.text
    (token,) = read(page.text).hidden("csrf")[:1]
    return token


async def log_in(http: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    csrf = await csrf_of(http)
    return await http.post("/console/login", data={"csrf": csrf, "token": token})


@pytest.fixture
async def admin(anon: httpx.AsyncClient) -> httpx.AsyncClient:
    answer = await log_in(anon)
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    return anon


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def assert_security_headers(answer: httpx.Response) -> None:
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


# ------------------------------------------------------------------ off, login, session


@pytest.mark.parametrize(
    "path",
    ["/console", "/console/login", "/console/dead", "/console/events", "/console/events/1",
     "/console/events/new", "/console/silences"],
)  # fmt: skip
async def test_without_an_admin_token_the_console_does_not_exist(tmp_path: Path, path: str) -> None:
    services = await _services(tmp_path, f"sqlite:///{tmp_path}/relay.db", None)
    try:
        async with _client(services) as http:
            for method in ("GET", "POST"):
                answer = await http.request(method, path)
                assert answer.status_code == 404
                assert answer.json() == {"error": "not_found", "detail": "no endpoint at this path"}
    finally:
        await services.store.close()


async def test_pages_need_a_login_and_the_login_page_sets_a_strict_cookie(
    anon: httpx.AsyncClient,
) -> None:
    for path in ("/console", "/console/dead", "/console/events", "/console/events/1",
                 "/console/events/new?part=rows", "/console/silences"):  # fmt: skip
        answer = await anon.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login"
        assert_security_headers(answer)
    page = await anon.get("/console/login")
    assert page.status_code == 200
    assert_security_headers(page)
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("relay_console=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    view = read(page.text)
    assert "Log in" in view.text
    assert_inert(view)
    assert_no_secret(page.text)


async def test_the_cookie_is_secure_over_https_and_behind_a_tls_proxy(
    services: Services,
) -> None:
    async with _client(services, "https://relay") as http:
        assert "Secure" in (await http.get("/console/login")).headers["set-cookie"]
    async with _client(services) as http:
        answer = await http.get("/console/login", headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in answer.headers["set-cookie"]
        answer = await log_in(http)
        assert answer.status_code == 303
        # only the header can add the flag: the login over plain HTTP is not Secure
        assert "Secure" not in answer.headers["set-cookie"]


async def test_login_with_the_admin_token_opens_a_new_session(anon: httpx.AsyncClient) -> None:
    assert anon.cookies.get("relay_console") is None
    csrf = await csrf_of(anon)
    planted = anon.cookies["relay_console"]
    wrong = await anon.post("/console/login", data={"csrf": csrf, "token": "guess"})
    assert wrong.status_code == 401
    assert "That is not the admin token." in read(wrong.text).text
    assert (await anon.get("/console")).status_code == 303
    right = await anon.post("/console/login", data={"csrf": csrf, "token": TOKEN})
    assert right.status_code == 303 and right.headers["location"] == "/console"
    assert anon.cookies["relay_console"] != planted  # the session before login is worth nothing
    overview = await anon.get("/console")
    assert overview.status_code == 200
    assert_security_headers(overview)
    assert TOKEN not in overview.text and TOKEN not in right.headers["set-cookie"]
    # the session's CSRF token is a new one too
    assert read(overview.text).hidden("csrf")[0] != csrf


async def test_a_forged_or_foreign_cookie_is_not_a_session(
    services: Services, anon: httpx.AsyncClient, tmp_path: Path
) -> None:
    await log_in(anon)
    good = anon.cookies["relay_console"]
    other = await _services(tmp_path, f"sqlite:///{tmp_path}/other.db", "another-token")
    try:
        async with _client(other) as theirs:
            await log_in(theirs, "another-token")
            foreign = theirs.cookies["relay_console"]
    finally:
        await other.store.close()
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    async with _client(services) as fresh:
        assert (await fresh.get("/console", headers={"Cookie": f"relay_console={good}"})
                ).status_code == 200  # fmt: skip
        # a changed signature, or a cookie signed for another admin token (another deployment)
        for cookie in (tampered, foreign, "", "e30"):
            answer = await fresh.get("/console", headers={"Cookie": f"relay_console={cookie}"})
            assert answer.status_code == 303, cookie


async def test_login_and_every_post_refuse_a_missing_or_foreign_csrf_token(
    services: Services, anon: httpx.AsyncClient
) -> None:
    await csrf_of(anon)
    refused = await anon.post("/console/login", data={"token": TOKEN})
    assert refused.status_code == 403
    assert "This form expired" in read(refused.text).text
    assert_security_headers(refused)
    await log_in(anon)
    async with _client(services) as other:
        foreign = await csrf_of(other)  # a valid token of another session
    await _dead_letters(services, 1)
    (row,) = await services.store.rows(Status.DEAD)
    for form in (
        {"action": "drop", "confirm": "yes", "ids": str(row.id)},
        {"action": "drop", "confirm": "yes", "ids": str(row.id), "csrf": foreign},
        {"action": "drop", "confirm": "yes", "ids": str(row.id), "csrf": ""},
    ):
        answer = await anon.post("/console/dead", data=form)
        assert answer.status_code == 403, form
    assert [r.id for r in await services.store.rows(Status.DEAD)] == [row.id]
    assert (await anon.post("/console/logout")).status_code == 403
    assert (await anon.get("/console")).status_code == 200  # still logged in


async def test_failed_logins_are_throttled_per_client(anon: httpx.AsyncClient) -> None:
    csrf = await csrf_of(anon)
    for _ in range(5):
        answer = await anon.post("/console/login", data={"csrf": csrf, "token": "nope"})
        assert answer.status_code == 401
    # now even the right token waits
    throttled = await anon.post("/console/login", data={"csrf": csrf, "token": TOKEN})
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 300
    text = read(throttled.text).text
    assert "Too many failed logins" in text and "try again in" in text
    assert_security_headers(throttled)
    assert (await anon.get("/console")).status_code == 303


async def test_logout_ends_the_session(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/console")
    csrf = read(page.text).hidden("csrf")[0]
    answer = await admin.post("/console/logout", data={"csrf": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
    assert 'relay_console=""' in answer.headers["set-cookie"]
    assert (await admin.get("/console")).status_code == 303


async def test_static_files_are_the_console_own(admin: httpx.AsyncClient) -> None:
    css = await admin.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert_security_headers(css)
    script = await admin.get("/console/static/live.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "fetch(" in script.text and "innerHTML" not in script.text and "eval(" not in script.text
    for name in ("..%2F__init__.py", "frame.py", ".hidden.css", "nope.css"):
        assert (await admin.get(f"/console/static/{name}")).status_code == 404


# ------------------------------------------------------------------ overview and dead letters


def _hostile_card(i: int) -> Card:
    return Card(
        status="failure",
        title=f"{HOSTILE[i % 3]} #{i}",
        buttons=(
            Button("evil", "javascript:alert(1)"),
            Button("proto", "//evil.example/x"),
            Button("Open session", f"https://app.example.com/s/{i}?a=1&b=2"),
        ),
    )


async def _dead_letters(
    services: Services, count: int, destination: str = "alerts", first: int = 0
) -> None:
    """`count` dead letters for `destination`, each with hostile text somewhere."""
    store = services.store
    for i in range(first, first + count):
        event = Event(
            source="anchor", provider="anchor", id=f"{destination}-{i}-{HOSTILE[i % 3]}",
            type="task.failed" if i % 2 == 0 else "session.ended", data={},
        )  # fmt: skip
        message = _hostile_card(i) if i % 2 == 0 else Blocks(LONG)
        await accept(store, event, [NewMessage(destination, f"k{i}", "t", message)], time.time())
    found = await store.claim(time.time(), time.time() + 60, rate=1e6, burst=1e6, limit=1000)
    for claim in found.claimed:
        row = claim.row
        await store.settle(
            Settlement(
                row.id, row.pace_key, Status.DEAD, Reason.CHANNEL, time.time(),
                '"><img src=x onerror=alert(2)>' if row.event_type == "task.failed" else LONG,
            )
        )  # fmt: skip


async def test_the_overview_shows_the_backlog_per_destination(
    services: Services, admin: httpx.AsyncClient
) -> None:
    await _dead_letters(services, 3)
    page = await admin.get("/console")
    assert page.status_code == 200
    view = read(page.text)
    assert_inert(view)
    backlog = re.search(r'<table class="backlog">(.*?)</table>', page.text, flags=re.S)
    assert backlog is not None
    rows = [
        re.sub(r"\s+", " ", r).strip()
        for r in re.findall(r"<tr>(.*?)</tr>", backlog.group(1), flags=re.S)
    ]
    cells = [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
        for r in rows[1:]
    ]
    # as `relay outbox` prints it: every configured destination, zeros included
    assert cells == [
        ["alerts", "0", "0", "3", "0", "0", "0", "0", "-"],
        ["events", "0", "0", "0", "0", "0", "0", "0", "-"],
        ["quiet", "0", "0", "0", "0", "0", "0", "0", "-"],
    ]
    assert "<svg" in page.text and "alerts: 3 dead" in view.text
    assert {"href": "/console/dead?destination=alerts"} in view.all("a")
    assert_no_secret(page.text)


async def test_dead_letters_show_hostile_text_as_text(
    services: Services, admin: httpx.AsyncClient
) -> None:
    await _dead_letters(services, 4)
    page = await admin.get("/console/dead")
    assert page.status_code == 200
    view = read(page.text)
    assert_inert(view)
    for text in HOSTILE:  # what a reader sees, character for character
        assert text in view.text
    assert '"><img src=x onerror=alert(2)>' in view.text
    assert LONG in view.text  # 10,000 characters, whole, as text
    assert "<script>" not in page.text and "<img" not in page.text
    links = [a["href"] for a in view.all("a")]
    assert "https://app.example.com/s/0?a=1&b=2" in links
    assert not [h for h in links if "javascript" in h or h.startswith("//")]
    assert "evil (javascript:alert(1))" in view.text and "proto (//evil.example/x)" in view.text
    assert "4 of 4 dead letter(s) match" in re.sub(r"\s+", " ", view.text)
    assert_no_secret(page.text)


async def test_filters_narrow_the_list(services: Services, admin: httpx.AsyncClient) -> None:
    await _dead_letters(services, 4, "alerts")
    await _dead_letters(services, 2, "events")
    text = lambda page: re.sub(r"\s+", " ", read(page.text).text)  # noqa: E731
    events = await admin.get("/console/dead?destination=events")
    assert "2 of 6 dead letter(s) match" in text(events)
    assert "3 of 6" in text(await admin.get("/console/dead?type=task.*"))
    assert "0 of 6" in text(await admin.get("/console/dead?reason=auth"))
    hostile = await admin.get("/console/dead", params={"q": "<script>", "type": '"><x'})
    assert "0 of 6" in text(hostile)
    assert_inert(read(hostile.text))
    assert "<script>" not in hostile.text


async def test_replay_selected_asks_to_confirm_then_requeues_exactly_those(
    services: Services, admin: httpx.AsyncClient
) -> None:
    await _dead_letters(services, 3)
    page = await admin.get("/console/dead")
    csrf = read(page.text).hidden("csrf")[0]
    ids = sorted(r.id for r in await services.store.rows(Status.DEAD))
    confirm = await admin.post(
        "/console/dead",
        data={
            "csrf": csrf,
            "action": "replay",
            "scope": "selected",
            "id": [str(ids[0]), str(ids[1])],
        },
    )
    assert confirm.status_code == 200
    view = read(confirm.text)
    assert_inert(view)
    assert "Replay 2 dead letter(s)?" in view.text
    assert len(await services.store.rows(Status.DEAD)) == 3  # nothing done before the confirm
    form = {k: view.hidden(k)[0] for k in ("csrf", "action", "confirm", "ids")}
    assert form["ids"] == f"{ids[0]},{ids[1]}"
    done = await admin.post("/console/dead", data=form)
    assert done.status_code == 303
    assert done.headers["location"] == "/console/dead?done=replayed&count=2"
    assert [r.id for r in await services.store.rows(Status.DEAD)] == [ids[2]]
    assert sorted(r.id for r in await services.store.rows(Status.PENDING)) == ids[:2]
    after = await admin.get(done.headers["location"])
    assert "Replayed 2 dead letter(s)." in read(after.text).text


async def test_drop_all_that_match_the_filter_counts_first(
    services: Services, admin: httpx.AsyncClient
) -> None:
    await _dead_letters(services, 3, "alerts")
    await _dead_letters(services, 2, "events")
    csrf = read((await admin.get("/console/dead")).text).hidden("csrf")[0]
    confirm = await admin.post(
        "/console/dead",
        data={"csrf": csrf, "action": "drop", "scope": "matching", "destination": "alerts"},
    )
    view = read(confirm.text)
    assert "Drop 3 dead letter(s)?" in view.text
    # a dead letter that arrives after the count is not swept up with the ones counted
    await _dead_letters(services, 1, "alerts", first=3)
    form = {k: view.hidden(k)[0] for k in ("csrf", "action", "confirm", "ids", "destination")}
    done = await admin.post("/console/dead", data=form)
    assert done.headers["location"] == "/console/dead?destination=alerts&done=dropped&count=3"
    left = await services.store.rows(Status.DEAD)
    assert sorted(r.destination for r in left) == ["alerts", "events", "events"]
    nothing = await admin.post(
        "/console/dead", data={"csrf": csrf, "action": "replay", "scope": "selected"}
    )
    assert "No dead letter is selected" in read(nothing.text).text


async def test_the_throttle_forgets_failures_once_they_leave_the_window(
    services: Services,
) -> None:
    now = [1000.0]
    throttle = LoginThrottle(services.store, limit=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert await throttle.wait("a") == 0.0
        await throttle.failed("a")
        now[0] += 10
    assert await throttle.wait("a") == 30.0  # the first failure leaves the window at 1060
    assert await throttle.wait("b") == 0.0  # per client
    now[0] = 1060.0
    assert await throttle.wait("a") == 0.0
    await throttle.failed("a")
    assert await throttle.wait("a") == 10.0
    await throttle.succeeded("a")
    assert await throttle.wait("a") == 0.0


async def test_replicas_share_one_budget_of_failed_logins(tmp_path: Path) -> None:
    """Two replicas on one PostgreSQL: failures on either count for both, so a guesser spreading
    tries over the replicas behind a load balancer gets no more of them than against one."""
    from pgschema import fresh_schema

    with fresh_schema() as url:
        one = await _services(tmp_path, url, TOKEN)
        other = await _services(tmp_path, url, TOKEN)
        try:
            async with _client(one) as first, _client(other) as second:
                for i in range(5):
                    http = first if i % 2 else second
                    answer = await http.post(
                        "/console/login", data={"csrf": await csrf_of(http), "token": "nope"}
                    )
                    assert answer.status_code == 401
                for http in (first, second):
                    csrf = await csrf_of(http)
                    answer = await http.post("/console/login", data={"csrf": csrf, "token": TOKEN})
                    assert answer.status_code == 429
        finally:
            await one.store.close()
            await other.store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_of_the_previous_schema_upgrades_and_throttles_logins(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # the schema before failed logins were kept in the store (migration 11), with a queued
    # message of that time
    queued = (
        "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key, template,"
        " payload, status, created_at, next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        ("anchor", "evt_1", "task.failed", "alerts", "k", "t", '{"text": "hi"}', "pending",
         1000.0, 1000.0),
    )  # fmt: skip
    store = store_at(10, backend, tmp_path, request, [queued])
    await store.open()
    try:
        assert await store.migrate() == VERSION
        assert [r.event_id for r in await store.rows(Status.PENDING)] == ["evt_1"]
        throttle = LoginThrottle(store, limit=1, window=60.0, clock=lambda: 1000.0)
        await throttle.failed("a")
        assert await throttle.wait("a") == 60.0
    finally:
        await store.close()


async def test_oversized_or_odd_forms_are_refused_without_effect(
    services: Services, admin: httpx.AsyncClient
) -> None:
    await _dead_letters(services, 1)
    csrf = read((await admin.get("/console/dead")).text).hidden("csrf")[0]
    many = "&".join(f"f{i}=1" for i in range(10_001)) + f"&csrf={csrf}&action=drop"
    answer = await admin.post(
        "/console/dead", content=many,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert answer.status_code == 413
    huge = await admin.post(
        "/console/login", content=b"token=" + b"x" * (1 << 20) + b"&csrf=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert huge.status_code == 413
    as_json = await admin.post("/console/dead", json={"csrf": csrf, "action": "drop"})
    assert as_json.status_code == 403  # not a form: no CSRF token was read
    assert len(await services.store.rows(Status.DEAD)) == 1
    odd = await admin.get("/console/dead?" + "&".join(f"x{i}=1" for i in range(200)))
    assert odd.status_code == 200


async def test_every_page_is_in_the_menu_and_answers_with_its_template(
    admin: httpx.AsyncClient,
) -> None:
    from relay.console.pages import PAGES

    overview = read((await admin.get("/console")).text)
    shown = [p for p in PAGES if p.menu]
    assert [p.title for p in shown] == ["Overview", "Events", "Dead letters", "Silences"]
    paths = [f"/console{p.path}" for p in shown]
    menu = [a["href"] for a in overview.all("a") if a["href"] in paths]
    assert menu[: len(shown)] == paths
    for page in shown:
        answer = await admin.get(f"/console{page.path}")
        assert answer.status_code == 200
        assert_security_headers(answer)
        view = read(answer.text)
        assert_inert(view)
        assert f"<title>{page.title} · relay</title>" in answer.text
        current = [a for a in view.all("a") if a.get("aria-current") == "page"]
        assert current == [{"href": f"/console{page.path}", "aria-current": "page"}]
