"""Render benchmark: the CPU cost of making a message of an event, stage by stage, in µs.

    .venv/bin/python bench/render.py [--rounds 5] [--min-time 0.2]

Every shipped sample (relay/samples/**, parsed as relay parses it and read back as the stores
hand it over) goes through the built-in templates and one default route to a Slack webhook,
as in bench/e2e.py. Stages, each timed alone over all samples:
- render: `Renderer.render` (template, layout, card);
- <chat> payload: the chat's native payload built from the rendered card (`relay.render.formats`);
- stored message: the card as the stores write it (`json_text(message.to_json())`) and read
  back (`Message.from_json`), what passes between the router and a sender;
- routing trace: `relay.trace.routing_trace` (the explanation history keeps);
- Slack webhook body JSON: `json.dumps` of what the Slack webhook sender posts (slack-sdk's
  encoding, outside relay: for scale).
Each stage loops over the samples until `--min-time` has passed, `--rounds` times; the table
shows the best round (the least disturbed by the machine), as µs per event: for Anchor's
task.completed (the event bench/e2e.py sends) and as the mean over all samples. Prints a
Markdown table for the README. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay.config import parse_config  # noqa: E402
from relay.event import Event, as_stored, json_text  # noqa: E402
from relay.messages import Message, message_from_json  # noqa: E402
from relay.planning import plan  # noqa: E402
from relay.render.formats import discord, google_chat, mattermost, slack, teams  # noqa: E402
from relay.runtime import Runtime, build_runtime  # noqa: E402
from relay.samples import sample_events  # noqa: E402
from relay.trace import routing_trace  # noqa: E402

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["bench-secret"]}
  deck: {provider: deck, secrets: ["whsec_YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA=="]}
  tabstack: {provider: tabstack, token: "bench-token"}
destinations:
  d00: {type: webhook, url: "http://127.0.0.1:9/services/T000/B000/bench"}
default: {to: [d00]}
"""
E2E_EVENT = "anchor/task.completed"


def runtime() -> Runtime:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "relay.yaml"
        path.write_text(CONFIG, encoding="utf-8")
        return build_runtime(parse_config(CONFIG, path, {}))


def samples(rt: Runtime) -> dict[str, Event]:
    found: dict[str, Event] = {}
    for event in sample_events(rt):
        stored = as_stored(event)
        found.setdefault(f"{stored.source}/{stored.type}", stored)
    return found


def webhook_body(message: Message) -> dict[str, Any]:
    """What relay's Slack webhook sender posts (relay.delivery.slack.SlackWebhookSender)."""
    native = slack.payload(message)
    body: dict[str, Any] = {"text": native["text"], "unfurl_links": False, "unfurl_media": False}
    if native["blocks"]:
        body["blocks"] = native["blocks"]
    return body


def stages(rt: Runtime, events: dict[str, Event]) -> dict[str, Callable[[str], object]]:
    """Stage name -> a function of the case name doing that stage's work once."""
    renderer = rt.renderer
    messages = {name: renderer.render(e).message for name, e in events.items()}
    stored = {name: json_text(m.to_json()) for name, m in messages.items()}
    planned = {name: plan(rt, e, now=0.0) for name, e in events.items()}
    bodies = {name: webhook_body(m) for name, m in messages.items()}

    def trace(name: str) -> str:
        p = planned[name]
        return routing_trace(rt, events[name], p.decision, p.messages, p.routes, p.template_errors)

    return {
        "render": lambda name: renderer.render(events[name]),
        "Slack payload": lambda name: slack.payload(messages[name]),
        "Discord payload": lambda name: discord.payload(messages[name]),
        "Teams payload": lambda name: teams.payload(messages[name]),
        "Google Chat payload": lambda name: google_chat.payload(messages[name]),
        "Mattermost payload": lambda name: mattermost.payload(messages[name]),
        "stored message: write": lambda name: json_text(messages[name].to_json()),
        "stored message: read": lambda name: message_from_json(json.loads(stored[name])),
        "routing trace": trace,
        "Slack webhook body JSON": lambda name: json.dumps(bodies[name]),
    }


def per_event_us(
    work: Callable[[str], object], names: list[str], rounds: int, least: float
) -> float:
    """The best round's µs per call of `work` over `names`."""
    best = float("inf")
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while True:
            for name in names:
                work(name)
            calls += len(names)
            spent = time.perf_counter() - start
            if spent >= least:
                break
        best = min(best, spent / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per round")
    args = parser.parse_args()
    rt = runtime()
    events = samples(rt)
    rt.renderer.warm()
    names = sorted(events)
    print(f"{len(names)} samples; Python {platform.python_version()}; best of {args.rounds}")
    print()
    print(f"| stage | {E2E_EVENT} (µs) | all samples, mean (µs) |")
    print("|---|---|---|")
    for stage, work in stages(rt, events).items():
        one = per_event_us(work, [E2E_EVENT], args.rounds, args.min_time)
        mean = per_event_us(work, names, args.rounds, args.min_time)
        print(f"| {stage} | {one:.1f} | {mean:.1f} |")


if __name__ == "__main__":
    main()
