"""Humanized values for messages: durations, byte sizes, money, short ids, relative times.

Pure functions of their inputs, used by the renderer as Jinja filters. Event data is untrusted
and loosely typed, so every function accepts anything and returns "" (or None for the numeric
helpers) when the value cannot be read: a template then simply omits that fact.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from relay.event import parse_time

_CURRENCY_SYMBOLS = {"USD": "$"}


def as_number(value: Any) -> float | None:
    """A finite number from an int, float or numeric string; None otherwise (bools included)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int | float):
            number = float(value)  # an int beyond 1e308 overflows
        elif isinstance(value, str):
            number = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _strip_zero(text: str) -> str:
    return text[:-2] if text.endswith(".0") else text


def duration(ms: Any) -> str:
    """Milliseconds -> `850ms`, `4.2s`, `2m 5s`, `1h 3m`, `2d 4h`; "" if not a duration."""
    value = as_number(ms)
    if value is None or value < 0:
        return ""
    if value < 1000:
        return f"{round(value)}ms"
    tenths = round(value / 100)
    if tenths < 600:
        return _strip_zero(f"{tenths / 10:.1f}") + "s"
    seconds = round(value / 1000)
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {sec}s" if sec else f"{minutes}m"
    hours, minute = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minute}m" if minute else f"{hours}h"
    days, hour = divmod(hours, 24)
    return f"{days}d {hour}h" if hour else f"{days}d"


def filesize(size: Any) -> str:
    """Bytes -> `512 B`, `37.5 KB`, `2.5 MB` (powers of 1024); "" if not a size."""
    value = as_number(size)
    if value is None or value < 0:
        return ""
    if value < 1024:
        return f"{round(value)} B"
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    text = f"{value:.1f}" if value < 100 else f"{value:.0f}"
    return f"{_strip_zero(text)} {unit}"


def _amount(value: float) -> str:
    # Browser runs cost fractions of a cent: keep the significant digits of small amounts
    # (0.012) but show ordinary amounts the usual way (12.50).
    if abs(value) >= 1 or value == 0:
        return f"{value:,.2f}"
    whole, _, decimals = f"{value:.6f}".rstrip("0").partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def money(cost: Any) -> str:
    """`{amount, currency}` -> `$0.012` (USD) or `0.012 EUR`; "" if there is no amount."""
    if not isinstance(cost, Mapping):
        return ""
    value = as_number(cost.get("amount"))
    if value is None:
        return ""
    currency = cost.get("currency")
    code = currency.strip().upper() if isinstance(currency, str) else ""
    text = _amount(abs(value))
    sign = "-" if value < 0 else ""
    symbol = _CURRENCY_SYMBOLS.get(code)
    if symbol:
        return f"{sign}{symbol}{text}"
    return f"{sign}{text} {code[:8]}".rstrip()


SHORT_ID_WHOLE = 20  # ids up to this many characters are shown whole
_ID_TAIL = 8


def id_text(value: Any) -> str:
    """An id as text, whole: "" for nothing, an object or a list."""
    if type(value) is str:
        return value.strip()
    if value is None or isinstance(value, bool | Mapping | list):
        return ""
    return str(value).strip()


def short_id(value: Any, length: int = SHORT_ID_WHOLE) -> str:
    """An id short enough to scan that still tells ids apart; "" if empty.

    An id of at most `length` characters (never fewer than 20) is shown whole: `ses_8d2c1fda`,
    `nightly-42-run1:3`. A longer one keeps its first `length - 8` characters (its type prefix,
    `tsk_` or `trun_`, among them) and its last 8 around a `…`:
    `tsk_4f8w9n2b-3d5a-45e7-89ab-cdef0123456f` -> `tsk_4f8w9n2b…0123456f`.

    Guaranteed: two ids whose texts (stripped) differ get different short forms, unless both are
    longer than `length` and agree on their first `length - 8` and last 8 characters. (A
    shortened form is `length + 1` characters, so it never equals an id shown whole.)
    """
    text = id_text(value)
    whole = max(length, SHORT_ID_WHOLE)
    if len(text) <= whole:
        return text
    return text[: whole - _ID_TAIL] + "…" + text[-_ID_TAIL:]


def words(value: Any) -> str:
    """`invalid_credentials` -> `invalid credentials` (machine names for people)."""
    if value is None or isinstance(value, Mapping | list):
        return ""
    return re.sub(r"[_\s]+", " ", str(value)).strip()


def number(value: Any) -> str:
    """1234567 -> `1,234,567`; 2.5 -> `2.5`; "" if not a number."""
    num = as_number(value)
    if num is None:
        return ""
    if num.is_integer() and abs(num) < 1e15:
        return f"{int(num):,}"
    return _strip_zero(f"{num:,.2f}")


def plural(count: Any, singular: str, plural_form: str | None = None) -> str:
    """`plural(1, "file")` -> `1 file`, `plural(3, "file")` -> `3 files`."""
    num = as_number(count)
    if num is None:
        return ""
    word = singular if num == 1 else (plural_form or singular + "s")
    return f"{number(num)} {word}"


def percent(part: Any, whole: Any) -> str:
    """`percent(18, 25)` -> `72%`; "" when either is missing or whole is 0."""
    ratio = _ratio(part, whole)
    return "" if ratio is None else f"{round(100 * ratio)}%"


def bar(part: Any, whole: Any, width: int = 10) -> str:
    """A text progress bar `▰▰▰▰▰▰▰▱▱▱` of part/whole; "" when unreadable."""
    ratio = _ratio(part, whole)
    if ratio is None:
        return ""
    filled = max(0, min(width, round(width * ratio)))
    return "▰" * filled + "▱" * (width - filled)


def _ratio(part: Any, whole: Any) -> float | None:
    """part / whole, finite and at most 1e6 (so 100x of it rounds); None when unreadable."""
    a, b = as_number(part), as_number(whole)
    if a is None or b is None or b <= 0:
        return None
    ratio = a / b
    return ratio if math.isfinite(ratio) and abs(ratio) <= 1e6 else None


def between(start: Any, end: Any) -> int | None:
    """Milliseconds from `start` to `end` (ISO strings, datetimes, unix times); None if unknown."""
    a = start if isinstance(start, datetime) else parse_time(start)
    b = end if isinstance(end, datetime) else parse_time(end)
    if a is None or b is None or b < a:
        return None
    return round((b - a).total_seconds() * 1000)


def relative(then: Any, now: datetime) -> str:
    """`then` relative to the injected `now`: `just now`, `5 minutes ago`, `in 2 hours`."""
    when = then if isinstance(then, datetime) else parse_time(then)
    if when is None:
        return ""
    delta = (now - when).total_seconds()
    future = delta < 0
    seconds = abs(delta)
    if seconds < 45:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size * 0.95 or unit == "minute":
            amount = max(1, round(seconds / size))
            text = plural(amount, unit)
            return f"in {text}" if future else f"{text} ago"
    return ""  # pragma: no cover - the loop always returns
