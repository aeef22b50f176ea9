"""Prometheus Alertmanager measured the way `bench/e2e.py` measures relay, on the same machine:
N alerts posted as fast as it answers, delivered to the same sink; how long until the last
notification has arrived.

    apt-get install -y prometheus-alertmanager   # Debian's build of Alertmanager 0.25
    .venv/bin/python bench/alertmanager.py [--events 20000] [--connections 32] [--timeout 600]
        [--binary /usr/bin/prometheus-alertmanager]

This is what the README's side-by-side rows rest on: relay and Alertmanager loaded by one load
generator, delivering to one sink, with the figures computed by one piece of code
(`bench/e2e.py`'s `measure`), so that the two compare on whatever machine runs them.

Alertmanager runs alone (clustering off: `--cluster.listen-address=`, so no gossip wait before
a notification), with its data in a throwaway directory and one route: `group_by: ['...']` (every
alert a group of its own, so one notification per alert, as relay sends one message per event),
`group_wait: 0s` (notify at once), `group_interval` and `repeat_interval` longer than a run (no
notification is sent twice), and a `slack_configs` receiver whose `api_url` is the sink's
incoming-webhook path (`/services/T000/B000/am`, answered `200 ok` as Slack does) with
`send_resolved: false`. Alertmanager retries a failed notification but does not pace, keeps its
alerts in memory (a restart loses what it had not sent) and never queues past its own memory:
the comparison is of throughput, not of guarantees.

`--connections` keep-alive connections each post the next alert as soon as the previous one is
answered: one alert per `POST /api/v2/alerts`, labelled `event_id="evt_am_<i>"`, which the
notification's text shows and the sink reads, with the annotations a task's completion would
carry. Figures and the table row are `bench/e2e.py`'s; the CPU time is Alertmanager's process
(all its threads). Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e import Figures, Run, free_port, measure, row, sink_process

TAG = "am"  # the event ids' tag: evt_am_<i>
# the notification's text: each alert's event id (where the sink reads it) and summary
TEXT = "{{ range .Alerts }}{{ .Labels.event_id }}: {{ .Annotations.summary }}{{ end }}"


def config(sink: str) -> str:
    """One route, every alert its own group, notified at once to the sink as to Slack."""
    return f"""
route:
  receiver: sink
  group_by: ['...']
  group_wait: 0s
  group_interval: 1h
  repeat_interval: 24h
receivers:
  - name: sink
    slack_configs:
      - api_url: {sink}/services/T000/B000/am
        channel: '#browser-alerts'
        send_resolved: false
        title: '{{{{ .CommonLabels.alertname }}}}'
        text: '{TEXT}'
"""


def alert(i: int) -> bytes:
    """Alert i, firing since now, with what relay's event of `bench/e2e.py` shows."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        [
            {
                "labels": {
                    "alertname": "TaskCompleted",
                    "event_id": f"evt_{TAG}_{i}",
                    "task_id": f"tsk_{i}",
                    "source": "anchor",
                },
                "annotations": {
                    "summary": "Task completed",
                    "description": "Extract the invoice totals from the billing portal",
                    "session_dashboard_url": "https://app.anchorbrowser.io/sessions/sess_1",
                },
                "startsAt": now,
            }
        ]
    ).encode()


async def post_alert(session: aiohttp.ClientSession, url: str, i: int) -> None:
    async with session.post(
        url + "/api/v2/alerts", data=alert(i), headers={"Content-Type": "application/json"}
    ) as answer:
        await answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{answer.status}: {await answer.text()}")


@contextlib.contextmanager
def running_alertmanager(
    binary: str, sink: str, work: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    (work / "alertmanager.yml").write_text(config(sink))
    port = free_port()
    log = (work / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"alertmanager exited: {(work / 'alertmanager.log').read_text()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("alertmanager did not start")
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--binary", default="prometheus-alertmanager")
    args = parser.parse_args()
    binary = shutil.which(args.binary)
    if binary is None:
        parser.error(f"{args.binary} not found (apt-get install -y prometheus-alertmanager)")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    name = " ".join((version.stdout or version.stderr).split()[:3]).replace(",", "")
    run = Run(
        label=name.replace("alertmanager version", "Alertmanager"),
        tag=TAG,
        events=args.events,
        connections=args.connections,
        destinations=1,
        timeout=args.timeout,
    )
    print(f"{run.label}: {run.events:,} alerts over {run.connections} connections", flush=True)
    with sink_process() as (sink, sink_pid), tempfile.TemporaryDirectory() as tmp:
        with running_alertmanager(binary, sink, Path(tmp)) as (url, proc):

            def exited() -> str:
                if proc.poll() is None:
                    return ""
                return (
                    f"alertmanager exited: {(Path(tmp) / 'alertmanager.log').read_text()[-2000:]}"
                )

            result: Figures = measure(
                run, [url], post_alert, exited, [proc.pid], sink, sink_pid, who="Alertmanager"
            )
        complaints = (Path(tmp) / "alertmanager.log").read_text().strip().splitlines()
    if complaints:
        print(f"  Alertmanager logged {len(complaints)} lines; the last: {complaints[-1][:300]}")
    print("\n| | ingest req/s | end to end | delivered msg/s | delay p50 / p99 | peak RSS |")
    print("|---|---|---|---|---|---|")
    print(row(result))
    if result.stopped:
        sys.exit(1)


if __name__ == "__main__":
    main()
