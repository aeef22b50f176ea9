"""The console's history pages, server side, in-process on SQLite and the real PostgreSQL:
the overview's periods (outcomes per source, events per hour, latency, busiest and failing),
the events list (filters, keyset pages, the URL holding the filters, new events for the live
list), one event (envelope, routing trace, previews beside payloads, attempts, chat location,
resend and route again after a confirmation) and silences (preview, create, invalid matchers,
expire). Events come through the real pipeline (accepted, then routed), their strings hostile:
`<script>`, `"><img onerror>`, `javascript:` URLs and 10,000-character fields, shown as text.
"""

# ruff: noqa: F811  (the fixtures of test_console.py, imported, are the tests' parameters)
from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
from consoleview import assert_inert, read
from test_console import (  # noqa: F401  (fixtures: services, anon, admin)
    HOSTILE,
    LONG,
    admin,
    anon,
    assert_no_secret,
    assert_security_headers,
    services,
)

from relay.event import Event
from relay.ops.services import Services
from relay.records import Reason, Settlement, Status
from relay.store.views import EventFilter
from relay.trace import explain

EVIL_URL = "javascript:alert(document.cookie)"


def _flat(html: str) -> str:
    return re.sub(r"\s+", " ", read(html).text)


def anchor(event_id: str, type_: str = "task.failed", **data: Any) -> Event:
    body = {
        "task_id": "tsk_1",
        "session_id": "ses_1",
        "duration_ms": 61250,
        "session_dashboard_url": "https://app.example.com/sessions/ses_1",
        "error": {"type": "invalid_credentials", "message": "Login rejected"},
        **data,
    }
    envelope: dict[str, Any] = {"id": event_id, "type": type_, "data": body}
    return Event(
        source="anchor", provider="anchor", id=event_id, type=type_, data=body,
        text=f"{type_} {event_id}", envelope=envelope,
    )  # fmt: skip


async def routed(services: Services, *events: Event) -> list[int]:
    """Accept each event and route it, as a running relay does; their history ids."""
    for e in events:
        await services.pipeline.accept(e)
    while await services.pipeline.route_pending():
        pass
    found = await services.store.history_events(EventFilter(), None, 500)
    ids = {(e.source, e.event_id): e.id for e in found.items}
    return [ids[(e.source, e.id)] for e in events]


async def settle_all(services: Services, status: Status, reason: Reason, **more: Any) -> None:
    """Every message waiting, delivered once with this result (one per pace key per claim)."""
    store = services.store
    while True:
        now = time.time()
        found = await store.claim(now, now + 60, rate=1e6, burst=1e6, limit=1000)
        if not found.claimed:
            return
        for claim in found.claimed:
            row = claim.row
            await store.settle(
                Settlement(row.id, row.pace_key, status, reason, time.time(), **more)
            )


async def csrf(http: httpx.AsyncClient, path: str = "/console") -> str:
    return read((await http.get(path)).text).hidden("csrf")[0]


def hostile_event(i: int = 0) -> Event:
    return anchor(
        f"evt_{HOSTILE[i % 3]}_{i}",
        task_id=HOSTILE[0],
        session_dashboard_url=EVIL_URL,
        error={"type": HOSTILE[1], "message": LONG},
    )


# ------------------------------------------------------------------ events list


async def test_the_events_list_is_newest_first_with_hostile_strings_as_text(
    services: Services, admin: httpx.AsyncClient
) -> None:
    ids = await routed(services, anchor("evt_old", "task.completed"), hostile_event())
    page = await admin.get("/console/events")
    assert page.status_code == 200
    assert_security_headers(page)
    view = read(page.text)
    assert_inert(view)
    rows = re.findall(r'<tr id="event-(\d+)">', page.text)
    assert rows == [str(ids[1]), str(ids[0])]  # newest first
    assert f"evt_{HOSTILE[0]}_0" in view.text  # the hostile id, as text
    assert "<script>" not in page.text and "<img" not in page.text
    links = [a["href"] for a in view.all("a")]
    assert f"/console/events/{ids[0]}" in links and f"/console/events/{ids[1]}" in links
    # the live list: the console's own script file, and a plain link without it
    assert {"src": "/console/static/live.js", "defer": ""} in view.all("script")
    live = f"/console/events/new?after={ids[1]}"
    assert live in links
    assert_no_secret(page.text)


