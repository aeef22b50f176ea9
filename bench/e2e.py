"""End-to-end benchmark: N signed events into relay as fast as it acknowledges them, delivered to
a sink that answers like Slack incoming webhooks; how long until the last message has arrived.

    .venv/bin/python bench/e2e.py [--events 20000] [--connections 32] [--destinations 1 32]
        [--database sqlite|postgres] [--replicas 1 2] [--delivery-process] [--timeout 600]

Each run starts relay afresh (a new SQLite file, or a throwaway schema on the machine's
PostgreSQL, `RELAY_TEST_POSTGRES`, default postgresql://postgres@127.0.0.1:5432/test, dropped
afterwards; with `--replicas R`, R relay processes sharing it; with `--delivery-process`, each
delivering from a process of its own, `RELAY_DELIVERY_PROCESS=on`), logs at `warning`, pacing
unthrottled (`rate: 100000, burst: 100000`). `--connections` keep-alive connections post the
events of bench/ingest.py (Anchor's task.completed sample, signed) spread over the replicas,
each connection sending its next event as soon as the previous one is answered. The config has
D `type: webhook` destinations, one hook URL each (`/services/T000/B0xx/...` on the sink, so D
pacing keys), and with D > 1 one route per destination on `data.shard`, which event i carries
as i % D: events go round-robin over the destinations. Messages use relay's built-in
`anchor/task.completed` template, built on `_layout.j2`: its context line shows the event id
whole (ids of at most 20 characters are not shortened), and that is where the sink reads it.

The sink runs in a process of its own: the load generator needs about a core of Python at
relay's intake rate, and a sink on the same event loop would slow it and stamp each arrival
only when the loader's callbacks let it run, adding that wait to every measured delay. Apart,
it has its own interpreter and loop: alone on this machine it took over 2,000 messages a
second each on a new connection, 9,000 over keep-alive ones (relay's senders keep theirs
alive), above what relay delivers and above the 1,500 a second relay aims at. Both
processes read `time.monotonic()`, one clock for the whole machine on Linux, so a send time and
an arrival time compare directly.

Per run it reports:
- ingest req/s: acknowledged requests over the time from the first request to the last answer;
- end to end: from the first request to the last message's arrival at the sink;
- delivered msg/s: N over the end-to-end time (the rate a user sees for the whole burst);
- delay p50 / p99: per event, its arrival at the sink minus the time its request was sent;
- peak RSS: each relay process's VmHWM (/proc/<pid>/status) at the end of the run (a delivery
  process's after its parent's); with more than one process, also the highest sum of their
  PSS (/proc/<pid>/smaps_rollup, read every 0.2 s): what they hold together, counting the
  pages they share (the interpreter, the libraries) once, as the machine and a container's
  memory limit do, where summing their RSS would count those pages once per process;
and, under the run's name, the acknowledgement latency and each relay process's CPU time over
the run (/proc/<pid>/stat), as a share of one core (near 100%, its store's thread may add a
little on top: relay's own CPU is what limits it) and per message delivered (the figure that
compares machines of different speeds least badly).
A run that has not delivered everything after `--timeout` seconds stops with a message saying
how far it got, and its row shows the partial figures (exit status 1). Prints a Markdown table
for the README. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import RelayProcess, free_port  # noqa: E402
from ingest import event_body, pct, post_signed, rss_peak_mb, running_relays  # noqa: E402
from pgschema import fresh_schema  # noqa: E402

EVENT_ID = re.compile(rb"evt_[a-z0-9]+_[0-9]+")
PROGRESS_EVERY = 5.0  # seconds between progress lines


# --- the sink (its own process) ------------------------------------------------------------


def serve_sink(port: int) -> None:
    """Answer every POST under /services/ as a Slack incoming webhook does (200 text/plain
    `ok`) and record when it came and the event id its message shows; /_sink/ reads them."""
    arrivals: list[tuple[str, float]] = []
    seen: set[str] = set()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.monotonic()
        found = EVENT_ID.search(body)
        event_id = found.group().decode() if found else ""
        arrivals.append((event_id, arrived))
        if event_id:
            seen.add(event_id)
        return web.Response(text="ok", content_type="text/plain")

    async def count(_request: web.Request) -> web.Response:
        return web.Response(text=str(len(seen)))

    async def listing(_request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    async def reset(_request: web.Request) -> web.Response:
        arrivals.clear()
        seen.clear()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/services/{team}/{bot}/{secret}", hook)
    app.router.add_get("/_sink/count", count)
    app.router.add_get("/_sink/arrivals", listing)
    app.router.add_post("/_sink/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


@contextlib.contextmanager
def sink_process() -> Iterator[tuple[str, int]]:
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=serve_sink, args=(port,))
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_sink_ready(url))
        assert process.pid is not None
        yield url, process.pid
    finally:
        process.terminate()
        process.join(10)


async def _sink_ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/_sink/count") as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError("the sink did not start")


# --- relay under load ----------------------------------------------------------------------


def relay_config(sink: str, destinations: int) -> str:
    """D webhook destinations on the sink, events spread over them by `data.shard`."""
    lines = [
        "sources:",
        '  anchor: {provider: anchor, secrets: ["${ANCHOR_WEBHOOK_SECRET}"]}',
        "destinations:",
    ]
    for k in range(destinations):
        lines.append(f'  d{k:02d}: {{type: webhook, url: "{sink}/services/T000/B0{k:02d}/e2e"}}')
    if destinations > 1:
        lines.append("routes:")
        for k in range(destinations):
            lines.append(f"  - {{match: {{when: [{{path: shard, equals: {k}}}]}}, to: [d{k:02d}]}}")
    lines += ["default: {to: [d00]}", "pacing: {rate: 100000, burst: 100000}", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class Run:
    """One measurement: its name in the table, and the tag in its event ids."""

    label: str
    tag: str  # short: an event id of at most 20 characters is shown whole, where the sink reads it
    events: int
    connections: int
    destinations: int
    timeout: float


@dataclass
class Load:
    """What the load generator saw: when each event's request left, how long answers took."""

    sent: dict[int, float] = field(default_factory=dict)  # event -> time.monotonic()
    acks: list[float] = field(default_factory=list)  # seconds per answer
    last_ack: float = 0.0


