"""Routing: the YAML rules compiled into matchers, and the pure decision of where an event goes.

Rules are tried in order. The first matching rule decides, unless it says `continue: true`, in
which case its destinations are kept and matching goes on. A matching `drop: true` rule ends
matching. When matching reaches the end of the rules without a deciding (non-`continue`) rule,
the `default` applies too. Each destination appears at most
once per event (the first rule that named it wins).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relay.config import Condition, Config, DefaultRoute, Match, Route
from relay.event import Event, dig

_ABSENT = object()


@dataclass(frozen=True, slots=True)
class Target:
    """One message to produce: which destination, with which template and mention."""

    destination: str
    template: str | None
    mentions: tuple[str, ...]  # the config's names; each chat writes them in its own form
    route: str


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """Why one rule did or did not match (for `relay routes` and the debug log)."""

    route: str
    matched: bool
    reason: str

    @property
    def verdict(self) -> str:
        """`match, stop`, `no match: <why>`; for the default, whether it applies."""
        if self.route == "default":
            return "applies" if self.matched else "applies, but sends nowhere"
        return f"match, {self.reason}" if self.matched else f"no match: {self.reason}"


@dataclass(frozen=True, slots=True)
class Decision:
    targets: tuple[Target, ...]
    dropped_by: str | None
    trace: tuple[RuleTrace, ...]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):  # an int beyond 1e308 overflows
        return None


def _compile_condition(cond: Condition) -> Callable[[Event], bool]:
    path, op = cond.path, cond.operator

    def get(event: Event) -> Any:
        return dig(event.data, path, _ABSENT)

    if op == "exists":
        want = bool(cond.exists)
        return lambda e: (get(e) not in (_ABSENT, None)) == want
    if op == "equals":
        return lambda e: get(e) == cond.equals
    if op == "not_equals":
        return lambda e: get(e) != cond.not_equals
    if op == "one_of":
        options = list(cond.one_of or [])
        return lambda e: any(get(e) == o for o in options)
    if op == "matches":
        pattern = re.compile(cond.matches or "")
        return lambda e: isinstance(v := get(e), str | int | float) and bool(pattern.search(str(v)))
    limit = float(getattr(cond, op))
    compare: Callable[[float, float], bool] = {
        "gt": float.__gt__,
        "gte": float.__ge__,
        "lt": float.__lt__,
        "lte": float.__le__,
    }[op]
    return lambda e: (n := _number(get(e))) is not None and compare(n, limit)


def _describe(cond: Condition) -> str:
    return f"{cond.path} {cond.operator} {getattr(cond, cond.operator)!r}"


@dataclass(frozen=True)
class Matcher:
    """A compiled `match:` (source, type globs, `when` conditions): what routes and silences
    (relay.silences) both test an event with."""

    sources: frozenset[str] | None
    types: tuple[str, ...] | None
    conditions: tuple[tuple[Callable[[Event], bool], str], ...]

    @classmethod
    def compile(cls, match: Match) -> Matcher:
        return cls(
            sources=frozenset(match.source) if match.source is not None else None,
            types=tuple(match.type) if match.type is not None else None,
            conditions=tuple((_compile_condition(c), _describe(c)) for c in match.when),
        )

    def explain(self, event: Event) -> str | None:
        """None when the event matches, else the first reason it does not."""
        if self.sources is not None and event.source not in self.sources:
            return f"source '{event.source}' not in {sorted(self.sources)}"
        if self.types is not None and not any(
            fnmatch.fnmatchcase(event.type, t) for t in self.types
        ):
            return f"type '{event.type}' matches none of {list(self.types)}"
        for test, text in self.conditions:
            if not test(event):
                return f"condition failed: {text}"
        return None


@dataclass(frozen=True)
class CompiledRoute:
    label: str
    matcher: Matcher
    route: Route

    def explain(self, event: Event) -> str | None:
        """None when the rule matches, else the first reason it does not."""
        return self.matcher.explain(event)


class Router:
    """Compiled routing rules; `decide(event)` is pure and assumes a validated config."""

    def __init__(self, routes: Sequence[Route], default: DefaultRoute) -> None:
        self._routes = tuple(
            CompiledRoute(label=r.name or f"routes[{i}]", matcher=Matcher.compile(r.match), route=r)
            for i, r in enumerate(routes)
        )
        self._default = default

    def route(self, label: str) -> Route | None:
        """The configured rule a target came from (None for the default)."""
        return next((c.route for c in self._routes if c.label == label), None)

    @classmethod
    def from_config(cls, config: Config) -> Router:
        return cls(config.routes, config.default)

    def decide(self, event: Event) -> Decision:
        targets: dict[str, Target] = {}
        trace: list[RuleTrace] = []
        decided = False
        for compiled in self._routes:
            why_not = compiled.explain(event)
            if why_not is not None:
                trace.append(RuleTrace(compiled.label, False, why_not))
                continue
            route = compiled.route
            if route.drop:
                trace.append(RuleTrace(compiled.label, True, "drop"))
                return Decision(tuple(targets.values()), compiled.label, tuple(trace))
            mentions = tuple(route.mention)
            for name in route.to:
                targets.setdefault(name, Target(name, route.template, mentions, compiled.label))
            trace.append(RuleTrace(compiled.label, True, "continue" if route.continue_ else "stop"))
            if not route.continue_:
                decided = True
                break
        if not decided:
            mentions = tuple(self._default.mention)
            for name in self._default.to:
                default = Target(name, self._default.template, mentions, "default")
                targets.setdefault(name, default)
            trace.append(RuleTrace("default", bool(self._default.to), "no rule matched"))
        return Decision(tuple(targets.values()), None, tuple(trace))