async def test_filters_narrow_the_list_and_stay_in_the_url(
    services: Services, admin: httpx.AsyncClient
) -> None:
    t0 = time.time()
    ids = await routed(
        services,
        anchor("evt_a", "task.failed"),
        anchor("evt_b", "task.completed"),
        anchor("evt_c", "session.recording.ready"),
        anchor("evt_needle", "task.cancelled", task_id="look-for-checkout"),
    )

    async def shown(**params: str) -> list[str]:
        page = await admin.get("/console/events", params=params)
        assert page.status_code == 200, page.text
        assert_inert(read(page.text))
        return re.findall(r'<tr id="event-(\d+)">', page.text)

    def as_ids(*which: int) -> list[str]:
        return [str(ids[i]) for i in which]

    assert await shown() == as_ids(3, 2, 1, 0)
    assert await shown(type="task.*") == as_ids(3, 1, 0)
    assert await shown(type="task.c*") == as_ids(3, 1)
    assert await shown(source="anchor", type="session.*") == as_ids(2)
    assert await shown(source="nope") == []
    assert await shown(q="evt_b") == as_ids(1)
    assert await shown(destination="events", type="task.failed") == as_ids(0)
    assert await shown(destination="alerts") == []
    assert await shown(since=str(t0 - 60), until=str(time.time() + 60)) == as_ids(3, 2, 1, 0)
    assert await shown(since="2099-01-01T00:00") == []
    assert await shown(until="2000-01-01T00:00:00Z") == []
    pending = await shown(outcome="pending")
    assert pending == as_ids(3, 2, 1, 0)
    assert await shown(outcome="delivered") == []
    # the form shows the filters it was given, and the live link keeps them
    page = await admin.get("/console/events", params={"type": "task.*", "q": '"><b>'})
    view = read(page.text)
    assert {"name": "type", "value": "task.*", "placeholder": "task.*"} in view.all("input")
    assert {"name": "q", "value": '"><b>', "placeholder": "evt_123, checkout"} in view.all("input")
    assert "<b>" not in page.text
    live = [a["href"] for a in view.all("a") if a["href"].startswith("/console/events/new")]
    assert live == ["/console/events/new?type=task.%2A&q=%22%3E%3Cb%3E&after=0"]
    # the form sends every field; the address kept names only the filters set
    sent = await admin.get(
        "/console/events", params={"source": "", "type": "task.*", "outcome": "", "q": ""}
    )
    assert sent.status_code == 303 and sent.headers["location"] == "/console/events?type=task.%2A"
    cleared = await admin.get("/console/events", params={"source": "", "q": ""})
    assert cleared.headers["location"] == "/console/events"
    # a filter relay cannot read says which and why, changing nothing
    bad = await admin.get("/console/events", params={"outcome": "lost", "since": "yesterday"})
    assert bad.status_code == 400
    assert "outcome: expected one of delivered" in read(bad.text).text


