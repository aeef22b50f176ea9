"""`relay.render.prettyjson.pretty` writes exactly what `json.dumps(indent=2,
ensure_ascii=False)` writes for plain JSON data, and leaves everything else to json."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.render.prettyjson import MAX_DEPTH, pretty

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_plain_json_data_reads_as_json_dumps_writes_it(value: Any) -> None:
    assert pretty(value) == json.dumps(value, indent=2, ensure_ascii=False)


def test_what_json_writes_its_own_way_is_left_to_it() -> None:
    class Text(str):
        pass

    deep: list[Any] = []
    inner = deep
    for _ in range(MAX_DEPTH + 1):
        inner.append([])
        inner = inner[0]
    for value in ({1: "a"}, ("a",), Text("a"), [Text("a")], {"k": object()}, deep):
        assert pretty(value) is None
