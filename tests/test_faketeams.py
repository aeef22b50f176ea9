"""The fake Teams answers as a Workflows trigger does, and refuses what Teams would refuse: the
tests of relay's Teams delivery are only as good as these answers."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from faketeams import FakeTeams, check, lint

CARD: dict[str, Any] = {
    "type": "message",
    "attachments": [
        {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": "Hi <at>Alice</at>", "wrap": True},
                    {"type": "RichTextBlock", "inlines": [
                        {"type": "TextRun", "text": "<at>Bob</at> [x](https://evil.example)"},
                    ]},
                ],
                "msteams": {"width": "Full", "entities": [
                    {"type": "mention", "text": "<at>Alice</at>",
                     "mentioned": {"id": "alice@contoso.com", "name": "Alice"}},
                ]},
            },
        }
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def teams() -> Iterator[FakeTeams]:
    with FakeTeams(flows={"alerts": "sig-a"}) as fake:
        yield fake


def test_an_accepted_card_is_202_with_an_empty_body_and_its_mentions_recorded(
    teams: FakeTeams,
) -> None:
    teams.reset()
    answer = httpx.post(teams.workflow_url("alerts", style="powerplatform"), json=CARD)
    assert (answer.status_code, answer.content) == (202, b"")
    (post,) = teams.posts
    assert [(t.text, t.element, t.entity, t.pings) for t in post.at_tags] == [
        ("<at>Alice</at>", "TextBlock", "alice@contoso.com", True),
        ("<at>Bob</at>", "TextRun", None, False),  # shown as text: pings nobody
    ]


def card_with(change: str) -> dict[str, Any]:
    card = copy.deepcopy(CARD)
    content = card["attachments"][0]["content"]
    if change == "version":
        content["version"] = "1.5"
    elif change == "wrapper":
        return dict(content)
    elif change == "element":
        content["body"].append({"type": "Media", "sources": []})
    elif change == "entity":
        content["msteams"]["entities"][0]["text"] = "<at>Carol</at>"
    elif change == "url":
        content["actions"] = [{"type": "Action.OpenUrl", "title": "x", "url": "javascript:x"}]
    elif change == "colour":
        content["body"][1]["inlines"][0]["color"] = "#ff0000"
    return card


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("version", "/attachments/0/content/version: above 1.4"),
        ("wrapper", "/type: must be 'message'"),
        ("element", "/attachments/0/content/body/2/type: unknown element type 'Media'"),
        ("entity", "/attachments/0/content/msteams/entities/0/text: is in no TextBlock"),
        ("url", "/attachments/0/content/actions/0/url: required: an http(s) URL"),
        ("colour", "/attachments/0/content/body/1/inlines/0/color: must be one of"),
    ],
)
def test_what_teams_would_refuse_is_a_400(teams: FakeTeams, change: str, problem: str) -> None:
    card = card_with(change)
    assert any(p.startswith(problem) for p in check(card)), check(card)
    answer = httpx.post(teams.workflow_url("alerts"), json=card)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "InvalidAdaptiveCard"


def test_a_body_over_teams_size_is_a_413_and_not_json_a_400(teams: FakeTeams) -> None:
    big = copy.deepcopy(CARD)
    big["attachments"][0]["content"]["body"][1]["inlines"][0]["text"] = "x" * 28_000
    answer = httpx.post(teams.workflow_url("alerts"), json=big)
    assert (answer.status_code, answer.json()["error"]["code"]) == (413, "RequestEntityTooLarge")
    form = httpx.post(teams.workflow_url("alerts"), data={"a": "b"})
    assert (form.status_code, form.json()["error"]["code"]) == (400, "InvalidRequestContent")


def test_scripted_and_real_throttling(teams: FakeTeams) -> None:
    teams.reset()
    teams.script("alerts", ["throttled:3", "throttled:none"])
    first = httpx.post(teams.workflow_url("alerts"), json=CARD)
    second = httpx.post(teams.workflow_url("alerts"), json=CARD)
    assert (first.status_code, first.headers.get("retry-after")) == (429, "3")
    assert (second.status_code, second.headers.get("retry-after")) == (429, None)
    with FakeTeams(flows={"alerts": "sig-a"}, rate_limit=4) as limited:
        codes = [
            httpx.post(limited.workflow_url("alerts"), json=CARD).status_code for _ in range(6)
        ]
    assert codes[:4] == [202] * 4 and 429 in codes[4:]


def test_lint_holds_relays_own_conventions() -> None:
    assert lint(CARD) == []
    unwrapped = copy.deepcopy(CARD)
    del unwrapped["attachments"][0]["content"]["body"][0]["wrap"]
    assert lint(unwrapped) == ["a TextBlock without wrap: true"]
