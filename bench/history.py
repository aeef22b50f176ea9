"""History benchmark: the JSON API's answer times over a full history, and its size on disk.

    .venv/bin/python bench/history.py [--events 100000] [--database sqlite|postgres]

Fills a fresh database with `--events` events of history spread over the last 7 days, written
by relay's own store the way the router and the worker write them (every Anchor sample type,
rendered by the built-in templates; two destinations; about 90% delivered, 5% dead after one
failed attempt, 3% retrying, the rest dropped by a rule), then starts `relay serve` on it and
times, over loopback with a keep-alive connection, the median and p95 of `--repeat` requests
of: the events list unfiltered, filtered (type glob + outcome, destination + time range, text),
its 10th page, and one event in full. Then the database's size per 1,000 events (SQLite: the
file and its WAL; PostgreSQL: every table and index of the schema). Prints a Markdown table.
Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import RelayProcess  # noqa: E402
from pgschema import fresh_schema  # noqa: E402

from relay.config import parse_config  # noqa: E402
from relay.event import Event  # noqa: E402
from relay.planning import plan  # noqa: E402
from relay.records import Reason, Routed, Settlement, Status  # noqa: E402
from relay.runtime import build_runtime  # noqa: E402
from relay.store import PostgresStore, SqliteStore, Store  # noqa: E402
from relay.trace import routing_trace  # noqa: E402

TOKEN = "bench-admin-token"
CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["bench-secret"]}
destinations:
  alerts: {type: slack, channel: "#browser-alerts"}
  events: {type: slack, channel: "#browser-events"}
routes:
  - name: noise
    match: {source: anchor, type: session.recording.ready}
    drop: true
  - name: failures
    match: {source: anchor, type: "*.failed"}
    to: [alerts]
default: {to: [events]}
"""
CHUNK = 1000
WEEK = 7 * 86400.0


def samples() -> list[dict[str, Any]]:
    folder = ROOT / "relay" / "samples" / "anchor"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


async def fill(store: Store, count: int) -> None:
    """`count` events of history, as the router and the worker write them."""
    loaded = parse_config(CONFIG, ROOT / "bench.yaml", env={})
    runtime = build_runtime(loaded)
    kinds = samples()
    start = time.time() - WEEK
    made = 0
    while made < count:
        n = min(CHUNK, count - made)
        batch: list[Event] = []
        for i in range(made, made + n):
            envelope = dict(kinds[i % len(kinds)], id=f"evt_bench_{i:08d}")
            body = json.dumps(envelope).encode()
            batch.append(
                Event(
                    "anchor",
                    "anchor",
                    envelope["id"],
                    envelope["type"],
                    envelope.get("data") or {},
                    text=envelope.get("text"),
                    envelope=envelope,
                    body=body,
                )
            )
        at = [start + WEEK * (made + k) / count for k in range(n)]
        await asyncio.gather(*(store.receive(e, t) for e, t in zip(batch, at, strict=True)))
        routed = []
        for received in await store.inbox(n):
            done = plan(runtime, received.event, received.received_at)
            trace = routing_trace(
                runtime,
                received.event,
                done.decision,
                done.messages,
                done.routes,
                done.template_errors,
            )
            routed.append(Routed(received, done.messages, done.routes, trace))
        await store.enqueue(routed)
        now = at[-1]
        found = await store.claim(now, now + 60, rate=1e9, burst=1e9, limit=100, run=n)
        settles = []
        for claim in found.claimed:
            for row in claim.rows:
                number = int(row.event_id.rsplit("_", 1)[1])
                at_row = row.created_at + 0.4 + (number % 7) / 10
                if number % 20 == 0:
                    s = Settlement(
                        row.id,
                        row.pace_key,
                        Status.DEAD,
                        Reason.CHANNEL,
                        at_row,
                        "channel_not_found",
                        took=0.08,
                    )
                elif number % 33 == 0:
                    s = Settlement(
                        row.id,
                        row.pace_key,
                        Status.PENDING,
                        Reason.SERVER_ERROR,
                        at_row,
                        "HTTP 503",
                        next_attempt_at=now + 10 * WEEK,
                        took=0.3,
                    )
                else:
                    s = Settlement(
                        row.id,
                        row.pace_key,
                        Status.SENT,
                        Reason.OK,
                        at_row,
                        channel_id="C0ALERTS01",
                        ts=f"{at_row:.6f}",
                        took=0.12,
                    )
                settles.append(store.settle(s))
        await asyncio.gather(*settles)
        made += n
        print(f"\r  filled {made:,} / {count:,}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def timed(client: httpx.Client, path: str, repeat: int, **params: Any) -> tuple[float, float]:
    """Median and p95 milliseconds of `repeat` requests (after one warm-up)."""
    client.get(path, params=params).raise_for_status()
    took = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.95))]


