"""`relay check`: everything that can be known about a config before an event arrives.

Errors: a template that does not compile, a sample event that falls back to the safe default
message, a route whose template renders Slack's Block Kit for a destination that is not Slack.
Warnings: a source that would refuse every request, a route that asks a destination for more
than its chat can do (threads, updates in place, a mention it has no form for, Slack buttons
without the signing secret or bot token they need), a destination's own settings worth a
second look. Pure apart from reading templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.delivery.destinations import kind
from relay.event import Event
from relay.messages import Blocks
from relay.planning import plan
from relay.runtime import Runtime
from relay.samples import sample_events


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check(runtime: Runtime) -> Report:
    config = runtime.config
    report = Report()
    events = list(sample_events(runtime))
    report.errors += runtime.renderer.check(events)
    for name, source in config.sources.items():
        if not getattr(source, "secrets", True) and not getattr(source, "token", None):
            report.warnings.append(
                f"sources.{name}: no secret or token set, its requests will get 401"
            )
    if runtime.dry_run:
        report.notes.append(
            "slack.token is empty: channel destinations print to the console (dry-run)"
        )
    for name, destination in config.destinations.items():
        report.warnings += [
            f"destinations.{name}: {w}" for w in kind(destination).warnings(destination)
        ]
    for i, route in enumerate(config.routes):
        report.warnings += _buttons(runtime, i)
        for name in route.to:
            destination = config.destinations[name]
            chat = kind(destination)
            where = f"routes[{i}]"
            if route.thread is not None and not chat.can_thread(destination):
                report.warnings.append(
                    f"{where}.thread: destination '{name}' ({chat.chat}) cannot reply in a"
                    " thread: its messages are posted one after the other"
                )
            if route.thread is not None and not chat.can_update(destination):
                report.warnings.append(
                    f"{where}.thread: destination '{name}' ({chat.chat}) cannot update a message"
                    " in place: each change of state is posted anew"
                )
            if route.repeat is not None and not chat.can_update(destination):
                report.warnings.append(
                    f"{where}.repeat: destination '{name}' ({chat.chat}) cannot update a message"
                    " in place: each repeat is posted"
                )
            for j, mention in enumerate(route.mention):
                if not chat.takes_mention(mention):
                    report.warnings.append(
                        f"{where}.mention[{j}]: '{mention}' has no form in {chat.chat}"
                        f" (destination '{name}'): left out of its messages"
                    )
    report.errors += _templates_for_the_wrong_chat(runtime, events)
    return report


def _buttons(runtime: Runtime, i: int) -> list[str]:
    """A route's Slack buttons need the app's signing secret (to take the clicks), the bot
    token (chat.update) and Slack channel destinations (nothing else carries them)."""
    config = runtime.config
    route = config.routes[i]
    if not route.buttons:
        return []
    where = f"routes[{i}].buttons"
    found: list[str] = []
    if not config.slack.signing_secrets:
        found.append(
            f"{where}: slack.signing_secrets is empty: clicks on the buttons are refused (404)"
        )
    if config.slack.token is None:
        found.append(f"{where}: slack.token is empty: no message carries the buttons")
    for name in route.to:
        if config.destinations[name].type != "slack":
            found.append(
                f"{where}: destination '{name}' is not a Slack channel (type: slack):"
                " its messages carry no buttons"
            )
    return found


def _templates_for_the_wrong_chat(runtime: Runtime, events: list[Event]) -> list[str]:
    """A template that renders Block Kit serves Slack destinations only."""
    problems: dict[str, None] = {}
    for event in events:
        planned = plan(runtime, event)
        for message, route in zip(planned.messages, planned.routes, strict=True):
            destination = runtime.config.destinations[message.destination]
            chat = kind(destination).chat
            if isinstance(message.message, Blocks) and chat not in ("slack", "console"):
                problems[
                    f"{route}: template '{message.template}' renders Slack Block Kit, which"
                    f" destination '{message.destination}' ({chat}) cannot show: build it on the"
                    " layout's message(...) (see the README, Adding a template)"
                ] = None
    return list(problems)
