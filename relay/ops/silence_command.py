"""`relay silence add|list|expire`: its arguments, and what it prints (the operations are
`relay.ops.silences`; `relay.cli` opens the store and hands it here)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence

from relay.ops import silences as service
from relay.silences import parse_request, text
from relay.store import Store


def arguments(parser: argparse.ArgumentParser, command: Callable[..., int]) -> None:
    """The command's arguments; `command` is what `relay.cli` runs for it."""
    parser.set_defaults(fn=command)
    parser.add_argument("action", choices=["add", "list", "expire"])
    parser.add_argument("items", nargs="*", help="add: matchers (source=...); expire: IDs")
    parser.add_argument("--for", dest="duration", help="add: how long (90m, 2h, 1d)")
    parser.add_argument("--until", help="add: when it ends (ISO 8601, UTC unless zoned)")
    parser.add_argument("--destination", help="add: only this destination's messages")
    parser.add_argument("--key", help="add: only messages joining this thread or repeat key")
    parser.add_argument("--comment", default="", help="add: why")
    parser.add_argument("--by", default=os.environ.get("USER", ""), help="add: who ($USER)")
    parser.add_argument("--all", action="store_true", help="list: expired ones too")
    parser.add_argument("--json", action="store_true", help="list: one JSON object a line")


async def run(store: Store, args: argparse.Namespace, destinations: Sequence[str] | None) -> int:
    """Carry out the command; `SilenceError` (naming the field) for a request that is refused."""
    now = time.time()
    if args.action == "add":
        until = text.parse_time(args.until) if args.until else None
        request = parse_request(
            {"matchers": args.items, "destination": args.destination, "key": args.key,
             "ends_at": until, "duration": args.duration, "comment": args.comment,
             "created_by": args.by}
        )  # fmt: skip
        silence = await service.create(store, request, now, destinations)
        print(silence.id)
    elif args.action == "list":
        for found in await service.listing(store, now, expired=args.all):
            print(json.dumps(found.to_json(now)) if args.json else text.line(found, now))
    else:
        for silence_id in args.items:
            try:
                print(text.line(await service.expire(store, silence_id, now), now))
            except service.SilenceNotFound as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
    return 0