async def test_keyset_pages_carry_the_filters(services: Services, admin: httpx.AsyncClient) -> None:
    ids = await routed(services, *[anchor(f"evt_{i:03}", "task.completed") for i in range(55)])
    await routed(services, anchor("evt_other", "task.failed"))
    first = await admin.get("/console/events", params={"type": "task.completed"})
    rows = re.findall(r'<tr id="event-(\d+)">', first.text)
    assert rows == [str(i) for i in reversed(ids)][:50]
    (older,) = [a["href"] for a in read(first.text).all("a") if a.get("rel") == "next"]
    assert older.startswith("/console/events?type=task.completed&cursor=")
    second = await admin.get(older)
    rows = re.findall(r'<tr id="event-(\d+)">', second.text)
    assert rows == [str(i) for i in reversed(ids)][50:]
    view = read(second.text)
    assert not [a for a in view.all("a") if a.get("rel") == "next"]  # the last page
    assert {"href": "/console/events?type=task.completed"} in view.all("a")  # back to the newest
    assert not [a for a in view.all("p") if a.get("id") == "live"]  # no live list on old pages
    forged = await admin.get("/console/events", params={"cursor": "<script>"})
    assert forged.status_code == 400 and "cursor: not a cursor relay gave" in forged.text


async def test_new_events_come_as_rows_for_the_live_list_and_as_a_count_without_script(
    services: Services, admin: httpx.AsyncClient
) -> None:
    (first,) = await routed(services, anchor("evt_first", "task.failed"))
    base = {"type": "task.*", "after": str(first)}
    rows = await admin.get("/console/events/new", params={**base, "part": "rows"})
    assert rows.status_code == 200
    assert_security_headers(rows)
    assert "<tr" not in rows.text and 'data-count="0"' in rows.text
    fresh = await routed(
        services, anchor("evt_new1", "task.failed"), anchor("evt_skip", "session.recording.ready"),
        hostile_event(1),
    )  # fmt: skip
    rows = await admin.get("/console/events/new", params={**base, "part": "rows"})
    view = read(rows.text)
    assert_inert(view)
    assert re.findall(r'<tr id="event-(\d+)">', rows.text) == [str(fresh[2]), str(fresh[0])]
    assert f'data-newest="{fresh[2]}"' in rows.text and 'data-more="0"' in rows.text
    assert HOSTILE[1] in view.text and "<img" not in rows.text
    # without script: the same address as a page that counts them and links to the list
    page = await admin.get("/console/events/new", params=base)
    assert "2 new event(s) — show" in _flat(page.text)
    assert {"href": "/console/events?type=task.%2A"} in read(page.text).all("a")
    # the menu still marks Events as the page's section
    assert {"href": "/console/events", "aria-current": "page"} in read(page.text).all("a")


async def test_a_flood_of_new_events_is_offered_as_a_link_not_rows(
    services: Services, admin: httpx.AsyncClient
) -> None:
    await routed(services, *[anchor(f"evt_f{i}", "task.completed") for i in range(101)])
    rows = await admin.get("/console/events/new", params={"after": "0", "part": "rows"})
    assert 'data-more="1"' in rows.text and "<tr" not in rows.text
    page = await admin.get("/console/events/new", params={"after": "0"})
    assert "More than 100 new event(s)" in _flat(page.text)


# ------------------------------------------------------------------ one event


async def test_one_event_shows_envelope_trace_preview_payload_and_attempts(
    services: Services, admin: httpx.AsyncClient
) -> None:
    event = hostile_event()
    (seq,) = await routed(services, event)
    await settle_all(services, Status.DEAD, Reason.CHANNEL, error="channel_not_found", took=0.25)
    page = await admin.get(f"/console/events/{seq}")
    assert page.status_code == 200
    assert_security_headers(page)
    view = read(page.text)
    assert_inert(view)
    text = view.text
    # the envelope as pretty JSON, hostile strings escaped and whole
    pretty = json.dumps(event.envelope, indent=2, ensure_ascii=False)
    assert pretty in text
    assert LONG in text and "<script>" not in page.text and "<img" not in page.text
    # the routing trace: what `relay routes` explains
    for line in explain(services.runtime, event):
        assert line in text
    # the message as the chat shows it: title, fields, the safe button a link, the evil one text
    assert "❌" in text
    hrefs = [a["href"] for a in view.all("a")]
    assert EVIL_URL not in hrefs and not [h for h in hrefs if h.startswith("javascript")]
    assert EVIL_URL in text
    # beside its raw payload (Block Kit for Slack), and the attempts as a timeline
    assert '"blocks": [' in text and '"type": "header"' in text
    flat = _flat(page.text)
    assert "dead · channel · channel_not_found · took 250 ms" in flat
    assert_no_secret(page.text)
    missing = await admin.get("/console/events/999999")
    assert missing.status_code == 404
    assert "History holds no event 999999" in read(missing.text).text
    assert (await admin.get("/console/events/abc")).status_code == 404


