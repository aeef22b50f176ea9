"""Replica benchmark: ingest throughput of 1, 2 and 3 relay processes sharing one PostgreSQL.

    .venv/bin/python bench/replicas.py [--seconds 10] [--concurrency 32]

For each replica count, a fresh schema on the machine's PostgreSQL (`RELAY_TEST_POSTGRES`,
default postgresql://postgres@127.0.0.1:5432/test), the replicas started together, and
`--concurrency` keep-alive connections spread over them posting signed Anchor events for
`--seconds`; meanwhile their workers deliver to the fake Slack (one channel, unthrottled pacing,
so delivery is bounded by one message in flight per channel across all replicas). Prints a
Markdown table for the README: acknowledgements per second with their latency, and messages
delivered per second during the same window. Not a test: figures depend on the machine (on a
2-core machine the replicas and the load generator share the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakeslack import FakeSlack  # noqa: E402

# the same events, load generator and relay processes as the ingest benchmark
from ingest import UNTHROTTLED, load, pct, running_relays  # noqa: E402
from pgschema import fresh_schema  # noqa: E402
from signing import SLACK_TOKEN  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    rows = []
    with FakeSlack() as slack:
        for count in (1, 2, 3):
            with fresh_schema() as url, tempfile.TemporaryDirectory() as tmp:
                env = {
                    "SLACK_BOT_TOKEN": SLACK_TOKEN,
                    "SLACK_API_URL": slack.api_url,
                    "RELAY_DATABASE_URL": url,
                }
                with running_relays(UNTHROTTLED, Path(tmp), env, count) as replicas:
                    slack.reset()
                    _n, lat = asyncio.run(
                        load([r.url for r in replicas], args.seconds, args.concurrency, str(count))
                    )
                    delivered = len(slack.messages)
                rps = len(lat) / args.seconds
                rows.append((count, rps, pct(lat, 0.5), pct(lat, 0.99), delivered / args.seconds))
    print(
        f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{args.concurrency} connections, {args.seconds:.0f} s per run, one PostgreSQL\n"
    )
    print("| replicas | requests/s | ack p50 / p99 (ms) | delivered/s |\n|---|---|---|---|")
    for count, rps, p50, p99, sent in rows:
        print(f"| {count} | {rps:.0f} | {p50:.1f} / {p99:.1f} | {sent:.0f} |")


if __name__ == "__main__":
    main()
