"""Hostile input, property-based: random JSON, Unicode, deep nesting, huge arrays, wrong types
and nulls through the providers, routing and every built-in template, and a hypothesis-driven
client against relay's HTTP API. Never a 5xx, never an unhandled exception, never a message
Slack would refuse, never a mention, broadcast or forged link made from event data."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakeslack import check_message
from harness import RelayProcess, free_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signing import ANCHOR_SECRET, DECK_SECRET, anchor_headers, deck_headers
from slackview import view

from relay.config import load_config, parse_config
from relay.errors import IngestError
from relay.event import Event
from relay.planning import plan
from relay.providers.base import MAX_JSON_DEPTH
from relay.providers.tabstack.provider import TabstackProvider
from relay.render.formats.slack import mention_text, payload
from relay.render.mrkdwn import control_sequences
from relay.runtime import build_runtime

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "relay" / "samples"
ENV = {
    "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
    "DECK_WEBHOOK_SECRET": DECK_SECRET,
    "RELAY_ADMIN_TOKEN": "test-admin-token",
}
RUNTIME = build_runtime(load_config(ROOT / "config.example.yaml", ENV))
ANCHOR_TYPES = sorted(p.stem for p in (SAMPLES / "anchor").glob("*.json"))
DECK_TYPES = sorted(p.stem for p in (SAMPLES / "deck").glob("*.json"))
HOSTILE = [
    "<!channel>", "<!here|here>", "<@U0123ABCD>", "<!subteam^S123|@team>", "<#C123>",
    "<https://evil.example|click me>", "<mailto:x@y.z|mail>", "&lt;!channel&gt;", "```", "*_~`",
    "\u202e\u0000\ud800", "x" * 10_000, "@here", "<!date^1^{date}|x>",
]  # fmt: skip
DATE_TOKEN = re.compile(r"^<!date\^\d+\^[^|>]*\|[^>]*>$")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text()
json_values = st.recursive(
    json_scalars | st.sampled_from(HOSTILE),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=6),
    max_leaves=30,
)  # fmt: skip


def assert_slack_safe(
    payload: dict[str, Any], allowed_urls: set[str], mentions: frozenset[str] = frozenset()
) -> None:
    """Slack takes it, and its only control sequences are dates, links to the event's own URLs
    and the `mentions` the routing config asked for."""
    assert check_message(payload["text"], payload["blocks"], 13_000) is None
    for sequence in (seq for text in mrkdwn_texts(payload) for seq in control_sequences(text)):
        if DATE_TOKEN.match(sequence) or sequence in mentions:
            continue
        assert not sequence.startswith(("<!", "<@", "<#")), sequence
        url = sequence[1:-1].split("|", 1)[0]
        assert url in allowed_urls, sequence  # a link only to a URL the event gave as a URL


def mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    """The texts Slack parses as mrkdwn (the notification text and mrkdwn text objects)."""
    texts = [payload["text"]]
    stack: list[Any] = [payload["blocks"]]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "mrkdwn" and isinstance(item.get("text"), str):
                texts.append(item["text"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return texts


def urls_in(value: Any) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and re.match(r"^https?://", item):
            found.add(item)
    return found


def with_leaves(value: Any, leaf: Any) -> Any:
    """Every string in `value` replaced by `leaf` (the sample's shape, hostile content)."""
    if isinstance(value, dict):
        return {k: with_leaves(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [with_leaves(v, leaf) for v in value]
    return leaf if isinstance(value, str) else value


def hostile_events(provider: str, index: int, data: Any, leaf: Any, text: str) -> list[Event]:
    """What a property test renders for every chat: the event type `index` picks among the
    provider's samples, with `data` as its data, with the sample's data shaped but every leaf
    `leaf`, and with the sample's data plus `data` (data not an object comes as {"value": ...});
    each with `text` as the event's own text."""
    kinds = ANCHOR_TYPES if provider == "anchor" else DECK_TYPES
    kind = kinds[index % len(kinds)]
    sample = json.loads((SAMPLES / provider / f"{kind}.json").read_text())["data"]
    events = []
    for shaped in (data, with_leaves(sample, leaf), {**sample, "extra": data}):
        body = shaped if isinstance(shaped, dict) else {"value": shaped}
        events.append(Event(provider, provider, "evt_h", kind, body, text=text))
    return events


@settings(max_examples=120, deadline=None)
@given(
    provider=st.sampled_from(["anchor", "deck"]),
    index=st.integers(min_value=0),
    data=json_values,
    leaf=json_values,
)
def test_every_template_survives_any_data(provider: str, index: int, data: Any, leaf: Any) -> None:
    for event in hostile_events(provider, index, data, leaf, text="<!channel> hi"):
        decision = RUNTIME.router.decide(event)
        for target in decision.targets:
            message = view(RUNTIME.renderer.render(event, template=target.template))
            assert message.text and message.blocks
            assert_slack_safe({"text": message.text, "blocks": message.blocks}, urls_in(event.data))


WRONG = [
    None, True, False, -1, 0, 10**400, -(10**400), float("inf"), float("-inf"), float("nan"),
    1e308, -1e308, 2**63, "", "-5", "1e999", "<!channel>", [], {}, [1], {"a": None},
]  # fmt: skip


def every_leaf(value: Any, leaf: Any) -> Any:
    """The sample's shape with every scalar (numbers and bools too) replaced by `leaf`."""
    if isinstance(value, dict):
        return {k: every_leaf(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [every_leaf(v, leaf) for v in value]
    return leaf


@pytest.mark.parametrize("provider", ["anchor", "deck"])
def test_every_template_takes_wrong_types_and_extreme_numbers_in_every_field(
    provider: str,
) -> None:
    for kind in ANCHOR_TYPES if provider == "anchor" else DECK_TYPES:
        sample = json.loads((SAMPLES / provider / f"{kind}.json").read_text())["data"]
        for leaf in WRONG:
            event = Event(provider, provider, "evt_w", kind, every_leaf(sample, leaf))
            planned = plan(RUNTIME, event)
            assert planned.template_errors == (), (kind, leaf, planned.template_errors)
            configured = {mention_text(t.mentions) for t in planned.decision.targets}
            mentions = frozenset(m for text in configured if text for m in text.split())
            for message in planned.messages:
                slack = dict(payload(message.message))
                assert_slack_safe(slack, urls_in(event.data), mentions)


EVERY_RULE = """
sources: {anchor: {provider: anchor, secrets: [rules-secret]}}
destinations: {a: {type: console}, b: {type: console}, c: {type: console}}
routes:
  - {name: equals, match: {when: [{path: v, equals: 3}]}, to: [a], continue: true}
  - {name: not_equals, match: {when: [{path: v, not_equals: x}]}, to: [a], continue: true}
  - {name: one_of, match: {when: [{path: v, one_of: [1, a, null]}]}, to: [a], continue: true}
  - {name: matches, match: {when: [{path: v, matches: "^[0-9]+$"}]}, to: [a], continue: true}
  - {name: exists, match: {when: [{path: a.b, exists: true}]}, to: [a], continue: true}
  - {name: gt, match: {when: [{path: v, gt: 10}, {path: a.b, lte: 5}]}, to: [a], continue: true}
  - {name: lt, match: {when: [{path: v, lt: 10}, {path: a.b, gte: 5}]}, to: [a], continue: true}
  - {name: threads, match: {type: "task.*"}, to: [a], continue: true,
     thread: {key: "{{ data.v }}", update: ["*.completed"], broadcast: ["*.failed"]}}
  - {name: repeats, to: [b], continue: true, repeat: {key: [data.v, data.a.b], interval: 1h}}
  - {name: groups, to: [c], continue: true, group: {by: [type, data.v, data.a]}}
default: {to: [c]}
"""
RULES = build_runtime(parse_config(EVERY_RULE, ROOT / "rules.yaml", {}))


@settings(max_examples=150, deadline=None)
@given(
    v=json_values | st.sampled_from(WRONG),
    b=json_values | st.sampled_from(WRONG),
    kind=st.sampled_from(["task.failed", "task.completed", "x"]) | st.text(min_size=1),
)
def test_every_kind_of_rule_takes_any_data(v: Any, b: Any, kind: str) -> None:
    event = Event("anchor", "anchor", "evt_r", kind, {"v": v, "a": {"b": b}})
    planned = plan(RULES, event, now=1_700_000_000.0)
    # every rule was tried and said why; the default too, as every rule continues
    assert [t.route for t in planned.decision.trace] == [
        "equals", "not_equals", "one_of", "matches", "exists", "gt", "lt", "threads",
        "repeats", "groups", "default",
    ]  # fmt: skip
    assert {m.destination for m in planned.messages} <= {"a", "b", "c"}
    for message in planned.messages:
        assert_slack_safe(dict(payload(message.message)), urls_in(event.data))


JINJA = "{{ 'ev' ~ 'aluated' }}{% for x in range(10**9) %}x{% endfor %}{{ cycler.__init__ }}"


@pytest.mark.parametrize("provider", ["anchor", "deck"])
def test_event_data_is_never_template_source(provider: str) -> None:
    shown = 0
    for kind in ANCHOR_TYPES if provider == "anchor" else DECK_TYPES:
        sample = json.loads((SAMPLES / provider / f"{kind}.json").read_text())["data"]
        event = Event(provider, provider, "evt_j", kind, with_leaves(sample, JINJA), text=JINJA)
        message = view(RUNTIME.renderer.render(event))
        assert message.error is None, message.error
        output = json.dumps([message.text, message.blocks])
        assert "evaluated" not in output and "xxxx" not in output and "function" not in output
        shown += "{{ 'ev' ~ 'aluated' }}" in output  # shown as the text it is
    assert shown > 0


@settings(max_examples=150, deadline=None)
@given(body=json_values, kind=st.sampled_from(["anchor", "deck"]))
def test_providers_parse_or_refuse_any_signed_json(body: Any, kind: str) -> None:
    raw = json.dumps(body).encode()
    provider = RUNTIME.providers[kind]
    headers = anchor_headers(raw, int(time.time())) if kind == "anchor" else deck_headers(
        raw, int(time.time()))  # fmt: skip
    lowered = {k.lower(): v for k, v in headers.items()}
    provider.verify(lowered, raw, time.time())
    try:
        events = provider.parse(lowered, raw)
    except IngestError as exc:
        assert exc.status in (400, 413, 415)
        return
    for event in events:
        assert isinstance(event.id, str) and event.id
        assert isinstance(event.type, str) and event.type


def test_deep_nesting_is_refused_not_crashed() -> None:
    deep: Any = "x"
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    raw = json.dumps({"id": "e", "type": "task.failed", "data": {"v": deep}}).encode()
    with pytest.raises(IngestError, match="nested deeper than 64"):
        RUNTIME.providers["anchor"].parse({}, raw)
    very = ("[" * 100_000 + "]" * 100_000).encode()
    with pytest.raises(IngestError):
        RUNTIME.providers["anchor"].parse({}, b'{"v": ' + very + b"}")


DEPTH_CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [depth-secret]}
  deck: {provider: deck, secrets: [whsec_ZGVwdGgtc2VjcmV0]}
  tabstack: {provider: tabstack, token: depth-token}
  other: {provider: generic, token: depth-token}
destinations:
  c: {type: console}
default: {to: [c]}
server: {max_json_depth: 8}
"""


def nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels - 2):  # the envelope and `data` are two levels
        value = [value]
    return {"id": "e", "type": "task.failed", "data": {"v": value}}


def test_the_json_depth_limit_is_configured_per_deployment(tmp_path: Path) -> None:
    runtime = build_runtime(parse_config(DEPTH_CONFIG, tmp_path / "relay.yaml", {}))
    for name in ("anchor", "deck", "other"):
        provider = runtime.providers[name]
        (event,) = provider.parse({}, json.dumps(nested(8)).encode())
        assert event.id == "e"
        with pytest.raises(IngestError, match=r"^body is nested deeper than 8 levels$"):
            provider.parse({}, json.dumps(nested(9)).encode())
    tabstack = runtime.providers["tabstack"]
    assert isinstance(tabstack, TabstackProvider)
    deep = json.dumps(nested(9))
    event = tabstack.event_from_sse("run_1", 0, "agent:extracted", deep)
    assert event.data == {"raw": deep, "run_id": "run_1"}  # kept as text, not walked
    shallow = tabstack.event_from_sse("run_1", 1, "agent:extracted", json.dumps(nested(8)))
    assert shallow.data["id"] == "e"


def test_huge_arrays_render_within_slack_limits() -> None:
    data = {
        "artifacts": [{"name": f"f{i}", "url": f"https://x.example/{i}"} for i in range(5000)],
        "domains": ["a.example"] * 5000,
        "steps": list(range(5000)),
        "error": {"type": "x" * 5000, "message": "<!channel>" * 500},
    }
    for kind in ("task.completed", "task.failed", "session.completed"):
        event = Event("anchor", "anchor", "evt_big", kind, data)
        message = view(RUNTIME.renderer.render(event))
        assert_slack_safe({"text": message.text, "blocks": message.blocks}, urls_in(data))


# ---------------------------------------------------------------- the HTTP API


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    folder = tmp_path_factory.mktemp("fuzz")
    env = {
        **ENV,
        "RELAY_DATABASE_URL": f"sqlite:///{folder}/relay.db",
        "TABSTACK_API_KEY": "fuzz-tabstack-key",
        "TABSTACK_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",  # nobody listens
    }
    process = RelayProcess(ROOT / "config.example.yaml", env, folder).start()
    yield process
    process.kill()


@pytest.fixture(scope="module")
def client(relay: RelayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=relay.url, timeout=10) as http:
        yield http


header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)  # what a client can send: no edge whitespace


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(
        ["/hooks/anchor", "/hooks/deck", "/hooks/tabstack", "/hooks/nope", "/runs/tabstack",
         "/admin/reload", "/healthz", "/readyz", "/metrics", "/", "/hooks/", "/hooks/%00"]
    ),
    content_type=st.sampled_from(
        ["application/json", "text/event-stream", "text/plain", "", "application/x+json"]
    ),
    headers=st.dictionaries(
        st.sampled_from(["anchor-signature", "webhook-id", "webhook-timestamp",
                         "webhook-signature", "authorization", "x-relay-run-id"]),
        header_text, max_size=4),
    body=st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=300)),
)  # fmt: skip
def test_no_request_gets_a_5xx(
    client: httpx.Client,
    method: str,
    path: str,
    content_type: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    sent = {**headers, **({"content-type": content_type} if content_type else {})}
    answer = client.request(method, path, content=body, headers=sent)
    assert answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.status_code != 503 or path.startswith("/hooks/")
    assert not answer.is_redirect
    if answer.status_code >= 400:
        error = answer.json()
        assert set(error) == {"error", "detail"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "body is not valid JSON: nested too deeply"),
        (json.dumps(nested(65)).encode(), "body is nested deeper than 64 levels"),
        (b"[1]", "body must be a JSON object, got list"),
        (b"\xff", "body is not valid JSON: 'utf-8' codec can't decode byte 0xff in position 0: "
                   "invalid start byte"),
    ],
)  # fmt: skip
def test_admin_run_bodies_are_checked_like_webhooks(
    client: httpx.Client, body: bytes, detail: str
) -> None:
    answer = client.post(
        "/runs/tabstack",
        content=body,
        headers={"Authorization": "Bearer test-admin-token", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "malformed", "detail": detail}


def test_oversized_headers_are_refused_and_relay_keeps_serving(relay: RelayProcess) -> None:
    # /healthz would answer 200: only the 64 KiB bound on the request head can refuse these
    with httpx.Client(base_url=relay.url, timeout=10) as client:
        answer = client.get("/healthz", headers={"X-Pad": "a" * 70_000})
        assert answer.status_code == 431
        assert answer.json() == {
            "error": "headers_too_large",
            "detail": "request line and headers exceed 65536 bytes",
        }
        answer = client.post("/hooks/anchor", headers={"X-Pad": "a" * 70_000}, content=b"{}")
        assert answer.status_code == 431
        # a head that never ends is not buffered: past 64 KiB relay answers 431 and hangs up
        assert _dribble_endless_head(relay.port, "/hooks/anchor").startswith(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        )
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz", headers={"X-Pad": "a" * 60_000}).status_code == 200
        metrics = client.get("/metrics").text
        assert (
            'relay_requests_rejected_total{reason="headers_too_large",source="anchor"} 2.0'
            in metrics
        )


def _dribble_endless_head(port: int, path: str) -> bytes:
    """Send a request line and 4 KiB header lines that never end the head; what relay answers.

    Without a bound the server would wait for the rest forever (the read times out here)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: relay\r\n".encode())
        answer = b""
        try:
            for i in range(1000):  # up to 4 MB, in separate reads
                conn.sendall(f"X-Pad-{i}: {'a' * 4096}\r\n".encode())
                time.sleep(0.002)
        except OSError:  # relay closed the connection: read what it said first
            pass
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                answer += chunk
        return answer