def size_bytes(database: str, url: str, path: Path) -> int:
    if database == "sqlite":
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with psycopg.connect(url) as conn:
        (total,) = conn.execute(
            "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        ).fetchone()  # type: ignore[misc]
    return int(total)


@contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "postgres":
        with fresh_schema() as url:
            yield url
    else:
        yield f"sqlite:///{tmp}/relay.db"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name, database(args.database, Path(name)) as url:
        tmp = Path(name)
        store: Store = (
            PostgresStore(url) if args.database == "postgres" else SqliteStore(tmp / "relay.db")
        )

        async def run() -> None:
            await store.open()
            try:
                await fill(store, args.events)
            finally:
                await store.close()

        started = time.monotonic()
        asyncio.run(run())
        filled = time.monotonic() - started
        config = tmp / "relay.yaml"
        config.write_text(CONFIG)
        env = {"RELAY_ADMIN_TOKEN": TOKEN, "RELAY_DATABASE_URL": url, "SLACK_BOT_TOKEN": ""}
        relay = RelayProcess(config, {**os.environ, **env}, tmp).start(timeout=120)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=relay.url, headers=headers, timeout=60) as client:
                newest = client.get("/api/events", params={"limit": 1}).json()["events"][0]
                middle = newest["id"] - args.events // 2
                cursor = None
                for _ in range(9):
                    page = client.get("/api/events", params={"cursor": cursor} if cursor else {})
                    cursor = page.json()["next"]
                now = time.time()
                rows = [
                    ("events list, unfiltered (50)", timed(client, "/api/events", args.repeat)),
                    (
                        "events list, 10th page",
                        timed(client, "/api/events", args.repeat, cursor=cursor),
                    ),
                    (
                        "events list, type=task.* outcome=dead",
                        timed(client, "/api/events", args.repeat, type="task.*", outcome="dead"),
                    ),
                    (
                        "events list, destination=alerts, last 24 h",
                        timed(
                            client,
                            "/api/events",
                            args.repeat,
                            destination="alerts",
                            since=now - 86400,
                        ),
                    ),
                    (
                        "events list, q=<an event id>",
                        timed(client, "/api/events", args.repeat, q="evt_bench_00000042"),
                    ),
                    (
                        "events list, q=<text>",
                        timed(client, "/api/events", args.repeat, q="rejected"),
                    ),
                    ("one event", timed(client, f"/api/events/{middle}", args.repeat)),
                    ("overview", timed(client, "/api/overview", max(3, args.repeat // 4))),
                ]
        finally:
            relay.terminate()
        size = size_bytes(args.database, url, tmp / "relay.db")
    print(f"\n{args.events:,} events of history on {args.database} (filled in {filled:.0f} s)\n")
    print("| request | median (ms) | p95 (ms) |")
    print("|---|---|---|")
    for label, (median, p95) in rows:
        print(f"| {label} | {median:.1f} | {p95:.1f} |")
    print(f"\ndatabase size: {size / args.events * 1000 / 1024:.0f} KiB per 1,000 events")


if __name__ == "__main__":
    main()
