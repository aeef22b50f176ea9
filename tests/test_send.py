"""`relay send`: a shipped sample, signed with the configured secret, reaches a real relay and,
through it, the fake Slack; a wrong secret is a 401 and a non-zero exit; an unknown sample
lists the names there are. Both sides are real processes talking HTTP, on config.example.yaml.
And the README's try-it (its run command, then its `relay send`) works as written."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from fakeslack import FakeSlack, Message
from harness import ROOT, RelayProcess, free_port
from signing import ADMIN_TOKEN, ANCHOR_SECRET, DECK_SECRET, SLACK_TOKEN

from relay.config import parse_config
from relay.ops.send import build_request, find_event
from relay.runtime import build_runtime

RELAY = Path(sys.executable).parent / "relay"
SECRETS = {
    "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
    "DECK_WEBHOOK_SECRET": DECK_SECRET,
    "RELAY_ADMIN_TOKEN": ADMIN_TOKEN,
}


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def relay(slack: FakeSlack, relay_process: type[RelayProcess], tmp_path: Path) -> RelayProcess:
    slack.reset()
    env = {
        **SECRETS,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
    }
    return relay_process(ROOT / "config.example.yaml", env, tmp_path).start()


def send(
    *args: str, env: Mapping[str, str] = SECRETS, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "RELAY_CONFIG"}
    return subprocess.run(
        [str(RELAY), "send", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_for(slack: FakeSlack, count: int, timeout: float = 30.0) -> list[Message]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(slack.messages) >= count:
            return slack.messages
        time.sleep(0.05)
    raise AssertionError(f"expected {count} messages, got {len(slack.messages)}")


@pytest.mark.parametrize(
    ("sample", "seen"),
    [
        ("anchor/task.completed", "Task completed"),
        ("task_run.completed", "Task run"),  # a stem names a sample as well
        ("tabstack/run-success", "Tabstack run"),
    ],
)
def test_each_providers_sample_reaches_slack(
    relay: RelayProcess, slack: FakeSlack, sample: str, seen: str
) -> None:
    done = send(sample, "--config", "config.example.yaml", "--url", relay.url)
    assert done.returncode == 0, done.stderr
    status, _, rest = done.stdout.partition(" ")
    assert status in ("200", "202")
    assert '"status": "accepted"' in rest
    messages = wait_for(slack, 1)
    assert any(seen.lower() in m.text.lower() for m in messages), [m.text for m in messages]
    for secret in SECRETS.values():
        assert secret not in done.stdout + done.stderr


def test_a_second_send_is_a_new_event_unless_the_id_is_kept(
    relay: RelayProcess, slack: FakeSlack
) -> None:
    args = ("anchor/task.completed", "--config", "config.example.yaml", "--url", relay.url)
    first, second = send(*args), send(*args)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert second.stdout.startswith("202 ")
    wait_for(slack, 2)
    kept = [send(*args, "--keep-id") for _ in range(2)]
    assert [k.stdout.split(" ")[0] for k in kept] == ["202", "200"]  # the repeat is a duplicate
    assert '"status": "duplicate"' in kept[1].stdout
    wait_for(slack, 3)
    time.sleep(1.5)  # longer than one pacing interval: a fourth message would have arrived
    assert len(slack.messages) == 3


def test_a_wrong_secret_is_refused_with_a_clear_message(
    relay: RelayProcess, slack: FakeSlack
) -> None:
    wrong = {**SECRETS, "ANCHOR_WEBHOOK_SECRET": "not-the-secret-relay-has"}
    done = send("anchor/task.failed", "--config", "config.example.yaml", "--url", relay.url,
                env=wrong)  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.startswith("401 ")
    assert "error: 401: relay refused the signature or token" in done.stderr
    assert "not-the-secret-relay-has" not in done.stdout + done.stderr
    wrong_deck = {**SECRETS, "DECK_WEBHOOK_SECRET": "whsec_" + "QUFBQUFBQUFBQUFBQUFBQQ=="}
    done = send("deck/task_run.failed", "--config", "config.example.yaml", "--url", relay.url,
                env=wrong_deck)  # fmt: skip
    assert done.returncode == 1 and done.stdout.startswith("401 ")
    assert slack.messages == []


def test_an_unset_secret_is_said_before_anything_is_sent() -> None:
    done = send("anchor/task.failed", "--config", "config.example.yaml", "--url",
                "http://127.0.0.1:9", env={})  # fmt: skip
    assert done.returncode == 1
    assert "sources.anchor: no secret configured to sign with" in done.stderr


def test_an_unknown_sample_lists_the_names() -> None:
    done = send("anchor/task.exploded", "--config", "config.example.yaml")
    assert done.returncode == 1
    assert "no file or sample 'anchor/task.exploded'" in done.stderr
    for name in ("anchor/task.failed", "deck/task_run.failed", "tabstack/run-success"):
        assert name in done.stderr
    ambiguous = send("session.failed", "--config", "config.example.yaml")
    assert (
        "'session.failed' names 2 samples; samples: anchor/session.failed, deck/session.failed"
        in ambiguous.stderr
    )
    helped = subprocess.run([str(RELAY), "send", "--help"], capture_output=True, text=True)
    assert "anchor/task.completed" in helped.stdout


def test_a_given_file_is_sent_to_the_source_of_its_platform(
    relay: RelayProcess, slack: FakeSlack, tmp_path: Path
) -> None:
    event = json.loads((ROOT / "relay/samples/anchor/task.completed.json").read_text())
    event["data"]["task_id"] = "tsk_from_my_file"
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(event))
    done = send(str(mine), "--config", str(ROOT / "config.example.yaml"), "--url", relay.url,
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "/hooks/anchor" in done.stdout
    (message,) = wait_for(slack, 1)
    assert "tsk_from_my_file" in json.dumps(message.blocks)


def readme_command(marker: str) -> tuple[dict[str, str], list[str]]:
    """The README's command after `<!-- try-it: MARKER -->` (its last `&&` step), as its
    environment assignments and its argv."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split(f"<!-- try-it: {marker} -->\n```bash\n", 1)[1].split("\n```", 1)[0]
    words = shlex.split(block.split(" && ")[-1])
    env = {}
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def test_the_readmes_try_it_works_from_a_fresh_clone(tmp_path: Path) -> None:
    """The README's run command, then its `relay send`, as written, in a copy of the project
    with nothing beside it (a user's clone has no other folder), on a free port."""
    clone = tmp_path / "relay"
    shutil.copytree(
        ROOT,
        clone,
        ignore=shutil.ignore_patterns(".git", ".venv", "data", "*.egg-info", "__pycache__"),
    )
    port = free_port()
    serve_env, serve_argv = readme_command("serve")
    send_env, send_argv = readme_command("send")
    assert serve_argv[0] == send_argv[0] == ".venv/bin/relay"
    base = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("RELAY_")}
    out = (tmp_path / "serve.out").open("w")
    server = subprocess.Popen(
        [str(RELAY), *serve_argv[1:]],
        cwd=clone,
        env={**base, **serve_env, "PORT": str(port)},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.out").read_text()
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        sent = subprocess.run(
            [str(RELAY), *send_argv[1:]],
            cwd=clone,
            env={**base, **send_env, "RELAY_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("202 task.failed.json -> ")
        deadline = time.monotonic() + 10
        shown = ""
        while time.monotonic() < deadline and "[ Open session ]" not in shown:
            time.sleep(0.05)
            shown = (tmp_path / "serve.out").read_text()
        assert (
            "── alerts · slack #browser-alerts ──\n❌ Task failed: invalid credentials\n" in shown
        )
    finally:
        server.terminate()
        server.wait(30)
        out.close()


SIGNED = """
sources:
  anchor: {provider: anchor, secrets: ["", "@ANCHOR@"]}
  hexed: {provider: anchor, secrets: ["@ANCHOR@"], key_encoding: hex}
  deck: {provider: deck, secrets: ["@DECK@"]}
  tabstack: {provider: tabstack, token: t0ken}
  generic:
    provider: generic
    id_path: meta.id
    secrets: [g-secret]
    token: g-token
    timestamp_header: X-Time
destinations: {c: {type: console}}
""".replace("@ANCHOR@", ANCHOR_SECRET).replace("@DECK@", DECK_SECRET)


@pytest.mark.parametrize(
    ("source", "event"),
    [
        ("anchor", "anchor/task.failed"),
        ("hexed", "anchor/task.failed"),
        ("deck", "deck/task_run.failed"),
        ("tabstack", "tabstack/run-success"),
        ("generic", "anchor/task.completed"),
    ],
)
def test_every_kind_of_source_verifies_what_send_signs(source: str, event: str) -> None:
    """Checked by the providers relay serves with, in process: every kind of source, the hex
    key of an Anchor source that says so, a generic source's token, HMAC and timestamp."""
    runtime = build_runtime(parse_config(SIGNED, Path("relay.yaml"), {}))
    path = find_event(event)
    now = time.time()
    first = build_request(runtime.config, source, path, now)
    again = build_request(runtime.config, source, path, now)
    provider = runtime.providers[source]
    for request in (first, again):
        provider.verify(request.headers, request.body, now)
    ids = [{e.id for e in provider.parse(r.headers, r.body)} for r in (first, again)]
    assert ids[0].isdisjoint(ids[1])  # a fresh id per send: not a duplicate
    kept = build_request(runtime.config, source, path, now, keep_id=True)
    assert kept.body == path.read_bytes()
    if source == "generic":
        assert first.headers["X-Time"] == str(int(now))
        assert json.loads(first.body)["meta"]["id"] == first.event_id


def test_a_relay_that_does_not_answer_is_said_so() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = send("anchor/task.failed", "--config", "config.example.yaml", "--url", url)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"error: could not post to {url}/hooks/anchor: ConnectError\n"
