"""Humanized values: durations, sizes, money, ids, counts and relative times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.render import humanize


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (0, "0ms"), (850, "850ms"), (4218, "4.2s"), (12000, "12s"), (27540, "27.5s"),
        (59960, "1m"), (125000, "2m 5s"), (3_780_000, "1h 3m"), (7_200_000, "2h"),
        (93_600_000, "1d 2h"), ("4218", "4.2s"), (None, ""), (-5, ""), ("soon", ""),
        (True, ""), (float("nan"), ""), ({"ms": 1}, ""),
    ],
)  # fmt: skip
def test_duration(ms: Any, expected: str) -> None:
    assert humanize.duration(ms) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0 B"), (512, "512 B"), (38421, "37.5 KB"), (2621440, "2.5 MB"),
        (4891204, "4.7 MB"), (150 * 1024 * 1024, "150 MB"), (3 * 1024**4, "3 TB"),
        (None, ""), (-1, ""), ("big", ""),
    ],
)  # fmt: skip
def test_filesize(size: Any, expected: str) -> None:
    assert humanize.filesize(size) == expected


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        ({"amount": 0.012, "currency": "USD"}, "$0.012"),
        ({"amount": 0.012, "currency": "EUR"}, "0.012 EUR"),
        ({"amount": 12.5, "currency": "usd"}, "$12.50"),
        ({"amount": 1234.5, "currency": "GBP"}, "1,234.50 GBP"),
        ({"amount": 0, "currency": "USD"}, "$0.00"),
        ({"amount": -0.5, "currency": "USD"}, "-$0.50"),
        ({"amount": "0.25"}, "0.25"),
        ({"amount": None, "currency": "USD"}, ""),
        (0.5, ""),
        ("$1", ""),
        (None, ""),
    ],
)
def test_money(cost: Any, expected: str) -> None:
    assert humanize.money(cost) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tsk_4f8w9n2b-3d5a-45e7-89ab-cdef0123456f", "tsk_4f8w9n2b…0123456f"),
        ("5d2c31f6-ab7e-481a-b6fd-8b4a96a4e197", "5d2c31f6-ab7…96a4e197"),
        ("evt_01HXJ4MZ7K9P3Q6R8S2T4V5W7Y", "evt_01HXJ4MZ…2T4V5W7Y"),
        ("trun_a1b2c3d4", "trun_a1b2c3d4"),
        ("nightly-42-run1", "nightly-42-run1"),  # 20 characters or fewer: whole
        ("nightly-42-run1:17", "nightly-42-run1:17"),
        ("ses_8d2c1fda0001abcd", "ses_8d2c1fda0001abcd"),
        ("ses_8d2c1fda0001abcde", "ses_8d2c1fda…001abcde"),  # 21: the first one cut
        ("  plainid ", "plainid"),
        (12345, "12345"),
        (None, ""),
        (True, ""),
        ({"id": 1}, ""),
    ],
)
def test_short_id(value: Any, expected: str) -> None:
    assert humanize.short_id(value) == expected


def test_short_id_length_raises_what_is_shown_whole_never_lowers_it() -> None:
    uuid = "5d2c31f6-ab7e-481a-b6fd-8b4a96a4e197"
    assert humanize.short_id(uuid, 8) == humanize.short_id(uuid) == "5d2c31f6-ab7…96a4e197"
    assert humanize.short_id(uuid, 36) == uuid
    assert humanize.short_id(uuid, 30) == "5d2c31f6-ab7e-481a-b6f…96a4e197"


IDS = st.text(alphabet=st.sampled_from("abc01_-:…é"), max_size=40)


@st.composite
def id_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """Two ids, often one character apart, anywhere (the hard case for a short form)."""
    a = draw(IDS)
    if not a or draw(st.booleans()):
        return a, draw(IDS)
    at = draw(st.integers(0, len(a) - 1))
    return a, a[:at] + draw(st.sampled_from("ab0…")) + a[at + 1 :]


@settings(max_examples=3000, deadline=None)
@given(id_pairs())
def test_different_ids_look_different(pair: tuple[str, str]) -> None:
    """What `short_id` guarantees, exactly: different ids get different short forms unless
    both are longer than 20 characters and share their first 12 and their last 8."""
    a, b = pair
    alike = len(a) > 20 and len(b) > 20 and a[:12] == b[:12] and a[-8:] == b[-8:]
    if a != b and not alike:
        assert humanize.short_id(a) != humanize.short_id(b)
    short = humanize.short_id(a)
    assert short == a if len(a) <= 20 else short == a[:12] + "…" + a[-8:]


def test_words_number_plural_percent_bar() -> None:
    assert humanize.words("invalid_credentials") == "invalid credentials"
    assert humanize.number(1234567) == "1,234,567"
    assert humanize.number("x") == ""
    assert humanize.plural(1, "file") == "1 file"
    assert humanize.plural(3, "entry", "entries") == "3 entries"
    assert humanize.percent(18, 25) == "72%"
    assert humanize.percent(1, 0) == ""
    assert humanize.bar(18, 25) == "▰▰▰▰▰▰▰▱▱▱"
    assert humanize.bar(50, 25) == "▰" * 10


def test_between_and_relative_use_the_given_times() -> None:
    assert humanize.between("2025-01-15T09:30:00Z", "2025-01-15T09:31:15Z") == 75000
    assert humanize.between("2025-01-15T09:31:15Z", "2025-01-15T09:30:00Z") is None
    assert humanize.between(None, "2025-01-15T09:30:00Z") is None
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert humanize.relative(now - timedelta(seconds=10), now) == "just now"
    assert humanize.relative(now - timedelta(minutes=5), now) == "5 minutes ago"
    assert humanize.relative(now + timedelta(hours=2), now) == "in 2 hours"
    assert humanize.relative("2025-12-30T12:00:00Z", now) == "2 days ago"
    assert humanize.relative("garbage", now) == ""


@pytest.mark.parametrize(
    "value", [10**400, -(10**400), 1e308, -1e308, float("inf"), float("nan"), "1e999", True, None]
)
def test_numbers_out_of_range_are_left_out_not_raised(value: Any) -> None:
    assert humanize.percent(value, 1e-308) == ""
    assert humanize.bar(value, 1e-308) == ""
    assert humanize.percent(1, value) in ("", "0%")
    if isinstance(value, int) and not isinstance(value, bool):
        assert humanize.as_number(value) is None
        assert humanize.duration(value) == humanize.filesize(value) == humanize.number(value) == ""
