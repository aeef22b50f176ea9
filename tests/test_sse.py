"""relay.sse: the incremental Server-Sent Events decoder."""

from __future__ import annotations

import itertools

import httpx
import pytest
from faketabstack import API_KEY, FakeTabstack
from harness import sample, samples
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.errors import PayloadTooLarge
from relay.providers.tabstack.sse import SSEDecoder, SSEEvent, SSEEventTooLarge

STREAMS = samples("tabstack", "*.sse")

SAMPLE = (
    b"\xef\xbb\xbf: a comment line\n"
    b"retry: 2500\n"
    b"event: agent:status\n"
    b"id: 7\n"
    b'data: {"message": "caf\xc3\xa9",\n'
    b'data:  "plan": "x"}\n'
    b"\n"
    b"data: no name\r\n"
    b"data: second\r\n"
    b"\r\n"
    b"event: done\r"
    b"data\r"
    b"\r"
    b"event: task:setup\n"
    b"\n"
)
SAMPLE_EVENTS: list[SSEEvent] = [
    ("agent:status", '{"message": "café",\n "plan": "x"}', "7"),
    ("message", "no name\nsecond", "7"),
    ("done", "", "7"),
    ("task:setup", "", "7"),
]


def decode(chunks: list[bytes], max_event_size: int = 4096, strict: bool = False) -> list[SSEEvent]:
    decoder = SSEDecoder(max_event_size, strict=strict)
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def split_at(body: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


def test_decodes_fields_comments_line_endings_and_bom() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(SAMPLE) == SAMPLE_EVENTS
    assert decoder.retry_ms == 2500
    assert decoder.last_event_id == "7"


def test_every_single_split_point_gives_the_same_events() -> None:
    for cut in range(len(SAMPLE) + 1):
        assert decode(split_at(SAMPLE, [cut])) == SAMPLE_EVENTS, f"split at byte {cut}"


def test_byte_by_byte_gives_the_same_events() -> None:
    assert decode([SAMPLE[i : i + 1] for i in range(len(SAMPLE))]) == SAMPLE_EVENTS


@settings(max_examples=300)
@given(st.data())
def test_any_split_of_a_fixture_stream_gives_the_same_events(data: st.DataObject) -> None:
    body = data.draw(st.sampled_from(STREAMS)).read_bytes()
    whole = decode([body])
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    assert decode(split_at(body, cuts)) == whole


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_each_line_ending_gives_the_same_events(eol: bytes) -> None:
    body = STREAMS[0].read_bytes().replace(b"\n", eol)
    expected = decode([STREAMS[0].read_bytes()])
    assert decode([body]) == expected
    assert decode([body[i : i + 1] for i in range(len(body))]) == expected


def test_an_event_is_returned_as_soon_as_its_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: start\ndata: {}\n") == []
    assert decoder.feed(b"\n") == [("start", "{}", "")]
    assert decoder.feed(b"data: 1\n\ndata: 2") == [("message", "1", "")]


def test_an_unfinished_event_at_the_end_of_the_stream_is_not_returned() -> None:
    assert decode([b"data: a\n\ndata: b\n"]) == [("message", "a", "")]


def test_id_persists_and_an_id_with_nul_is_ignored() -> None:
    body = b"id: 1\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\nid\ndata: d\n\n"
    assert decode([body]) == [
        ("message", "a", "1"),
        ("message", "b", "1"),
        ("message", "c", "1"),
        ("message", "d", ""),
    ]


def test_field_without_space_unknown_fields_and_bad_retry() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: soon\nfoo: bar\ndata:x\ndata:  two spaces\n\n")
    assert events == [("message", "x\n two spaces", "")]
    assert decoder.retry_ms is None


def test_strict_mode_drops_events_without_data_as_browsers_do() -> None:
    assert decode([b"event: task:aborted\n\ndata: x\n\n"], strict=True) == [("message", "x", "")]
    assert decode([b"event: task:aborted\n\n"]) == [("task:aborted", "", "")]
    assert decode([b": just a comment\n\n\n"]) == []


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode([b"data: \xff\xfe\n\n"]) == [("message", "\ufffd\ufffd", "")]


def test_an_oversized_event_raises_a_clear_error() -> None:
    decoder = SSEDecoder(max_event_size=100)
    with pytest.raises(SSEEventTooLarge, match="exceeded the limit of 100 characters"):
        for _ in range(20):
            decoder.feed(b"data: " + b"x" * 10 + b"\n")
    assert issubclass(SSEEventTooLarge, PayloadTooLarge)


def test_an_endless_line_raises_instead_of_growing_forever() -> None:
    decoder = SSEDecoder(max_event_size=1000)
    with pytest.raises(SSEEventTooLarge):
        for _ in range(200):
            decoder.feed(b"x" * 10)


def test_many_small_events_never_trip_the_size_guard() -> None:
    body = b"data: " + b"y" * 80 + b"\n\n"
    assert len(decode([body * 100], max_event_size=100)) == 100


async def test_decodes_a_live_stream_from_a_real_http_server() -> None:
    stream = sample("tabstack", "run-success.sse")
    with FakeTabstack(stream, pause=0.005) as fake:
        decoder = SSEDecoder()
        seen: list[SSEEvent] = []
        async with (
            httpx.AsyncClient(timeout=10) as client,
            client.stream(
                "POST",
                fake.base_url + "/automate",
                json={"task": "t"},
                headers={"Authorization": f"Bearer {API_KEY}"},
            ) as response,
        ):
            async for chunk in response.aiter_bytes():
                seen += decoder.feed(chunk)
    assert seen == decode([stream.read_bytes()])
    assert [name for name, _, _ in seen][-3:] == ["task:completed", "complete", "done"]
