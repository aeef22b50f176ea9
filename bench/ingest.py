"""Ingest benchmark: relay against a bare Starlette handler, on the same machine, in one run.

    .venv/bin/python bench/ingest.py [--seconds 10] [--rounds 3] [--concurrency 32]

Measures, each server running as its own process on loopback:
1. throughput and p50/p99 acknowledgement latency of a bare Starlette handler that only parses
   JSON, and of relay (signed Anchor events, SQLite persistence before the 202, relay's default
   pacing of one message per second on the channel, as deployed), `--concurrency` keep-alive
   connections for `--seconds`. The two alternate for `--rounds` rounds and the medians are
   reported, because a virtual machine's speed drifts over minutes; after each relay round the
   next one waits until relay has rendered what it accepted (the time it took is reported), so
   relay's background work never runs during the bare handler's turn;
2. end-to-end latency from POST to the fake Slack receiving the message, one event at a time,
   on a fresh relay whose channel is unthrottled;
3. the first relay's peak RSS (VmHWM) once it has taken at least `--rss-events` events.
Prints a Markdown table for the README. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakeslack import FakeSlack  # noqa: E402
from harness import RelayProcess, free_port  # noqa: E402
from signing import ANCHOR_SECRET, SLACK_TOKEN, anchor_headers  # noqa: E402

BASE = json.loads((ROOT / "relay" / "samples" / "anchor" / "task.completed.json").read_text())

# as deployed: one Slack channel at relay's default pace (about one message a second)
PACED = """
sources:
  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}
slack: {token: "${SLACK_BOT_TOKEN}", api_url: "${SLACK_API_URL}"}
destinations:
  events: {type: slack, channel: "#browser-events"}
default: {to: [events]}
"""
# for the end-to-end latency (and the replica benchmark): nothing waits for the pace
UNTHROTTLED = PACED + "pacing: {rate: 100000, burst: 100000}\n"

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


def event_body(i: int, run: str, **data: object) -> bytes:
    """Anchor's task.completed sample as event `i` of `run`, with `data` added to its data."""
    fields = {**BASE["data"], "task_id": f"tsk_{i}", **data}
    return json.dumps({**BASE, "id": f"evt_{run}_{i}", "data": fields}).encode()


async def post_signed(session: aiohttp.ClientSession, target: str, body: bytes) -> None:
    """POST one event signed as Anchor signs it now; anything but 200/202 stops the load."""
    headers = anchor_headers(body, int(time.time()))
    async with session.post(target, data=body, headers=headers) as answer:
        await answer.read()
        if answer.status not in (200, 202):
            raise RuntimeError(f"{answer.status}: {await answer.text()}")


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
                began = time.perf_counter()
                await post_signed(session, target, body)
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


def inbox_waiting(url: str) -> float:
    metrics = httpx.get(url + "/metrics", timeout=30).text
    found = re.search(r"^relay_inbox_events (\S+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0


def wait_rendered(url: str) -> float:
    """Seconds until relay has routed and rendered every event it accepted."""
    began = time.monotonic()
    while inbox_waiting(url) > 0:
        time.sleep(1.0)  # /metrics counts the whole outbox: not too often
    return time.monotonic() - began


def start_relay(config: str, slack: FakeSlack, work: Path) -> RelayProcess:
    work.mkdir()
    (work / "config.yaml").write_text(config)
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_DATABASE_URL": f"sqlite:///{work}/relay.db",
        "RELAY_LOG_LEVEL": "warning",
    }
    return RelayProcess(work / "config.yaml", env, work).start()


def stop_relay(relay: RelayProcess) -> None:
    try:
        relay.terminate(timeout=30)
    except subprocess.TimeoutExpired:  # still working through a backlog: no need to wait
        relay.kill()