async def test_the_event_page_says_where_the_message_is_in_the_chat(
    services: Services, admin: httpx.AsyncClient
) -> None:
    (seq,) = await routed(services, anchor("evt_sent", "task.completed"))
    await settle_all(
        services, Status.SENT, Reason.OK, channel_id="C0EVENTS1", ts="1716553085.000100"
    )
    flat = _flat((await admin.get(f"/console/events/{seq}")).text)
    assert "in the chat: channel C0EVENTS1, message 1716553085.000100" in flat
    assert "sent · ok" in flat


async def test_resend_and_route_again_ask_to_confirm_then_queue(
    services: Services, admin: httpx.AsyncClient
) -> None:
    (seq,) = await routed(services, anchor("evt_again", "task.failed"))
    await settle_all(services, Status.SENT, Reason.OK, channel_id="C1", ts="1.2")
    token = await csrf(admin, f"/console/events/{seq}")
    path = f"/console/events/{seq}"
    # without the CSRF token nothing happens
    refused = await admin.post(path, data={"action": "resend", "destination": "alerts",
                                           "confirm": "yes"})  # fmt: skip
    assert refused.status_code == 403
    confirm = await admin.post(path, data={"csrf": token, "action": "resend",
                                           "destination": "alerts"})  # fmt: skip
    assert confirm.status_code == 200
    view = read(confirm.text)
    assert_inert(view)
    assert "Resend to alerts?" in view.text
    assert await services.store.rows(Status.PENDING) == []  # nothing before the confirmation
    form = {k: view.hidden(k)[0] for k in ("csrf", "action", "destination", "confirm")}
    done = await admin.post(path, data=form)
    assert done.status_code == 303
    assert done.headers["location"] == f"{path}?done=resent&count=1&to=alerts"
    (queued,) = await services.store.rows(Status.PENDING)
    assert queued.destination == "alerts" and queued.event_id == "evt_again"
    after = await admin.get(done.headers["location"])
    assert "Resent: 1 message(s) queued to alerts." in read(after.text).text
    # route again: the routes in force send it to `events` again
    confirm = await admin.post(path, data={"csrf": token, "action": "reroute"})
    assert "Route again?" in read(confirm.text).text
    done = await admin.post(path, data={"csrf": token, "action": "reroute", "confirm": "yes"})
    assert done.headers["location"] == f"{path}?done=rerouted&count=1"
    pending = sorted(r.destination for r in await services.store.rows(Status.PENDING))
    assert pending == ["alerts", "events"]
    # an unknown destination (or a hostile one) is refused on the page, changing nothing
    hostile = {"destination": "<script>x</script>", "confirm": "yes"}
    bad = await admin.post(path, data={"csrf": token, "action": "resend", **hostile})
    assert bad.status_code == 400 and "Choose a destination" in read(bad.text).text
    assert "<script>x" not in bad.text
    assert len(await services.store.rows(Status.PENDING)) == 2
    again = {"csrf": token, "action": "reroute", "confirm": "yes"}
    gone = await admin.post("/console/events/424242", data=again)
    assert gone.status_code == 404


# ------------------------------------------------------------------ silences


