"""The render stage: template lookup, the automatic escaping, the safe fallback, mentions, check."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slackview import SlackRenderer as Renderer
from slackview import SlackView as RenderedMessage

from relay.event import Event
from relay.render.blockkit import MAX_BLOCKS_JSON, blocks_size
from relay.render.renderer import FALLBACK

WHEN = datetime(2026, 5, 24, 12, 18, 5, tzinfo=UTC)
HOSTILE = [
    "<!channel>",
    "<!here|here>",
    "<!everyone>",
    "<@U123>",
    "<#C123|general>",
    "<!subteam^S456>",
    "<https://evil.example|click me>",
    "&lt;!channel&gt;",
    "\\u003c!channel\\u003e",
    '", "blocks": [{"type": "section"}], "x": "',
    "```\n<!here>\n```",
    "*bold* _it_ ~strike~ >quote",
    "a" * 10_000,
    "\u0000\u001f\u2028\u2029 control",
]
OK_LINK = ("<https://ok.example/x|", "<https://ok.example/x>")
DATE_TOKEN = re.compile(r"^<!date\^\d+\^[^|<>^]*\|[^<>|]*>$")


def event(
    data: Any, *, type: str = "thing.happened", source: str = "acme", provider: str = "generic"
) -> Event:
    return Event(source, provider, "evt_1234567890", type, data, WHEN, text=None)


def user_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    return tmp_path


def mrkdwn_texts(message: RenderedMessage) -> list[str]:
    """Every text Slack parses as mrkdwn: the fallback text and each mrkdwn text object."""
    found = [message.text]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
                found.append(value["text"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(message.blocks)
    return found


def control_sequences(message: RenderedMessage) -> list[str]:
    return [seq for text in mrkdwn_texts(message) for seq in re.findall(r"<[^<>]*>", text)]


def assert_safe(message: RenderedMessage, allowed_links: tuple[str, ...] = ()) -> None:
    """No mention, broadcast or link that the template did not make from a trusted URL."""
    for seq in control_sequences(message):
        assert DATE_TOKEN.match(seq) or seq.startswith(allowed_links), seq
    assert blocks_size(message.blocks) <= MAX_BLOCKS_JSON
    assert message.text.strip()
    assert len(message.text) <= 3000
    json.dumps(message.blocks)


LAYOUT_TEMPLATE = """{% from "_layout.j2" import message with context %}
{{ message("failure", "Run " ~ data.name ~ " failed",
    summary="Owner " ~ data.name ~ " on " ~ link(data.url, data.name),
    fields=[("Name", data.name), ("Empty", none), ("Zero", 0)],
    error={"type": data.name, "code": data.name, "message": data.name},
    sections=[data.name|quote],
    details=[("Output", data.name)],
    buttons=[("Open " ~ data.name, data.url), ("Bad", data.name)],
    context=[data.name],
    fact=data.name) }}"""


@pytest.fixture
def layout_renderer(tmp_path: Path) -> Renderer:
    return Renderer(user_dir(tmp_path, {"acme/default.j2": LAYOUT_TEMPLATE}))


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_never_makes_a_mention_or_link(
    layout_renderer: Renderer, hostile: str
) -> None:
    message = layout_renderer.render(event({"name": hostile, "url": "https://ok.example/x"}))
    assert message.error is None
    assert message.template == "acme/default"
    assert_safe(message, OK_LINK)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_in_every_builtin_is_harmless(hostile: str) -> None:
    renderer = Renderer()
    fields = ["task_id", "session_id", "error", "message", "type", "name", "id", "status",
              "task", "final_answer", "reason", "file_name", "url", "live_view_url"]  # fmt: skip
    data = {key: hostile for key in fields}
    data["errors"] = [{"type": hostile, "code": hostile, "message": hostile, "field": hostile}]
    data["artifacts"] = [{"name": hostile, "url": hostile}]
    for provider, kind in [
        ("anchor", "task.failed"),
        ("anchor", "intervention.requested"),
        ("deck", "task_run.failed"),
        ("deck", "credential.invalid"),
        ("tabstack", "run.failed"),
        ("tabstack", "agent:status"),
        ("acme", "anything"),
    ]:
        message = renderer.render(event(data, type=kind, source=provider, provider=provider))
        assert message.error is None, message.error
        assert_safe(message)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('<>!@#&|^\\"`*_ \n:/abcuhtps03cC')), max_size=80))
def test_no_generated_text_escapes_the_sandbox(text: str) -> None:
    message = LAYOUT.render(event({"name": text, "url": "https://ok.example/x"}))
    assert message.error is None
    assert_safe(message, OK_LINK)


# Hypothesis runs many examples per test: one renderer over a temporary folder for all of them.
LAYOUT = Renderer(user_dir(Path(tempfile.mkdtemp()), {"acme/default.j2": LAYOUT_TEMPLATE}))


def test_values_are_escaped_once_and_json_safe(layout_renderer: Renderer) -> None:
    message = layout_renderer.render(event({"name": 'A & B <x> "q" \\ \n', "url": "nope"}))
    section = message.blocks[1]["text"]["text"]
    assert section == 'Owner A &amp; B &lt;x&gt; "q" \\ \n on A &amp; B x "q" \\'
    header = message.blocks[0]["text"]["text"]
    assert header == ':x: Run A & B <x> "q" \\ failed'  # plain_text: not mrkdwn-escaped


def test_already_escaped_entities_are_shown_as_typed(layout_renderer: Renderer) -> None:
    message = layout_renderer.render(event({"name": "&lt;b&gt;", "url": "x"}))
    assert "&amp;lt;b&amp;gt;" in message.blocks[1]["text"]["text"]


def test_unsafe_urls_make_no_button_and_no_link(layout_renderer: Renderer) -> None:
    for url in ("javascript:alert(1)", "https://a.example/x y", "https://a|b", "ftp://x", None, 7):
        message = layout_renderer.render(event({"name": "n", "url": url}))
        assert message.error is None
        assert [b for b in message.blocks if b["type"] == "actions"] == []
        assert control_sequences(message) == [control_sequences(message)[-1]]  # only the date


def test_fields_skip_empty_values_but_keep_zero(layout_renderer: Renderer) -> None:
    message = layout_renderer.render(event({"name": "n", "url": "https://ok.example/x"}))
    fields = [f["text"] for b in message.blocks for f in b.get("fields", [])]
    assert fields == ["*Name*\nn", "*Zero*\n0"]


def test_buttons_have_unique_action_ids_and_context_line(layout_renderer: Renderer) -> None:
    message = layout_renderer.render(event({"name": "n", "url": "https://ok.example/x"}))
    actions = next(b for b in message.blocks if b["type"] == "actions")
    assert [e["url"] for e in actions["elements"]] == ["https://ok.example/x"]
    context = message.blocks[-1]["elements"][0]["text"]
    assert context.startswith("n · acme · `evt_1234567890` · <!date^1779625085^")
    assert message.text == ":x: Run n failed — n"


def test_mention_goes_first_in_text_and_blocks(layout_renderer: Renderer) -> None:
    message = layout_renderer.render(event({"name": "n", "url": "x"}), mention="<!here> <@U1>")
    assert message.text.startswith("<!here> <@U1> :x: Run n failed")
    assert message.blocks[0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "<!here> <@U1>"},
    }


def test_mention_is_kept_on_the_fallback_too(tmp_path: Path) -> None:
    renderer = Renderer(user_dir(tmp_path, {"acme/default.j2": "{{ nope }}"}))
    message = renderer.render(event({"a": 1}), mention="<!channel>")
    assert message.template == FALLBACK
    assert message.text.startswith("<!channel> ")
    assert message.blocks[0]["text"]["text"] == "<!channel>"


# --- lookup --------------------------------------------------------------------------------


def test_lookup_order_user_then_builtin_specific_first(tmp_path: Path) -> None:
    files = {
        "anchor/default.j2": '{"text": "user anchor default", "blocks": []}',
        "anchor/task.failed.j2": '{"text": "user task.failed", "blocks": []}',
        "deck/task_run.*.j2": '{"text": "user task_run", "blocks": []}',
        "default.j2": '{"text": "user default", "blocks": []}',
    }
    renderer = Renderer(user_dir(tmp_path, files))
    ev = event({}, source="anchor", provider="anchor", type="task.failed")
    assert renderer.render(ev).text == "user task.failed"
    # A built-in with a more specific name beats the user's less specific one.
    assert renderer.resolve(
        event({}, source="anchor", provider="anchor", type="task.completed")
    ) == ("anchor/task.completed")
    assert renderer.resolve(event({}, source="deck", provider="deck", type="task_run.failed")) == (
        "deck/task_run.*"
    )
    assert renderer.resolve(event({}, source="anchor", provider="anchor", type="new.thing")) == (
        "anchor/default"
    )
    assert renderer.resolve(event({})) == "default"


def test_source_name_before_provider(tmp_path: Path) -> None:
    files = {"anchor-staging/default.j2": '{"text": "staging", "blocks": []}'}
    renderer = Renderer(user_dir(tmp_path, files))
    staging = event({}, source="anchor-staging", provider="anchor", type="task.failed")
    assert renderer.resolve(staging) == "anchor-staging/default"
    other = event({}, source="anchor-prod", provider="anchor", type="task.failed")
    assert renderer.resolve(other) == "anchor/task.failed"


def test_explicit_template_wins_and_a_missing_one_is_reported(tmp_path: Path) -> None:
    renderer = Renderer(user_dir(tmp_path, {"short.j2": '{"text": "short one", "blocks": []}'}))
    ev = event({}, source="anchor", provider="anchor", type="task.failed")
    assert renderer.render(ev, template="short").text == "short one"
    assert renderer.render(ev, template="short.j2").template == "short"
    missing = renderer.render(ev, template="nope/../../etc/passwd")
    assert missing.template == "anchor/task.failed"
    assert missing.error == "template 'nope/../../etc/passwd' not found; used 'anchor/task.failed'"


def test_missing_user_dir_uses_builtins(tmp_path: Path) -> None:
    renderer = Renderer(tmp_path / "does-not-exist")
    assert renderer.resolve(event({}, source="deck", provider="deck", type="agent.created")) == (
        "deck/agent.*"
    )


# --- fallback ------------------------------------------------------------------------------

BROKEN = {
    "syntax": "{% if %}",
    "raises": "{{ data.missing.deeper }}",
    "not-json": "hello {{ data.a }}",
    "json-array": "[1, 2]",
    "unknown-block": '{"text": "t", "blocks": [{"type": "wat"}]}',
    "block-not-object": '{"text": "t", "blocks": ["x"]}',
    "no-text": '{"blocks": [{"type": "divider"}]}',
    "safe-filter": '{"text": "{{ data.a|safe }}", "blocks": []}',
    "sandbox": '{"text": "{{ data.__class__.__mro__ }}", "blocks": []}',
    "mutation": '{"text": "{{ data.update({"a": 1}) }}", "blocks": []}',
    "division": '{"text": "{{ 1 / 0 }}", "blocks": []}',
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_template_falls_back_to_the_safe_default(tmp_path: Path, case: str) -> None:
    renderer = Renderer(user_dir(tmp_path, {"acme/default.j2": BROKEN[case]}))
    ev = Event("acme", "generic", "evt_9", "thing.failed",
               {"a": "<!channel> & <@U1>", "n": 3, "big": "x" * 5000, "deep": {"k": 1},
                "none": None, "<key>": "v"},
               WHEN, text="Provider says <!here> hi")  # fmt: skip
    message = renderer.render(ev)
    assert message.template == FALLBACK
    assert message.error is not None and message.error.startswith("acme/default: ")
    assert_safe(message)
    assert message.blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": ":information_source: acme · thing.failed",
            "emoji": True,
        },
    }
    assert message.blocks[1]["text"]["text"] == "Provider says &lt;!here&gt; hi"
    fields = [f["text"] for f in message.blocks[2]["fields"]]
    assert fields[0] == "*a*\n&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert fields[1] == "*n*\n3"
    assert len(fields[2]) < 320
    assert fields[3] == "*&lt;key&gt;*\nv"
    assert "`evt_9`" in message.blocks[-1]["elements"][0]["text"]
    assert message.text == (
        ":information_source: acme · thing.failed — Provider says &lt;!here&gt; hi"
    )


def test_error_names_the_problem(tmp_path: Path) -> None:
    renderer = Renderer(user_dir(tmp_path, BROKEN | {"acme/default.j2": BROKEN["raises"]}))
    error = renderer.render(event({"a": 1})).error or ""
    assert "UndefinedError" in error and "missing" in error
    renderer = Renderer(user_dir(tmp_path, {"acme/default.j2": BROKEN["not-json"]}))
    assert "not valid JSON" in (renderer.render(event({"a": 1})).error or "")


def test_render_never_raises_on_odd_events() -> None:
    renderer = Renderer()
    deep: Any = "bottom"
    for _ in range(5000):
        deep = {"d": deep}
    odd = [
        Event("acme", "generic", "", "", {}),
        Event("acme", "generic", "x", "a.b", {"deep": deep}),
        Event("anchor", "anchor", "x", "task.failed", {"x": [deep]}, text=None),
        Event("acme", "generic", "x", "t", "not a mapping"),  # type: ignore[arg-type]
        Event("x" * 500, "generic", "y" * 5000, "z" * 5000, {"k" * 5000: "v" * 50000}),
    ]
    for ev in odd:
        message = renderer.render(ev)
        assert message.text
        assert_safe(message)


def test_oversized_output_is_truncated_not_rejected(tmp_path: Path) -> None:
    many = (
        '{"text": "t", "blocks": [{% for i in range(80) %}{% if not loop.first %},{% endif %}'
        '{"type": "section", "text": {"type": "mrkdwn", "text": "{{ data.a }}"}}{% endfor %}]}'
    )
    renderer = Renderer(user_dir(tmp_path, {"acme/default.j2": many}))
    message = renderer.render(event({"a": "y" * 2000}))
    assert message.error is None
    assert message.blocks[-1]["elements"][0]["text"] == "…truncated"
    assert blocks_size(message.blocks) <= MAX_BLOCKS_JSON
    assert len(message.blocks) < 50


# --- filters seen through templates ---------------------------------------------------------


def render_text(tmp_path: Path, expr: str, data: Any) -> str:
    body = '{"text": "' + expr + '", "blocks": []}'
    renderer = Renderer(user_dir(tmp_path, {"acme/default.j2": body}))
    message = renderer.render(event(data))
    assert message.error is None, message.error
    return message.text


@pytest.mark.parametrize(
    ("expr", "data", "expected"),
    [
        ("{{ data.ms|duration }}", {"ms": 125000}, "2m 5s"),
        ("{{ data.b|bytes }}", {"b": 2621440}, "2.5 MB"),
        ("{{ data.c|money }}", {"c": {"amount": 0.012, "currency": "EUR"}}, "0.012 EUR"),
        ("{{ data.c|money }}|", {"c": 0.5}, "|"),
        ("{{ data.i|short_id }}", {"i": "trun_a1b2c3d4e5f6"}, "trun_a1b2c3d4e5f6"),
        ("{{ dig(data, 'a.0.b', 'none') }}", {"a": [{"b": "x"}]}, "x"),
        ("{{ dig(data, 'a.5.b', 'none') }}", {"a": "str"}, "none"),
        ("{{ count(data.a) }}/{{ count(data.b) }}", {"a": [1, 2], "b": "s"}, "2/"),
        (
            "{{ link(data.u, data.l) }}",
            {"u": "https://x.example/a?b=1&c=2", "l": "A|B<c>"},
            "<https://x.example/a?b=1&c=2|ABc>",
        ),
        ("{{ link(data.u, data.l) }}", {"u": "javascript:x", "l": "A & B"}, "A &amp; B"),
        (
            "{{ data.t|slack_date('{date}') }}",
            {"t": "2026-05-24T12:18:05Z"},
            "<!date^1779625085^{date}|2026-05-24 12:18 UTC>",
        ),
        ("t{{ data.t|slack_date }}", {"t": "yesterday"}, "t"),
        (
            "{{ data.a ~ link(data.u, 'x') ~ data.a }}",
            {"a": '"<\\', "u": "https://x.example"},
            '"&lt;\\<https://x.example|x>"&lt;\\',
        ),
        (
            "{{ [data.a, link(data.u, 'x')]|join(data.a) }}",
            {"a": "<>", "u": "https://x.example"},
            "&lt;&gt;&lt;&gt;<https://x.example|x>",
        ),
        ("{{ data.a|plain }}", {"a": "a & b"}, "a & b"),
    ],
)  # fmt: skip
def test_filters_in_templates(tmp_path: Path, expr: str, data: Any, expected: str) -> None:
    assert render_text(tmp_path, expr, data) == expected


def test_a_forged_date_or_link_from_data_is_neutralized(tmp_path: Path) -> None:
    # `{{ x|tojson }}` as a JSON value: its strings are mrkdwn-escaped too.
    body = '{"text": {{ data.a|tojson }}, "blocks": []}'
    renderer = Renderer(user_dir(tmp_path, {"acme/default.j2": body}))
    assert renderer.render(event({"a": "<!here>"})).text == "&lt;!here&gt;"
    # Markup `+` str uses HTML escaping, which leaves `\u003c` to be decoded by the JSON
    # parser: the sanitizer still shows a sequence that no filter of this render produced.
    body = '{% set m %}m{% endset %}{"text": "{{ m + data.a }}", "blocks": []}'
    renderer = Renderer(user_dir(tmp_path, {"acme/default.j2": body}))
    message = renderer.render(event({"a": "\\u003c!channel\\u003e"}))
    assert message.error is None
    assert message.text == "m&lt;!channel&gt;"
    forged = '{"text": "{{ data.a|plain }}", "blocks": []}'
    renderer = Renderer(user_dir(tmp_path, {"acme/default.j2": forged}))
    message = renderer.render(event({"a": "<!date^1^{date}|x> <https://evil.example|ok>"}))
    assert message.text == "&lt;!date^1^{date}|x&gt; &lt;https://evil.example|ok&gt;"


# --- check ---------------------------------------------------------------------------------


def test_check_reports_compile_errors_and_fallbacks(tmp_path: Path) -> None:
    files = {"acme/default.j2": "{{ data.missing }}", "broken/x.j2": "{% for %}", "README.md": "#"}
    renderer = Renderer(user_dir(tmp_path, files))
    problems = renderer.check([event({"a": 1}), event({}, source="deck", provider="deck",
                                                     type="task_run.failed")])  # fmt: skip
    assert problems[0].startswith("template broken/x.j2: line 1: ")
    assert len(problems) == 2
    assert problems[1].startswith("acme thing.happened (evt_1234567890): acme/default: ")


def test_builtins_all_compile() -> None:
    assert Renderer().check([]) == []


def test_slack_sdk_checks_block_kit_from_user_templates_and_cards_skip_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import relay.render.blockkit

    checked: list[str] = []
    monkeypatch.setattr(relay.render.blockkit, "_sdk_check", lambda i, b: checked.append(b["type"]))
    assert Renderer().builtin_only
    assert Renderer(tmp_path).builtin_only  # a folder with no template in it
    Renderer().render(event({"name": "n", "url": "https://ok.example"}, type="task.failed",
                            source="anchor", provider="anchor"))  # fmt: skip
    assert checked == []
    # a card is laid out by relay itself, from a user's template too
    renderer = Renderer(user_dir(tmp_path / "t", {"acme/default.j2": LAYOUT_TEMPLATE}))
    assert not renderer.builtin_only
    message = renderer.render(event({"name": "n", "url": "https://ok.example"}))
    assert message.error is None and checked == []
    # Block Kit written by hand in a user's template gets slack-sdk's second opinion
    blocks = (
        '{"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h"}}]}'
    )
    renderer = Renderer(user_dir(tmp_path / "u", {"acme/default.j2": blocks}))
    message = renderer.render(event({"name": "n"}))
    assert message.error is None and checked == ["header"]


def test_a_template_may_put_the_layouts_card_inside_its_own_output(tmp_path: Path) -> None:
    """The card comes out whole when a template renders it alone; a template that wraps it
    (in whitespace, a comment, a set block) still gets the card's JSON where it called it."""
    wrapped = '{% set m %}{{ message("success", "Done", summary="ok") }}{% endset %}\n  {{ m }}  \n'
    plain = '{{ message("success", "Done", summary="ok") }}'
    for name, source in (("wrapped", wrapped), ("plain", plain)):
        renderer = Renderer(user_dir(tmp_path / name, {"acme/default.j2": source}))
        message = renderer.render(event({"a": 1}))
        assert message.error is None, (name, message.error)
        assert message.blocks[0]["text"]["text"] == ":white_check_mark: Done"
        assert message.blocks[1]["text"]["text"] == "ok"