@contextlib.contextmanager
def running_relays(
    config: str, work: Path, env: Mapping[str, str], count: int = 1
) -> Iterator[list[RelayProcess]]:
    """`count` relay processes on one config (and the database `env` names), signing secret
    set, logs at `warning`, all stopped at the end."""
    (work / "config.yaml").write_text(config)
    env = {"ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET, "RELAY_LOG_LEVEL": "warning", **env}
    relays = [RelayProcess(work / "config.yaml", env, work) for _ in range(count)]
    try:
        for relay in relays:
            relay.start()
        yield relays
    finally:
        for relay in relays:
            stop_relay(relay)


def median_row(name: str, values: list[float], fmt: str = "{:.0f}") -> tuple[str, str]:
    rounds = ", ".join(fmt.format(v) for v in values)
    return name, f"{fmt.format(statistics.median(values))} ({rounds})"


def end_to_end(url: str, slack: FakeSlack, events: int) -> list[float]:
    """POST one event at a time; seconds until the fake Slack has received its message."""
    seconds: list[float] = []
    with httpx.Client() as client:
        for i in range(events):
            before = len(slack.messages)
            body = event_body(i, "e2e")
            began = time.monotonic()
            headers = anchor_headers(body, int(time.time()))
            client.post(url + "/hooks/anchor", content=body, headers=headers)
            while len(slack.messages) == before:
                time.sleep(0.0005)
            seconds.append(slack.messages[-1].received - began)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rss-events", type=int, default=100_000)
    parser.add_argument("--e2e-events", type=int, default=200)
    args = parser.parse_args()
    bare_rps: list[float] = []
    bare_p50: list[float] = []
    bare_p99: list[float] = []
    relay_rps: list[float] = []
    relay_p50: list[float] = []
    relay_p99: list[float] = []
    rendered: list[float] = []
    rows: list[tuple[str, str]] = []

    port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE, str(port)])
    with FakeSlack() as slack, tempfile.TemporaryDirectory() as tmp:
        relay = start_relay(PACED, slack, Path(tmp) / "paced")
        assert relay.proc is not None
        try:
            wait_ready(f"http://127.0.0.1:{port}")
            sent = 0
            for r in range(args.rounds):
                n, lat = asyncio.run(
                    load(f"http://127.0.0.1:{port}", args.seconds, args.concurrency, f"b{r}")
                )
                bare_rps.append(n / args.seconds)
                bare_p50.append(pct(lat, 0.5))
                bare_p99.append(pct(lat, 0.99))
                n, lat = asyncio.run(load(relay.url, args.seconds, args.concurrency, f"r{r}"))
                sent += n
                relay_rps.append(n / args.seconds)
                relay_p50.append(pct(lat, 0.5))
                relay_p99.append(pct(lat, 0.99))
                took = wait_rendered(relay.url)
                rendered.append(n / (took + 1e-9))
                print(
                    f"round {r + 1}: bare {bare_rps[-1]:.0f} req/s, relay {relay_rps[-1]:.0f} "
                    f"req/s (p99 {relay_p99[-1]:.1f} ms), rendered in {took:.1f} s",
                    flush=True,
                )
            while sent < args.rss_events:
                sent += asyncio.run(load(relay.url, 5.0, args.concurrency, f"m{sent}"))[0]
            wait_rendered(relay.url)
            peak = rss_peak_mb(relay.proc.pid)
        finally:
            relay.terminate()
            bare.terminate()
            bare.wait()

        ratios = [r / b for r, b in zip(relay_rps, bare_rps, strict=True)]
        rows.append(median_row("bare Starlette: requests/s", bare_rps))
        rows.append(median_row("bare Starlette: ack p50 (ms)", bare_p50, "{:.1f}"))
        rows.append(median_row("bare Starlette: ack p99 (ms)", bare_p99, "{:.1f}"))
        rows.append(median_row("relay: requests/s", relay_rps))
        rows.append(median_row("relay: share of bare, same round", [100 * x for x in ratios],
                               "{:.0f}%"))  # fmt: skip
        rows.append(median_row("relay: ack p50 (ms)", relay_p50, "{:.1f}"))
        rows.append(median_row("relay: ack p99 (ms)", relay_p99, "{:.1f}"))
        rows.append(median_row("relay: backlog rendered afterwards (events/s)", rendered))

        e2e_relay = start_relay(UNTHROTTLED, slack, Path(tmp) / "unthrottled")
        try:
            e2e = end_to_end(e2e_relay.url, slack, args.e2e_events)
        finally:
            e2e_relay.terminate()
        rows.append(
            (
                "relay: POST -> fake Slack p50 / p99 (ms)",
                f"{statistics.median(e2e) * 1000:.1f} / {pct(e2e, 0.99):.1f}",
            )
        )
        rows.append((f"relay: peak RSS after {sent} events (MB)", f"{peak:.0f}"))

    print(
        f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{args.concurrency} connections, {args.rounds} rounds of {args.seconds:.0f} s each; "
        "medians (each round)\n"
    )
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
