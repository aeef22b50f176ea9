"""Store benchmark: the CPU time the store spends per message, phase by phase, without HTTP,
rendering or chats: what `bench/e2e.py`'s store thread does, measured alone.

    .venv/bin/python bench/store.py [--events 20000] [--destinations 32 1]
        [--database sqlite|postgres]

Each run opens a fresh store (a new SQLite file, or a throwaway schema on
`RELAY_TEST_POSTGRES`), then goes through the life of N events as relay does, in rounds:
- receive: `--round` events (32) accepted together (one group commit);
- route: `lead_routing`, `inbox` and `enqueue` of batches of 32 events (the router's batch),
  one message each, round-robin over D destinations (D pacing keys);
- claim: the worker's look (`claim`, runs of up to 32 per key, up to 64 keys);
- settle: every claimed message sent, the outcomes of one moment (one per key) settled
  together, as the worker's sends of different keys finish together.
It prints the process's CPU time per message in each phase (both threads: the caller's and the
store's) and the statements counted by phase. Not a test: figures depend on the machine, but
CPU time shifts far less than wall time on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pgschema import fresh_schema  # noqa: E402

from relay.event import Event  # noqa: E402
from relay.messages import Blocks  # noqa: E402
from relay.records import NewMessage, OutboxRow, Reason, Routed, Settlement, Status, Step  # noqa: E402
from relay.store import PostgresStore, SqliteStore  # noqa: E402
from relay.store.db import Db  # noqa: E402
from relay.store.interface import SqlStore  # noqa: E402

BATCH = 32
RUN = 32
PHASES = ("receive", "route", "claim", "settle")

_DATA: dict[str, Any] = {
    "task_id": "tsk_0",
    "name": "nightly-export",
    "status": "completed",
    "duration_ms": 48213,
    "owner": {"id": "usr_42", "name": "Dana Example", "email": "dana@example.com"},
    "links": {"run": "https://anchor.example.com/runs/run_123"},
    "tags": ["export", "nightly", "warehouse"],
}

statements: Counter[str] = Counter()
phase = "receive"
_run = Db.run


def _counting_run(self: Db, sql: str, args: Any = ()) -> Any:
    statements[phase] += 1
    return _run(self, sql, args)


def event(i: int) -> Event:
    """As a webhook's intake makes it: its body kept as it came."""
    data = {**_DATA, "task_id": f"tsk_{i}", "shard": i}
    envelope = {"id": f"evt_bench_{i}", "type": "task.completed", "data": data}
    return Event(
        source="anchor",
        provider="anchor",
        id=f"evt_bench_{i}",
        type="task.completed",
        data=data,
        envelope=envelope,
        body=json.dumps(envelope).encode(),
    )


def message(i: int, destinations: int) -> NewMessage:
    text = f"Task nightly-export completed in 48.2 s (tsk_{i})"
    blocks = (
        {"type": "section", "text": {"type": "mrkdwn", "text": "*" + text + "*"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"anchor · evt_bench_{i}"}]},
    )
    dest = f"hook{i % destinations}"
    return NewMessage(dest, f"webhook:{dest}", "anchor/task.completed", Blocks(text, blocks),
                      step=Step())  # fmt: skip


def sent(row: OutboxRow) -> Settlement:
    return Settlement(row.id, row.pace_key, Status.SENT, Reason.OK, time.time(), took=0.01)


async def one_run(
    store: SqlStore, events: int, destinations: int, per_round: int
) -> dict[str, float]:
    global phase
    spent = dict.fromkeys(PHASES, 0.0)
    holder = "bench-router"
    now = time.time()
    delivered = 0
    received = 0
    # made up front: rendering is not the store's work
    incoming = [event(i) for i in range(events)]
    rendered = {e.id: message(i, destinations) for i, e in enumerate(incoming)}

    def clock(name: str) -> None:
        global phase
        phase = name

    while delivered < events:
        # receive
        clock("receive")
        t = time.process_time()
        top = min(events, received + per_round)
        if received < top:
            await asyncio.gather(*(store.receive(e, now) for e in incoming[received:top]))
            received = top
        spent["receive"] += time.process_time() - t
        # route everything waiting
        clock("route")
        t = time.process_time()
        while True:
            assert await store.lead_routing(holder, now, 10.0)
            waiting = await store.inbox(BATCH)
            if not waiting:
                break
            await store.enqueue([Routed(r, (rendered[r.event.id],)) for r in waiting], now)
        spent["route"] += time.process_time() - t
        # one look of the worker, then every claimed run sent
        clock("claim")
        t = time.process_time()
        found = await store.claim(
            now, now + 120.0, rate=100_000.0, burst=100_000.0, limit=64, run=RUN
        )
        spent["claim"] += time.process_time() - t
        clock("settle")
        t = time.process_time()
        longest = max((len(c.rows) for c in found.claimed), default=0)
        for i in range(longest):
            outcomes = [store.settle(sent(c.rows[i])) for c in found.claimed if i < len(c.rows)]
            delivered += len(outcomes)
            await asyncio.gather(*outcomes)
        spent["settle"] += time.process_time() - t
        now += 0.001
    return spent


async def bench(database: str, events: int, destinations: int, per_round: int) -> None:
    statements.clear()
    with tempfile.TemporaryDirectory() as tmp:
        if database == "sqlite":
            store: SqlStore = SqliteStore(Path(tmp) / "relay.db")
            spent = await _measure(store, events, destinations, per_round)
        else:
            with fresh_schema() as url:
                store = PostgresStore(url)
                spent = await _measure(store, events, destinations, per_round)
    total = sum(spent.values())
    parts = ", ".join(
        f"{p} {spent[p] / events * 1e6:.0f} µs ({statements[p] / events:.2f} st)" for p in PHASES
    )
    print(
        f"{database}, {destinations} destinations, {events:,} events, {per_round} a round: "
        f"{total / events * 1e6:.0f} µs CPU per message; {parts}",
        flush=True,
    )


async def _measure(
    store: SqlStore, events: int, destinations: int, per_round: int
) -> dict[str, float]:
    await store.open()
    try:
        return await one_run(store, events, destinations, per_round)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--destinations", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--round", type=int, default=32, help="events received per round")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    Db.run = _counting_run  # type: ignore[method-assign]
    for destinations in args.destinations:
        asyncio.run(bench(args.database, args.events, destinations, args.round))


if __name__ == "__main__":
    main()