async def test_a_silence_is_previewed_then_created_listed_and_expired(
    services: Services, admin: httpx.AsyncClient
) -> None:
    await routed(
        services, anchor("evt_s1", "task.failed"), anchor("evt_s2", "task.completed"),
        hostile_event(1),
    )  # fmt: skip
    token = await csrf(admin, "/console/silences")
    empty = await admin.get("/console/silences")
    assert "No active silence." in read(empty.text).text
    form = {"csrf": token, "matchers": "source=anchor\ntype=task.failed", "destination": "",
            "duration": "2h", "comment": '<script>alert("c")</script>'}  # fmt: skip
    shown = await admin.post("/console/silences", data={**form, "action": "preview"})
    assert shown.status_code == 200
    view = read(shown.text)
    assert_inert(view)
    assert "It would have matched 2 recent message(s)" in _flat(shown.text)
    assert "evt_s1" in view.text and "evt_s2" not in view.text
    assert hostile_event(1).id in view.text and "<img" not in shown.text
    assert await services.store.silences(time.time()) == []  # a preview creates nothing
    # the form keeps what was typed, and now offers to create
    assert "source=anchor\ntype=task.failed" in view.text
    created = await admin.post("/console/silences", data={**form, "action": "create"})
    assert created.status_code == 303
    (silence,) = await services.store.silences(time.time())
    assert created.headers["location"] == f"/console/silences?done=created&id={silence.id}"
    assert silence.created_by == "console" and silence.comment == '<script>alert("c")</script>'
    assert 7190 < silence.ends_at - silence.starts_at <= 7200
    listed = await admin.get(created.headers["location"])
    view = read(listed.text)
    assert_inert(view)
    assert f"Silence {silence.id} created." in view.text
    assert '<script>alert("c")</script>' in view.text and "<script>" not in listed.text
    assert re.search(rf'<tr id="{silence.id}">.*?active', listed.text, flags=re.S)
    expired = await admin.post(
        "/console/silences", data={"csrf": token, "action": "expire", "id": silence.id}
    )
    assert expired.headers["location"] == f"/console/silences?done=expired&id={silence.id}"
    assert await services.store.silences(time.time()) == []
    active = await admin.get("/console/silences")
    assert "No active silence." in read(active.text).text
    everything = await admin.get("/console/silences?all=1")
    assert re.search(rf'<tr id="{silence.id}">.*?expired', everything.text, flags=re.S)
    unknown = await admin.post(
        "/console/silences", data={"csrf": token, "action": "expire", "id": "sil_nope"}
    )
    assert unknown.status_code == 404 and "No silence has this id." in unknown.text


@pytest.mark.parametrize(
    ("typed", "field", "says"),
    [
        ({"matchers": "colour=red"}, "matchers", "matchers[0]: unknown matcher 'colour'"),
        ({"matchers": "source"}, "matchers", "matchers[0]: 'source' is not KEY=VALUE"),
        ({"matchers": ""}, "matchers", "match: a silence needs at least one matcher"),
        ({"matchers": "type=task.*", "duration": "soon"}, "duration", "duration:"),
        ({"matchers": "type=x", "destination": "<b>nope</b>"}, "destination",
         "destination: unknown destination '<b>nope</b>'"),
    ],
)  # fmt: skip
async def test_an_invalid_silence_shows_the_field_error_and_creates_nothing(
    services: Services, admin: httpx.AsyncClient, typed: dict[str, str], field: str, says: str
) -> None:
    token = await csrf(admin, "/console/silences")
    form = {"csrf": token, "matchers": "", "destination": "", "duration": "1h", "comment": "",
            **typed}  # fmt: skip
    for action in ("preview", "create"):
        answer = await admin.post("/console/silences", data={**form, "action": action})
        assert answer.status_code == 422
        view = read(answer.text)
        assert_inert(view)
        assert says in view.text
        assert "<b>" not in answer.text
        if field == "matchers":
            assert {"class": "error field-error", "id": "matchers-error", "role": "alert"} in (
                view.all("p")
            )
    assert await services.store.silences(None) == []


