"""Ingest benchmark: relay against a bare Starlette handler, on the same machine, in one run.

    .venv/bin/python bench/ingest.py [--seconds 10] [--concurrency 32] [--rss-events 100000]

Measures, each server running as its own process on loopback:
1. throughput and p50/p99 acknowledgement latency of a bare Starlette handler that only parses
   JSON, and of relay (signed Anchor events, SQLite persistence before the 202), with
   `--concurrency` connections for `--seconds` each;
2. end-to-end latency from POST to the fake Slack receiving the message (unthrottled channel,
   one event at a time);
3. relay's peak RSS (VmHWM) after `--rss-events` events.
Prints a Markdown table for the README. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakeslack import FakeSlack  # noqa: E402
from harness import RelayProcess, free_port  # noqa: E402
from signing import ANCHOR_SECRET, SLACK_TOKEN, anchor_headers  # noqa: E402

BASE = json.loads((ROOT / "relay" / "samples" / "anchor" / "task.completed.json").read_text())

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
slack: {token: "${SLACK_BOT_TOKEN}", api_url: "${SLACK_API_URL}"}
destinations:
  events: {type: slack, channel: "#browser-events"}
default: {to: [events]}
pacing: {rate: 100000, burst: 100000}
"""

BARE = textwrap.dedent(
    """
    import json, sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hook(request):
        body = json.loads(await request.body())
        return JSONResponse({"status": "accepted", "ids": [body.get("id")]}, status_code=202)

    app = Starlette(routes=[Route("/hooks/{source}", hook, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
    """
)


def event_body(i: int, run: str) -> bytes:
    event = {**BASE, "id": f"evt_{run}_{i}", "data": {**BASE["data"], "task_id": f"tsk_{i}"}}
    return json.dumps(event).encode()


async def load(
    url: str | list[str], seconds: float, concurrency: int, run: str
) -> tuple[int, list[float]]:
    """`concurrency` keep-alive connections posting signed events as fast as answers come,
    spread round-robin over `url` when it is a list (replicas)."""
    urls = [url] if isinstance(url, str) else url
    latencies: list[float] = []
    counter = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(n: int) -> None:
            target = urls[n % len(urls)] + "/hooks/anchor"
            nonlocal counter
            while time.perf_counter() < deadline:
                counter += 1
                body = event_body(counter, run)
                headers = anchor_headers(body, int(time.time()))
                began = time.perf_counter()
                post = session.post(target, data=body, headers=headers)
                async with post as answer:
                    await answer.read()
                    if answer.status not in (200, 202):
                        raise RuntimeError(f"{answer.status}: {await answer.text()}")
                latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return len(latencies), latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def wait_ready(url: str) -> None:
    for _ in range(200):
        try:
            httpx.post(url + "/hooks/anchor", content=b"{}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rss-events", type=int, default=100_000)
    parser.add_argument("--e2e-events", type=int, default=200)
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []

    port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE, str(port)])
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        n, lat = asyncio.run(load(f"http://127.0.0.1:{port}", args.seconds, args.concurrency, "b"))
    finally:
        bare.terminate()
        bare.wait()
    bare_rps = n / args.seconds
    rows.append(("bare Starlette: requests/s", f"{bare_rps:.0f}"))
    rows.append(
        ("bare Starlette: ack p50 / p99 (ms)", f"{pct(lat, 0.5):.1f} / {pct(lat, 0.99):.1f}")
    )

    with FakeSlack() as slack, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "config.yaml").write_text(CONFIG)
        env = {
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_API_URL": slack.api_url,
            "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
            "RELAY_DATABASE_URL": f"sqlite:///{work}/relay.db",
            "RELAY_LOG_LEVEL": "warning",
        }
        relay = RelayProcess(work / "config.yaml", env, work).start()
        assert relay.proc is not None
        try:
            n, lat = asyncio.run(load(relay.url, args.seconds, args.concurrency, "r"))
            relay_rps = n / args.seconds
            rows.append(
                ("relay: requests/s", f"{relay_rps:.0f} ({relay_rps / bare_rps:.0%} of bare)")
            )
            rows.append(
                ("relay: ack p50 / p99 (ms)", f"{pct(lat, 0.5):.1f} / {pct(lat, 0.99):.1f}")
            )

            # let the backlog drain, then measure end-to-end one event at a time
            while len(slack.messages) < n:
                time.sleep(0.2)
            e2e: list[float] = []
            with httpx.Client() as client:
                for i in range(args.e2e_events):
                    before = len(slack.messages)
                    body = event_body(i, "e2e")
                    began = time.monotonic()
                    client.post(relay.url + "/hooks/anchor", content=body,
                                headers=anchor_headers(body, int(time.time())))  # fmt: skip
                    while len(slack.messages) == before:
                        time.sleep(0.0005)
                    e2e.append(slack.messages[-1].received - began)
            e2e_figures = f"{statistics.median(e2e) * 1000:.1f} / {pct(e2e, 0.99):.1f}"
            rows.append(("relay: POST -> fake Slack p50 / p99 (ms)", e2e_figures))

            sent = n + args.e2e_events
            remaining = max(0, args.rss_events - sent)
            while remaining > 0:
                chunk = asyncio.run(load(relay.url, 5.0, args.concurrency, f"m{remaining}"))[0]
                remaining -= chunk
                sent += chunk
            rows.append(
                (f"relay: peak RSS after {sent} events (MB)", f"{rss_peak_mb(relay.proc.pid):.0f}")
            )
        finally:
            relay.terminate()

    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{args.concurrency} connections, {args.seconds:.0f} s per load run\n")  # fmt: skip
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
