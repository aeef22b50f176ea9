"""Silences benchmark: what checking silences costs the router, and that intake is untouched.

    .venv/bin/python bench/silences.py [--events 2000] [--silences 0,100]

In one process on a temporary SQLite store: accepts `--events` events (the acknowledgement
path: silences are not read there), then routes them (`Pipeline.route_pending`, which reads
the silences once per batch and tests each message against them), with each count of active
silences in turn (none of which match, the worst case: every silence is tried). Prints the
accept and route rates. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from relay.config import parse_config
from relay.event import Event
from relay.ops import silences as service
from relay.pipeline import Pipeline
from relay.runtime import build_runtime
from relay.silences import parse_request
from relay.store import SqliteStore

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [bench-secret]}
destinations:
  alerts: {type: console}
routes:
  - {match: {type: task.failed}, to: [alerts]}
"""


async def run(events: int, silences: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "relay.db")
        await store.open()
        runtime = build_runtime(parse_config(CONFIG, Path(tmp) / "relay.yaml", {}))
        pipeline = Pipeline(runtime, store, yield_seconds=0.0)
        now = time.time()
        for n in range(silences):
            wanted = parse_request(
                {"matchers": ["source=anchor", "type=task.*", f"data.task_id=tsk_never_{n}"],
                 "duration": "1h"}
            )  # fmt: skip
            await service.create(store, wanted, now)
        started = time.perf_counter()
        await asyncio.gather(
            *(
                pipeline.accept(Event("anchor", "anchor", f"e{i}", "task.failed", {"task_id": i}))
                for i in range(events)
            )
        )
        accepted = time.perf_counter() - started
        started = time.perf_counter()
        while await pipeline.route_pending():
            pass
        routed = time.perf_counter() - started
        await store.close()
        return events / accepted, events / routed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--silences", default="0,100")
    args = parser.parse_args()
    print("| active silences | accepted/s | routed/s |")
    print("|---|---|---|")
    for count in (int(c) for c in args.silences.split(",")):
        accept, route = asyncio.run(run(args.events, count))
        print(f"| {count} | {accept:,.0f} | {route:,.0f} |")


if __name__ == "__main__":
    main()