# --- the sandbox -------------------------------------------------------------------------

ESCAPES = [
    "{{ dig.__globals__ }}", "{{ message.__code__ }}", "{{ link.__globals__ }}",
    "{{ first.__closure__ }}", "{{ current_event.__globals__ }}", "{{ data.__class__ }}",
    "{{ event.__class__.__mro__ }}", "{{ ''.__class__.__mro__ }}", "{{ data.clear() }}",
    "{{ data.update({'a': 1}) }}", "{{ [1].append(2) }}", "{{ data.items.__self__ }}",
    "{{ namespace.__init__.__globals__ }}", "{{ namespace.mro }}", "{{ range.__globals__ }}",
    "{{ '{0.__class__}'.format(data) }}", "{{ ('{0.__class__}' ~ '').format(data) }}",
]  # fmt: skip


@pytest.mark.parametrize("source", ESCAPES)
def test_the_sandbox_refuses_unsafe_access_every_time(tmp_path: Path, source: str) -> None:
    """relay's own functions are called without the sandbox's per-call checks and attribute
    verdicts are remembered per type: neither lets a template reach what the sandbox refuses,
    the first time or any later one."""
    template = '{"text": "' + source.replace('"', "'") + '", "blocks": []}'
    renderer = Renderer(user_dir(tmp_path, {"acme/default.j2": template}))
    ev = Event("acme", "generic", "evt_9", "thing.failed", {"a": "x"}, WHEN)
    for _ in range(3):
        message = renderer.render(ev)
        assert message.template == FALLBACK
        assert message.error is not None
        assert "unsafe" in message.error or "SecurityError" in message.error, message.error