@dataclass
class Outcome:
    """What a run left: the load, every arrival at the sink, and why it stopped early."""

    load: Load
    arrivals: list[tuple[str, float]]  # (event id shown in the message, time.monotonic())
    stopped: str  # "" when every event arrived
    stopped_at: float
    rss_mb: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    pss_peak_mb: float = 0.0  # the highest sum of the relay processes' PSS seen while loading


# posts event i to a target URL over a session (relay: `post_relay`)
Post = Callable[[aiohttp.ClientSession, str, int], Awaitable[None]]


async def post_relay(run: Run, session: aiohttp.ClientSession, url: str, i: int) -> None:
    """Event i, signed, to relay's Anchor hook."""
    body = event_body(i, run.tag, shard=i % run.destinations)
    await post_signed(session, url + "/hooks/anchor", body)


async def send_all(run: Run, urls: list[str], load: Load, post: Post) -> None:
    """`run.connections` keep-alive connections, connection n to replica n % len(urls), each
    posting the next event as soon as its previous one is answered."""
    next_event = 0
    connector = aiohttp.TCPConnector(limit=run.connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def connection(n: int) -> None:
            nonlocal next_event
            target = urls[n % len(urls)]
            while next_event < run.events:
                i = next_event
                next_event += 1
                load.sent[i] = began = time.monotonic()
                await post(session, target, i)
                load.last_ack = time.monotonic()
                load.acks.append(load.last_ack - began)

        await asyncio.gather(*(connection(n) for n in range(run.connections)))


def relays_exited(relays: list[RelayProcess]) -> str:
    """Why the run must stop because a relay process has exited ("" while they all run)."""
    dead = [r for r in relays if r.proc is None or r.proc.poll() is not None]
    return f"relay exited: {dead[0].stderr()[-2000:]}" if dead else ""


async def drive(
    run: Run,
    urls: list[str],
    post: Post,
    exited: Callable[[], str],
    pids: list[int],
    sink: str,
) -> Outcome:
    """Load the service under test at `urls` (`post` sends one event) and wait, at most
    `run.timeout` seconds, until the sink has every event, or `exited` says why not; every
    0.2 s, the memory of its processes (`pids`) together."""
    load = Load()
    stopped = ""
    pss_peak = 0.0
    async with aiohttp.ClientSession() as control:
        await control.post(sink + "/_sink/reset")
        began = time.monotonic()
        loader = asyncio.create_task(send_all(run, urls, load, post))
        next_report = began + PROGRESS_EVERY
        while True:
            await asyncio.sleep(0.2)
            async with control.get(sink + "/_sink/count") as answer:
                arrived = int(await answer.text())
            pss_peak = max(pss_peak, sum(pss_mb(pid) for pid in pids))
            now = time.monotonic()
            if arrived >= run.events:
                break
            if loader.done() and loader.exception() is not None:
                stopped = f"the load stopped: {loader.exception()}"
                break
            stopped = exited()
            if stopped:
                break
            if now - began > run.timeout:
                stopped = (
                    f"timed out after {run.timeout:.0f} s: {arrived:,} of {run.events:,} "
                    f"delivered, {len(load.acks):,} acknowledged"
                )
                break
            if now >= next_report:
                print(
                    f"  {now - began:5.0f} s: {len(load.acks):,} acknowledged, "
                    f"{arrived:,} delivered",
                    flush=True,
                )
                next_report += PROGRESS_EVERY
        stopped_at = time.monotonic()
        if not loader.done():
            loader.cancel()
        with contextlib.suppress(asyncio.CancelledError, RuntimeError, aiohttp.ClientError):
            await loader
        async with control.get(sink + "/_sink/arrivals") as answer:
            arrivals = [(str(i), float(t)) for i, t in await answer.json()]
    return Outcome(load, arrivals, stopped, stopped_at, pss_peak_mb=pss_peak)


# --- figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    label: str
    events: int
    ingest_rps: float
    ack_p50_ms: float
    ack_p99_ms: float
    delivered: int
    duplicates: int
    unidentified: int
    end_to_end: float  # seconds from the first request to the last arrival (or to the stop)
    delay_p50: float  # seconds
    delay_p99: float
    rss_mb: list[float]
    pss_peak_mb: float
    cpu_seconds: list[float]
    stopped: str


def figures(run: Run, outcome: Outcome) -> Figures:
    load = outcome.load
    first_sent = min(load.sent.values(), default=0.0)
    prefix = f"evt_{run.tag}_"
    first_arrival: dict[int, float] = {}
    duplicates = unidentified = 0
    for event_id, arrived in outcome.arrivals:
        if not event_id.startswith(prefix):
            unidentified += 1
        elif int(event_id[len(prefix) :]) in first_arrival:
            duplicates += 1
        else:
            first_arrival[int(event_id[len(prefix) :])] = arrived
    delays = [t - load.sent[i] for i, t in first_arrival.items() if i in load.sent]
    if outcome.stopped or not first_arrival:
        last = outcome.stopped_at
    else:
        last = max(first_arrival.values())
    acked = len(load.acks)
    nan = float("nan")
    return Figures(
        label=run.label,
        events=run.events,
        ingest_rps=acked / (load.last_ack - first_sent) if acked else 0.0,
        ack_p50_ms=pct(load.acks, 0.5) if acked else nan,
        ack_p99_ms=pct(load.acks, 0.99) if acked else nan,
        delivered=len(first_arrival),
        duplicates=duplicates,
        unidentified=unidentified,
        end_to_end=last - first_sent,
        delay_p50=pct(delays, 0.5) / 1000 if delays else nan,
        delay_p99=pct(delays, 0.99) / 1000 if delays else nan,
        rss_mb=outcome.rss_mb,
        pss_peak_mb=outcome.pss_peak_mb,
        cpu_seconds=outcome.cpu_seconds,
        stopped=outcome.stopped,
    )


def delivery_children(pid: int) -> list[int]:
    """A relay's delivery process (`RELAY_DELIVERY_PROCESS=on`), if it has one."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"relay.delivery.child" in cmdline:
            found.append(int(child))
    return found


def pss_mb(pid: int) -> float:
    """A process's proportional set size: its private pages, and its share of the pages it
    shares with others (the interpreter and the libraries both relay processes map)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:  # it has exited
        return 0.0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used since it started."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seconds(value: float) -> str:
    if value != value:  # nan: nothing arrived
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def row(f: Figures) -> str:
    partial = f" (partial: {f.delivered:,} of {f.events:,})" if f.stopped else ""
    end = (">" if f.stopped else "") + seconds(f.end_to_end)
    rss = " / ".join(f"{mb:.0f}" for mb in f.rss_mb) + " MB"
    if len(f.rss_mb) > 1:
        rss += f" (together {f.pss_peak_mb:.0f} MB PSS)"
    return (
        f"| {f.label} | {f.ingest_rps:,.0f} | {end} | {f.delivered / f.end_to_end:,.0f}{partial}"
        f" | {seconds(f.delay_p50)} / {seconds(f.delay_p99)} | {rss} |"
    )


# --- runs ----------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, work: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{work}/relay.db"
    else:
        with fresh_schema() as url:
            yield url


def run_once(
    args: argparse.Namespace, sink: str, sink_pid: int, destinations: int, replicas: int
) -> Figures:
    name = "SQLite" if args.database == "sqlite" else "PostgreSQL"
    if args.delivery_process:
        name += ", delivery process"
    if args.database == "postgres":
        name += f", {replicas} replica{'s' if replicas > 1 else ''}"
    run = Run(
        label=f"relay, {name}, {destinations} destination{'s' if destinations > 1 else ''}",
        tag=f"{args.database[0]}{destinations}r{replicas}",
        events=args.events,
        connections=args.connections,
        destinations=destinations,
        timeout=args.timeout,
    )
    print(f"{run.label}: {run.events:,} events over {run.connections} connections", flush=True)
    with tempfile.TemporaryDirectory() as tmp, database(args.database, Path(tmp)) as url:
        config = relay_config(sink, destinations)
        env = {"RELAY_DATABASE_URL": url}
        if args.delivery_process:
            env["RELAY_DELIVERY_PROCESS"] = "on"
        with running_relays(config, Path(tmp), env, replicas) as relays:
            pids = [r.proc.pid for r in relays if r.proc]
            pids += [child for pid in pids for child in delivery_children(pid)]
            post = functools.partial(post_relay, run)
            urls = [r.url for r in relays]
            return measure(run, urls, post, lambda: relays_exited(relays), pids, sink, sink_pid)


def measure(
    run: Run,
    urls: list[str],
    post: Post,
    exited: Callable[[], str],
    pids: list[int],
    sink: str,
    sink_pid: int,
    who: str = "relay",
) -> Figures:
    """One run against the running service `who` (its processes `pids`); prints what the table
    does not show: its acknowledgement latency, its CPU and the harness's."""
    started = {pid: cpu_seconds(pid) for pid in pids}
    harness_started = (cpu_seconds(os.getpid()), cpu_seconds(sink_pid))
    outcome = asyncio.run(drive(run, urls, post, exited, pids, sink))
    harness = (
        cpu_seconds(os.getpid()) - harness_started[0],
        cpu_seconds(sink_pid) - harness_started[1],
    )
    live = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    outcome.rss_mb = [rss_peak_mb(pid) for pid in live]
    outcome.cpu_seconds = [cpu_seconds(pid) - started[pid] for pid in live]
    result = figures(run, outcome)
    if result.stopped:
        print(f"  stopped early, {result.stopped}", flush=True)
    if result.unidentified:
        print(f"  {result.unidentified} arrivals showed no event id of this run", flush=True)
    busy = ", ".join(f"{cpu:.0f} s ({cpu / result.end_to_end:.0%})" for cpu in result.cpu_seconds)
    per_message = " + ".join(
        f"{1000 * cpu / max(1, result.delivered):.2f}" for cpu in result.cpu_seconds
    )
    print(
        f"  ack p50 / p99 {result.ack_p50_ms:.1f} / {result.ack_p99_ms:.1f} ms; "
        f"{result.delivered:,} delivered ({result.duplicates} twice) in "
        f"{seconds(result.end_to_end)}; {who}'s CPU time (share of one core): {busy}; "
        f"per message delivered: {per_message} ms",
        flush=True,
    )
    loader, sink_cpu = (1000 * cpu / max(1, result.delivered) for cpu in harness)
    print(
        f"  the harness's CPU per message: loader {loader:.2f} ms, sink {sink_cpu:.2f} ms",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--destinations", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--delivery-process",
        action="store_true",
        help="RELAY_DELIVERY_PROCESS=on: each relay delivers from a process of its own",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        nargs="+",
        default=[1],
        help="relay processes sharing the database (postgres only)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds a run may take before it stops with partial figures",
    )
    args = parser.parse_args()
    if args.database == "sqlite" and args.replicas != [1]:
        parser.error("--replicas needs --database postgres (replicas share one database)")
    if not 1 <= min(args.destinations) <= max(args.destinations) <= 100:
        parser.error("--destinations takes counts from 1 to 100")
    results: list[Figures] = []
    with sink_process() as (sink, sink_pid):
        for destinations in args.destinations:
            for replicas in args.replicas:
                results.append(run_once(args, sink, sink_pid, destinations, replicas))
    where = "SQLite" if args.database == "sqlite" else "PostgreSQL on this machine"
    print(
        f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {where}; "
        f"N = {args.events:,} events over {args.connections} keep-alive connections, "
        "pacing unthrottled; delivered msg/s = N / end to end\n"
    )
    print("| | ingest req/s | end to end | delivered msg/s | delay p50 / p99 | peak RSS |")
    print("|---|---|---|---|---|---|")
    for result in results:
        print(row(result))
    if any(r.stopped for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
