"""relay.providers: signatures, freshness and parsing of Anchor, Deck, Tabstack, generic hooks."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from harness import FIXTURES, sample, samples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signing import ANCHOR_SECRET, DECK_SECRET, anchor_headers, deck_headers

from relay.errors import MalformedRequest, Unauthorized
from relay.providers import (
    PROVIDERS,
    AnchorProvider,
    DeckProvider,
    GenericProvider,
    TabstackProvider,
)
from relay.providers.base import Provider

VECTOR_BODY = (FIXTURES / "anchor" / "signature-example.body").read_bytes()
VECTOR_TS = 1716544084
UTF8_DIGEST = "a614f2e40e98cc66573dbc81071d51327577977749ab264ebe2a6498af221a23"
HEX_DIGEST = "06e51cfe84bca4b26f6e67e037ed76c9e2ad9d7c2f854b03e510957326c7d368"
OLD_ANCHOR_SECRET = "00" * 32

DECK_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
DECK_TS = 1614265330
DECK_BODY = b'{"test": 2432232314}'
DECK_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_DECK_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"


def anchor_sig(digest: str, ts: int = VECTOR_TS) -> dict[str, str]:
    return {"Anchor-Signature": f"t={ts},v1={digest}"}


def deck_vector(**override: str) -> dict[str, str]:
    headers = {
        "webhook-id": DECK_ID,
        "webhook-timestamp": str(DECK_TS),
        "webhook-signature": DECK_SIG,
    }
    return headers | override


def generic_sig(body: bytes, secret: str = "generic-secret") -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- registry


def test_registry_maps_each_kind_to_its_class() -> None:
    assert {
        "anchor": AnchorProvider,
        "deck": DeckProvider,
        "tabstack": TabstackProvider,
        "generic": GenericProvider,
    } == PROVIDERS
    assert all(cls.kind == kind for kind, cls in PROVIDERS.items())


# ---------------------------------------------------------------- Anchor


@pytest.mark.parametrize(
    ("encoding", "digest", "ok"),
    [
        ("both", UTF8_DIGEST, True),
        ("both", HEX_DIGEST, True),
        ("utf8", UTF8_DIGEST, True),
        ("utf8", HEX_DIGEST, False),
        ("hex", HEX_DIGEST, True),
        ("hex", UTF8_DIGEST, False),
    ],
)
def test_anchor_worked_vector_per_key_encoding(encoding: Any, digest: str, ok: bool) -> None:
    provider = AnchorProvider("anchor", [ANCHOR_SECRET], key_encoding=encoding)
    headers = anchor_sig(digest)
    if ok:
        provider.verify(headers, VECTOR_BODY, VECTOR_TS + 5)
    else:
        with pytest.raises(Unauthorized, match="does not match"):
            provider.verify(headers, VECTOR_BODY, VECTOR_TS + 5)


def test_anchor_hex_encoding_needs_a_hex_secret() -> None:
    with pytest.raises(ValueError, match="hex"):
        AnchorProvider("anchor", ["not-hex"], key_encoding="hex")
    AnchorProvider("anchor", ["not-hex"], key_encoding="both").verify(
        anchor_headers(b"{}", 100, secret="not-hex"), b"{}", 100
    )


def test_anchor_rotation_accepts_old_and_new_secret_only() -> None:
    provider = AnchorProvider("anchor", [OLD_ANCHOR_SECRET, ANCHOR_SECRET])
    for secret in (OLD_ANCHOR_SECRET, ANCHOR_SECRET):
        provider.verify(anchor_headers(VECTOR_BODY, 1000, secret=secret), VECTOR_BODY, 1000)
    with pytest.raises(Unauthorized):
        provider.verify(anchor_headers(VECTOR_BODY, 1000, secret="11" * 32), VECTOR_BODY, 1000)


def test_anchor_any_matching_v1_entry_is_enough() -> None:
    provider = AnchorProvider("anchor", [ANCHOR_SECRET])
    header = f"t={VECTOR_TS},v1={'0' * 64},v1={UTF8_DIGEST.upper()},v2=whatever"
    provider.verify({"anchor-signature": header}, VECTOR_BODY, VECTOR_TS)


@pytest.mark.parametrize(("offset", "ok"), [(120, True), (-120, True), (121, False), (-121, False)])
def test_anchor_freshness_both_ways(offset: int, ok: bool) -> None:
    provider = AnchorProvider("anchor", [ANCHOR_SECRET])
    headers = anchor_sig(UTF8_DIGEST)
    if ok:
        provider.verify(headers, VECTOR_BODY, VECTOR_TS + offset)
    else:
        word = "old" if offset > 0 else "future"
        with pytest.raises(Unauthorized, match=word):
            provider.verify(headers, VECTOR_BODY, VECTOR_TS + offset)


def test_anchor_tampered_body_is_refused() -> None:
    provider = AnchorProvider("anchor", [ANCHOR_SECRET])
    with pytest.raises(Unauthorized, match="does not match"):
        provider.verify(anchor_sig(UTF8_DIGEST), VECTOR_BODY.replace(b"4.2s", b"4.3s"), VECTOR_TS)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing Anchor-Signature"),
        ({"Anchor-Signature": "garbage"}, "no t="),
        ({"Anchor-Signature": f"v1={UTF8_DIGEST}"}, "no t="),
        ({"Anchor-Signature": f"t=soon,v1={UTF8_DIGEST}"}, "unix seconds"),
        ({"Anchor-Signature": f"t={VECTOR_TS}"}, "no v1="),
        ({"Anchor-Signature": f"t={VECTOR_TS},v1=xyz"}, "no v1="),
        ({"Anchor-Signature": f"t={VECTOR_TS},t={VECTOR_TS},v1={UTF8_DIGEST}"}, "more than one t="),
        (
            anchor_sig(UTF8_DIGEST) | {"Anchor-Timestamp": str(VECTOR_TS + 1)},
            "does not match the t=",
        ),
    ],
)
def test_anchor_missing_or_garbled_headers(headers: dict[str, str], message: str) -> None:
    with pytest.raises(Unauthorized, match=message):
        AnchorProvider("anchor", [ANCHOR_SECRET]).verify(headers, VECTOR_BODY, VECTOR_TS)


def test_anchor_header_names_are_case_insensitive_and_timestamp_header_may_match() -> None:
    headers = {
        "ANCHOR-SIGNATURE": f"t={VECTOR_TS},v1={UTF8_DIGEST}",
        "anchor-timestamp": str(VECTOR_TS),
    }
    AnchorProvider("anchor", [ANCHOR_SECRET]).verify(headers, VECTOR_BODY, VECTOR_TS)


def test_anchor_without_secrets_refuses_everything() -> None:
    with pytest.raises(Unauthorized, match="no Anchor secret"):
        AnchorProvider("anchor", []).verify(anchor_sig(UTF8_DIGEST), VECTOR_BODY, VECTOR_TS)


@pytest.mark.parametrize("path", samples("anchor", "*.json"), ids=lambda p: p.name)
def test_anchor_fixtures_parse(path: Path) -> None:
    body = path.read_bytes()
    [event] = AnchorProvider("anchor-prod", [ANCHOR_SECRET]).parse({}, body)
    obj = json.loads(body)
    assert (event.source, event.provider, event.id, event.type) == (
        "anchor-prod",
        "anchor",
        obj["id"],
        obj["type"],
    )
    assert event.data == obj["data"] and event.text == obj["text"] and event.envelope == obj
    assert event.created is not None and event.created.isoformat().startswith(obj["created"][:19])


def test_anchor_vector_body_parses_with_empty_data() -> None:
    [event] = AnchorProvider("a", []).parse({}, VECTOR_BODY)
    assert (event.type, event.data) == ("task.completed", {})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"type": "task.failed"}', "`id` must be a non-empty string, got nothing"),
        (b'{"id": 7, "type": "task.failed"}', "`id` must be a non-empty string, got 7"),
        (b'{"id": "e1", "type": ""}', "`type` must be a non-empty string"),
        (b'{"id": "e1", "type": "x", "data": [1]}', "`data` must be an object, got list"),
        (b"[" * 100_000, "not valid JSON"),
        (b"\xff\xfe{", "not valid JSON"),
    ],
)
def test_anchor_parse_errors_name_the_field(body: bytes, message: str) -> None:
    with pytest.raises(MalformedRequest, match=message.replace("[", r"\[")):
        AnchorProvider("a", []).parse({}, body)


NOT_TEXT = "must be valid text, without a lone surrogate (\\ud800-\\udfff) or NUL (\\u0000), got "


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"id": "e_\\ud800", "type": "t"}', "field `id` " + NOT_TEXT + r"'e_\ud800'"),
        (b'{"id": "e_\xed\xa0\x80", "type": "t"}', "field `id` " + NOT_TEXT + r"'e_\ud800'"),
        (b'{"id": "e_1", "type": "t.\\udfff"}', "field `type` " + NOT_TEXT + r"'t.\udfff'"),
        (b'{"id": "e_\\u0000", "type": "t"}', "field `id` " + NOT_TEXT + r"'e_\x00'"),
    ],
)
def test_an_id_or_type_that_is_not_valid_text_is_refused(body: bytes, detail: str) -> None:
    # an id is the key of dedup and of every log line: it cannot be shown with U+FFFD the way
    # free text is (two ids would become one), and no database text column can hold it
    for provider in (AnchorProvider("a", []), DeckProvider("d", [DECK_SECRET])):
        with pytest.raises(MalformedRequest) as refused:
            provider.parse({}, body)
        assert refused.value.detail == detail


def test_free_text_that_is_not_valid_text_is_accepted_as_it_came() -> None:
    body = b'{"id": "e1", "type": "t", "text": "\\udfff", "data": {"t": "\\ud800 \xed\xa0\x80"}}'
    [event] = AnchorProvider("a", []).parse({}, body)
    # U+FFFD replaces them where the event is stored and shown (relay.event.from_record)
    assert (event.text, event.data, event.body) == ("\udfff", {"t": "\ud800 \ud800"}, body)


def test_anchor_null_data_is_an_empty_object_and_bad_created_is_none() -> None:
    [event] = AnchorProvider("a", []).parse(
        {}, b'{"id": "e", "type": "t", "data": null, "created": "later"}'
    )
    assert event.data == {} and event.created is None


# ---------------------------------------------------------------- Deck


def test_deck_published_vector_verifies() -> None:
    DeckProvider("deck", [DECK_SECRET]).verify(deck_vector(), DECK_BODY, DECK_TS)


def test_deck_rotation_and_several_signature_entries() -> None:
    provider = DeckProvider("deck", [OTHER_DECK_SECRET, DECK_SECRET])
    provider.verify(deck_vector(), DECK_BODY, DECK_TS)
    entries = f"v1,{'A' * 44} v2,whatever {DECK_SIG}"
    provider.verify(deck_vector(**{"webhook-signature": entries}), DECK_BODY, DECK_TS)
    with pytest.raises(Unauthorized):
        DeckProvider("deck", [OTHER_DECK_SECRET]).verify(deck_vector(), DECK_BODY, DECK_TS)


@pytest.mark.parametrize(("offset", "ok"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_deck_freshness_uses_the_injected_clock(offset: int, ok: bool) -> None:
    provider = DeckProvider("deck", [DECK_SECRET])
    if ok:
        provider.verify(deck_vector(), DECK_BODY, DECK_TS + offset)
    else:
        with pytest.raises(Unauthorized, match="old" if offset > 0 else "future"):
            provider.verify(deck_vector(), DECK_BODY, DECK_TS + offset)


@pytest.mark.parametrize(
    ("override", "body", "message"),
    [
        ({"webhook-id": ""}, DECK_BODY, "missing webhook-id"),
        ({"webhook-timestamp": ""}, DECK_BODY, "missing webhook-timestamp"),
        ({"webhook-signature": ""}, DECK_BODY, "missing webhook-signature"),
        ({"webhook-timestamp": "1614265330.5"}, DECK_BODY, "unix seconds"),
        ({"webhook-signature": "garbage"}, DECK_BODY, "no well-formed"),
        ({"webhook-signature": "v1,***notbase64***"}, DECK_BODY, "no well-formed"),
        ({"webhook-signature": "v1,"}, DECK_BODY, "does not match"),
        ({"webhook-signature": DECK_SIG.replace("v1,", "v2,")}, DECK_BODY, "no well-formed"),
        ({"webhook-id": "msg_other"}, DECK_BODY, "does not match"),
        ({}, b'{"test": 2432232315}', "does not match"),
        ({}, b'{"test": "\xff"}', "not UTF-8"),
    ],
)
def test_deck_bad_requests_are_unauthorized(
    override: dict[str, str], body: bytes, message: str
) -> None:
    with pytest.raises(Unauthorized, match=message):
        DeckProvider("deck", [DECK_SECRET]).verify(deck_vector(**override), body, DECK_TS)


def test_deck_signs_like_the_test_helper() -> None:
    body = sample("deck", "task_run.failed.json").read_bytes()
    DeckProvider("deck", [DECK_SECRET]).verify(deck_headers(body, 5000, msg_id="msg_x"), body, 5000)


@pytest.mark.parametrize("path", samples("deck", "*.json"), ids=lambda p: p.name)
def test_deck_fixtures_parse(path: Path) -> None:
    body = path.read_bytes()
    [event] = DeckProvider("deck", [DECK_SECRET]).parse({}, body)
    obj = json.loads(body)
    assert (event.source, event.provider, event.id, event.type) == (
        "deck",
        "deck",
        obj["id"],
        obj["type"],
    )
    assert event.data == obj["data"] and event.envelope == obj and event.text is None
    assert event.created is not None and event.created.isoformat()[:19] == obj["created_at"][:19]


def test_deck_parse_errors_name_the_field() -> None:
    provider = DeckProvider("deck", [DECK_SECRET])
    with pytest.raises(MalformedRequest, match="`type`"):
        provider.parse({}, b'{"id": "evt_1", "object": "event"}')
    with pytest.raises(MalformedRequest, match="`data` must be an object, got str"):
        provider.parse({}, b'{"id": "evt_1", "type": "x", "data": "y"}')


# ---------------------------------------------------------------- Tabstack


def test_tabstack_bearer_token() -> None:
    provider = TabstackProvider("ts", "test-token")
    provider.verify({"Authorization": "Bearer test-token"}, b"", 0)
    provider.verify({"authorization": "bearer test-token"}, b"", 0)
    for value in ("Bearer wrong", "Basic test-token", "test-token", "Bearer", "Bearer test-token2"):
        with pytest.raises(Unauthorized):
            provider.verify({"Authorization": value}, b"", 0)
    with pytest.raises(Unauthorized):
        provider.verify({}, b"", 0)


def test_tabstack_without_a_token_refuses_everything() -> None:
    for token in (None, ""):
        with pytest.raises(Unauthorized, match="no token"):
            TabstackProvider("ts", token).verify({"Authorization": "Bearer "}, b"", 0)


@pytest.mark.parametrize(
    ("name", "data", "type_", "payload"),
    [
        ("agent:step", '{"currentIteration": 2}', "agent:step", {"currentIteration": 2}),
        ("", '"hi"', "message", {"value": "hi"}),
        ("x", "[1, 2]", "x", {"value": [1, 2]}),
        ("x", "null", "x", {"value": None}),
        ("x", "not json {", "x", {"raw": "not json {"}),
        ("task:setup", "", "task:setup", {}),
    ],
)
def test_tabstack_event_from_sse(name: str, data: str, type_: str, payload: dict[str, Any]) -> None:
    event = TabstackProvider("ts", None).event_from_sse("run_9", 4, name, data)
    assert (event.source, event.provider, event.id, event.type) == (
        "ts",
        "tabstack",
        "run_9:4",
        type_,
    )
    assert event.data == payload | {"run_id": "run_9"}


def test_tabstack_event_time_comes_from_its_timestamp() -> None:
    event = TabstackProvider("ts", None).event_from_sse("r", 0, "x", '{"timestamp": 1764000000000}')
    assert event.created is not None and event.created.year == 2025


def test_tabstack_parse_wants_an_event_stream() -> None:
    provider = TabstackProvider("ts", "t")
    with pytest.raises(MalformedRequest, match="text/event-stream"):
        provider.parse({"Content-Type": "application/json"}, b'{"event": "complete"}')
    with pytest.raises(MalformedRequest, match="no Server-Sent Events"):
        provider.parse({}, b'{"event": "complete"}')


def test_tabstack_parse_of_a_recorded_stream_is_its_story_with_stable_ids() -> None:
    provider = TabstackProvider("ts", "t")
    body = sample("tabstack", "run-success.sse").read_bytes()
    first = provider.parse({"content-type": "text/event-stream"}, body)
    assert [e.type for e in first] == ["run.started", "run.completed"]
    assert [e.id for e in provider.parse({}, body)] == [e.id for e in first]
    named = provider.parse({"X-Relay-Run-Id": "run_abc"}, body)
    assert [e.id for e in named] == ["run_abc:0", "run_abc:10"]


# ---------------------------------------------------------------- generic

GENERIC_BODY = (
    b'{"event": {"id": "g1", "kind": "deploy.failed", "at": 1700000000, "msg": "red"}, "x": 1}'
)


def test_generic_hmac_with_and_without_prefix_and_rotation() -> None:
    provider = GenericProvider("gen", secrets=["old-secret", "generic-secret"])
    sig = generic_sig(GENERIC_BODY)
    provider.verify({"X-Signature": sig}, GENERIC_BODY, 0)
    provider.verify({"x-signature": sig.removeprefix("sha256=").upper()}, GENERIC_BODY, 0)
    provider.verify({"X-Signature": generic_sig(GENERIC_BODY, "old-secret")}, GENERIC_BODY, 0)
    with pytest.raises(Unauthorized, match="does not match"):
        provider.verify({"X-Signature": generic_sig(GENERIC_BODY, "nope")}, GENERIC_BODY, 0)
    with pytest.raises(Unauthorized, match="does not match"):
        provider.verify({"X-Signature": sig}, GENERIC_BODY + b" ", 0)
    with pytest.raises(Unauthorized, match="missing X-Signature"):
        provider.verify({}, GENERIC_BODY, 0)
    with pytest.raises(Unauthorized, match="64 hex digits"):
        provider.verify({"X-Signature": "sha256=zz"}, GENERIC_BODY, 0)


def test_generic_custom_signature_header_and_prefix() -> None:
    provider = GenericProvider(
        "gen", secrets=["generic-secret"], signature_header="X-Hub", signature_prefix=""
    )
    provider.verify({"X-Hub": generic_sig(GENERIC_BODY).removeprefix("sha256=")}, GENERIC_BODY, 0)


def test_generic_is_never_open_by_accident() -> None:
    with pytest.raises(Unauthorized, match="no secret or token"):
        GenericProvider("gen").verify({"Authorization": "Bearer "}, GENERIC_BODY, 0)


def test_generic_every_configured_mechanism_must_pass() -> None:
    provider = GenericProvider("gen", secrets=["generic-secret"], token="tok")
    good = {"X-Signature": generic_sig(GENERIC_BODY), "Authorization": "Bearer tok"}
    provider.verify(good, GENERIC_BODY, 0)
    with pytest.raises(Unauthorized, match="Bearer"):
        provider.verify(good | {"Authorization": "Bearer nope"}, GENERIC_BODY, 0)
    with pytest.raises(Unauthorized, match="X-Signature"):
        provider.verify({"Authorization": "Bearer tok"}, GENERIC_BODY, 0)
    GenericProvider("gen", token="tok").verify({"Authorization": "Bearer tok"}, GENERIC_BODY, 0)


def test_generic_timestamp_header_bounds_the_age_both_ways() -> None:
    provider = GenericProvider("gen", token="tok", timestamp_header="X-Ts", tolerance_s=60)
    auth = {"Authorization": "Bearer tok"}
    provider.verify(auth | {"X-Ts": "1000"}, b"{}", 1060)
    with pytest.raises(Unauthorized, match="old"):
        provider.verify(auth | {"X-Ts": "1000"}, b"{}", 1061)
    provider.verify(auth | {"X-Ts": "1060"}, b"{}", 1000)
    with pytest.raises(Unauthorized, match=r"^X-Ts is 61 s in the future \(tolerance 60 s\)$"):
        provider.verify(auth | {"X-Ts": "1061"}, b"{}", 1000)
    with pytest.raises(Unauthorized, match="missing X-Ts"):
        provider.verify(auth, b"{}", 1000)


def test_generic_parse_by_paths() -> None:
    provider = GenericProvider(
        "gen",
        id_path="event.id",
        type_path="event.kind",
        data_path="event",
        created_path="event.at",
        text_path="event.msg",
        token="t",
    )
    [event] = provider.parse({}, GENERIC_BODY)
    assert (event.source, event.provider, event.id, event.type) == (
        "gen",
        "generic",
        "g1",
        "deploy.failed",
    )
    assert event.data["msg"] == "red" and event.text == "red"
    assert event.created is not None and event.created.year == 2023
    assert event.envelope["x"] == 1


def test_generic_defaults_take_the_whole_body_as_data() -> None:
    [event] = GenericProvider("gen", token="t").parse({}, b'{"id": 12, "type": "ping", "n": 1}')
    assert (event.id, event.type, dict(event.data)) == (
        "12",
        "ping",
        {"id": 12, "type": "ping", "n": 1},
    )


def test_generic_missing_id_is_derived_from_the_body() -> None:
    provider = GenericProvider("gen", token="t")
    [a] = provider.parse({}, b'{"type": "ping"}')
    [b] = provider.parse({}, b'{"type": "ping"}')
    [c] = provider.parse({}, b'{"type": "ping", "n": 2}')
    assert a.id == b.id != c.id and a.id.startswith("sha256:")


def test_generic_parse_errors_name_the_path() -> None:
    provider = GenericProvider("gen", type_path="event.kind", data_path="event.payload", token="t")
    with pytest.raises(
        MalformedRequest, match=r"`event\.kind` must be a non-empty string, got nothing"
    ):
        provider.parse({}, b'{"event": {}}')
    with pytest.raises(MalformedRequest, match=r"`event\.payload` must be an object, got int"):
        provider.parse({}, b'{"event": {"kind": "k", "payload": 3}}')
    with pytest.raises(MalformedRequest, match="`id` must be a string or an integer, got list"):
        GenericProvider("gen", token="t").parse({}, b'{"id": [], "type": "k"}')
    with pytest.raises(MalformedRequest) as refused:
        GenericProvider("gen", id_path="e.id", token="t").parse({}, b'{"e": {"id": "\\ud800"}}')
    assert refused.value.detail == "`e.id` " + NOT_TEXT + r"'\ud800'"
    with pytest.raises(MalformedRequest) as refused:
        provider.parse({}, b'{"event": {"kind": "k\\u0000"}}')
    assert refused.value.detail == r"`event.kind` " + NOT_TEXT + r"'k\x00'"


# ---------------------------------------------------------------- never anything else

ALL: list[Provider] = [
    AnchorProvider("anchor", [ANCHOR_SECRET]),
    AnchorProvider("anchor-hex", ["not hex at all"], key_encoding="utf8"),
    DeckProvider("deck", [DECK_SECRET]),
    TabstackProvider("ts", "tok"),
    GenericProvider("gen", secrets=["s"], token="tok", timestamp_header="X-Ts", data_path="d"),
]
HEADER_NAMES = [
    "Anchor-Signature",
    "Anchor-Timestamp",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "Authorization",
    "X-Signature",
    "X-Ts",
    "Content-Type",
    "X-Relay-Run-Id",
]
HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda t, v: f"t={t},v1={v}",
        st.integers(-(10**20), 10**20),
        st.text("0123456789abcdef", max_size=70),
    ),
    st.builds(lambda v: f"v1,{v}", st.text("ABCDEFabcdef0123456789+/=", max_size=50)),
    st.sampled_from(
        ["Bearer tok", "bearer ", "sha256=" + "a" * 64, "1614265330", "text/event-stream"]
    ),
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.dictionaries(
            st.sampled_from(["id", "type", "data", "created", "created_at", "text", "d", "event"])
            | st.text(max_size=4),
            kids,
            max_size=4,
        )
    ),
    max_leaves=12,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    JSONISH.map(lambda v: json.dumps(v).encode()),
    st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), max_size=5).map(
        lambda evs: "".join(f"event: {n}\ndata: {d}\n\n" for n, d in evs).encode(
            "utf-8", "surrogatepass"
        )
    ),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, len(ALL) - 1),
    headers=st.dictionaries(
        st.sampled_from(HEADER_NAMES) | st.text(max_size=10), HEADER_VALUES, max_size=6
    ),
    body=BODIES,
    now=st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 2 * 10**9),
)
def test_verify_and_parse_raise_only_unauthorized_or_malformed(
    index: int, headers: dict[str, str], body: bytes, now: float
) -> None:
    provider = ALL[index]
    with contextlib.suppress(Unauthorized):
        provider.verify(headers, body, now)
    try:
        events = provider.parse(headers, body)
    except MalformedRequest:
        return
    for event in events:
        assert event.id and event.type and event.source == provider.source


def test_a_broken_clock_refuses_rather_than_accepts() -> None:
    with pytest.raises(Unauthorized):
        AnchorProvider("anchor", [ANCHOR_SECRET]).verify(
            anchor_sig(UTF8_DIGEST), VECTOR_BODY, float("nan")
        )