async def test_silence_forms_need_the_csrf_token(
    services: Services, admin: httpx.AsyncClient
) -> None:
    answer = await admin.post(
        "/console/silences", data={"action": "create", "matchers": "type=x", "duration": "1h"}
    )
    assert answer.status_code == 403
    assert await services.store.silences(None) == []


# ------------------------------------------------------------------ overview


async def test_the_overview_shows_both_periods_per_source_and_outcome(
    services: Services, admin: httpx.AsyncClient
) -> None:
    await routed(services, anchor("evt_o1", "task.failed"), anchor("evt_o2", "task.completed"))
    await settle_all(services, Status.SENT, Reason.OK, channel_id="C1", ts="1.1", took=0.1)
    await routed(services, hostile_event(2))
    await settle_all(services, Status.DEAD, Reason.CHANNEL, error=HOSTILE[1])
    page = await admin.get("/console")
    assert page.status_code == 200
    view = read(page.text)
    assert_inert(view)
    flat = _flat(page.text)
    assert "Last 24 h: 3 event(s)" in flat and "Last 7 days: 3 event(s)" in flat
    # outcomes per source: delivered 2, dead 1
    table = re.search(r'<table class="outcomes">(.*?)</table>', page.text, flags=re.S)
    assert table is not None
    head = re.findall(r"<th>(.*?)</th>", table.group(1))
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", table.group(1))]
    row = dict(zip(head, cells, strict=True))
    assert row["source"] == "anchor" and row["delivered"] == "2" and row["dead"] == "1"
    assert row["silenced"] == "0" and row["total"] == "3"
    assert {"href": "/console/events?source=anchor&outcome=dead"} in view.all("a")
    # events per hour as SVG columns, latency, the busiest and failing lists
    assert page.text.count('class="chart columns"') == 2
    day = page.text[page.text.index('id="last-24h"') : page.text.index('id="last-7d"')]
    assert sum(int(n) for n in re.findall(r": (\d+) event\(s\)</title>", day)) == 3
    assert re.search(r"p50 \d+ ms, p95 \d+ ms", flat)
    assert "Most failing event types" in flat
    assert {"href": "/console/events?source=anchor&type=task.failed&outcome=dead"} in (
        view.all("a")
    )
    assert "<img" not in page.text
    assert_no_secret(page.text)


# ------------------------------------------------------------------ the message preview


def test_the_preview_reads_a_card_and_block_kit_as_a_reader_sees_them() -> None:
    from relay.console.preview import preview
    from relay.messages import Blocks, Button, Card, Detail, Field

    card = Card(
        status="failure",
        title="Task failed \u202e<script>",
        summary="*bold* and <https://example.com/x|a link>",
        fields=(Field("*Task*", "`tsk_1`"),),
        details=(Detail("Trace", "line 1\nline 2"),),
        buttons=(Button("Open", "https://app.example.com/s/1", "primary"),
                 Button("evil", EVIL_URL)),
        context="anchor · <!date^1716553085^{date}|x>",
    )  # fmt: skip
    shown = preview(card.to_json(), "alerts")
    assert shown.emoji == "❌" and shown.title == "Task failed <script>"  # bidi override gone
    assert shown.summary == "bold and a link <https://example.com/x>"
    assert shown.fields == (("Task", "tsk_1"),)
    assert shown.details == (("Trace", "line 1\nline 2"),)
    assert [(b.text, b.href, b.style) for b in shown.buttons] == [
        ("Open", "https://app.example.com/s/1", "primary"), ("evil", None, "")
    ]  # fmt: skip
    assert shown.buttons[1].url == EVIL_URL  # shown as text beside the label
    assert "2024-05-24" in shown.context
    blocks = Blocks(
        "fallback",
        (
            {"type": "header", "text": {"type": "plain_text", "text": "Deploy <b>"}},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Go"}, "url": EVIL_URL}
            ]},
        ),
    )  # fmt: skip
    read_as = preview(blocks.to_json(), "alerts")
    assert read_as.lines == ("Deploy <b>", "[ Go ] (no link)")
