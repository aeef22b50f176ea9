"""mrkdwn safety helpers: escaping, safe links, date tokens, truncation, neutralizing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from relay.render.mrkdwn import (
    date_token,
    escape,
    link,
    link_label,
    neutralize,
    safe_url,
    truncate,
    truncate_mrkdwn,
)


def test_escape_ampersand_first_and_only_three_characters() -> None:
    assert escape("a & <b> &lt; \"'") == "a &amp; &lt;b&gt; &amp;lt; \"'"


@pytest.mark.parametrize(
    "url",
    ["https://x.example", "http://x.example/a?b=1&c=2#f", "HTTPS://X.EXAMPLE/p"],
)
def test_safe_urls(url: str) -> None:
    assert safe_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)", "ftp://x.example", "https://", "//x.example", "x.example",
        "https://x.example/a b", "https://x.example/\n", "https://x.example/|x",
        "https://x.example/<x>", "", None, 42, "https://x.example/" + "a" * 3000,
        "https://[::1", "mailto:a@b.c",
    ],
)  # fmt: skip
def test_unsafe_urls(url: object) -> None:
    assert safe_url(url) is None


def test_link_strips_label_and_refuses_unsafe_urls() -> None:
    assert link("https://x.example", "a|b<c>&d") == "<https://x.example|abc&amp;d>"
    assert link("https://x.example", "") == "<https://x.example>"
    assert link("https://x.example", None) == "<https://x.example>"
    assert link("javascript:x", "<!channel>") == "!channel"
    assert link_label("  many \n\t spaces ") == "many spaces"


def test_date_token_shows_in_readers_time_zone_with_utc_fallback() -> None:
    when = datetime(2026, 5, 24, 14, 18, tzinfo=timezone(timedelta(hours=2)))
    assert date_token(when) == "<!date^1779625080^{date_short_pretty} {time}|2026-05-24 12:18 UTC>"
    assert date_token(datetime(2026, 5, 24, 12, 18), "{date}|<x>^") == (
        "<!date^1779625080^{date}x|2026-05-24 12:18 UTC>"
    )
    assert date_token(datetime(2026, 5, 24, 12, 18, tzinfo=UTC), "").count("{time}") == 1


def test_truncate_marks_the_cut() -> None:
    assert truncate("abcdef", 6) == "abcdef"
    assert truncate("abcdefg", 6) == "abcde…"
    assert truncate("abc", 0) == ""


def test_truncate_mrkdwn_never_cuts_a_sequence_or_entity() -> None:
    text = "see <https://x.example/very/long|label> now"
    cut = truncate_mrkdwn(text, 20)
    assert cut == "see …"
    assert truncate_mrkdwn("a &amp; b", 5) == "a …"
    assert len(truncate_mrkdwn("x" * 5000, 3000)) == 3000


def test_truncate_mrkdwn_closes_an_open_code_block() -> None:
    text = "*Output*\n```" + "y" * 100 + "```"
    cut = truncate_mrkdwn(text, 50)
    assert cut.endswith("…\n```")
    assert len(cut) <= 50
    assert cut.count("```") == 2


def test_neutralize_keeps_only_allowed_sequences() -> None:
    allowed = {"<https://ok.example|ok>"}
    text = "<!here> <https://ok.example|ok> <https://evil|x> a < b > c &amp;"
    assert neutralize(text, allowed) == (
        "&lt;!here&gt; <https://ok.example|ok> &lt;https://evil|x&gt; a &lt; b &gt; c &amp;"
    )
    assert neutralize(">quote") == ">quote"
    assert neutralize("<<!channel>>") == "&lt;&lt;!channel&gt;>"
