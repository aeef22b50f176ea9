"""History's pure parts: the opaque cursor, percentiles, and the filters read from a query."""

from __future__ import annotations

import pytest

from relay.ops.history import BadQuery, parse_filter, parse_page
from relay.store.views import EventFilter, decode_cursor, encode_cursor, percentile


def test_a_cursor_round_trips_and_a_foreign_one_is_refused() -> None:
    cursor = encode_cursor(12345)
    assert cursor is not None and "12345" not in cursor
    assert decode_cursor(cursor) == 12345
    assert encode_cursor(None) is None
    for bad in ("", "abc", "a2V5", "!!!", encode_cursor(1)[:-1] + "*"):  # type: ignore[index]
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    values = [float(i) for i in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)


def test_filters_are_read_and_checked() -> None:
    f = parse_filter({"source": "anchor", "type": "task.*", "since": "1700000000", "q": "x"})
    assert f == EventFilter(source="anchor", type="task.*", since=1700000000.0, q="x")
    assert parse_filter({"until": "2023-11-14T22:13:20Z"}).until == 1700000000.0
    assert parse_filter({"outcome": ""}) == EventFilter()
    assert parse_page({}) == (None, 50)
    assert parse_page({"limit": "500", "cursor": encode_cursor(7)}) == (7, 500)
    with pytest.raises(BadQuery, match=r"^outcome: expected one of delivered, retrying"):
        parse_filter({"outcome": "lost"})
    with pytest.raises(BadQuery, match=r"^source: expected a string"):
        parse_filter({"source": ["a"]})
    with pytest.raises(BadQuery, match=r"^limit: "):
        parse_page({"limit": "501"})
