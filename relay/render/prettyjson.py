"""`json.dumps(value, indent=2, ensure_ascii=False)`, written faster for plain JSON data.

With an indent, the json module encodes in Python, through nested generators: the largest
single cost of rendering a message that shows an event's output or error as a code block
(`tojson_block`; bench/render.py). Data as an event's JSON parses holds only dicts with text
keys, lists, text, numbers, booleans and None: that is written here directly, the same text to
the character; anything else (another type, a subclass, deeper than `MAX_DEPTH`) is left to
json itself, by returning None.
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

MAX_DEPTH = 64
_INFINITY = float("inf")


class _NotPlain(Exception):
    """The value holds something json.dumps would write its own way: let it."""


def pretty(value: Any) -> str | None:
    """What `json.dumps(value, indent=2, ensure_ascii=False)` returns, or None if the value is
    not plain JSON data (then call json.dumps itself)."""
    out: list[str] = []
    try:
        _write(value, out, 0)
    except _NotPlain:
        return None
    return "".join(out)


def _write(value: Any, out: list[str], depth: int) -> None:
    kind = type(value)
    if kind is str:
        out.append(encode_basestring(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is float:
        out.append(_float(value))
    elif kind is dict or kind is list:
        if depth >= MAX_DEPTH:
            raise _NotPlain
        if not value:
            out.append("{}" if kind is dict else "[]")
            return
        inner = "\n" + "  " * (depth + 1)
        out.append("{" if kind is dict else "[")
        first = True
        if kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise _NotPlain
                out.append(inner if first else "," + inner)
                first = False
                out.append(encode_basestring(key))
                out.append(": ")
                _write(item, out, depth + 1)
        else:
            for item in value:
                out.append(inner if first else "," + inner)
                first = False
                _write(item, out, depth + 1)
        out.append("\n" + "  " * depth + ("}" if kind is dict else "]"))
    else:
        raise _NotPlain


def _float(value: float) -> str:
    # json.encoder's floatstr with allow_nan
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)
