"""Every error answer of the HTTP edge is JSON `{"error", "detail"}`: the wrong method on an
endpoint (`405` with `Allow`), a path nothing serves (`404`, never a redirect), an exception,
readiness refused, and what the protocol answers before any app runs (`400` for a request that
is not HTTP, `503` beyond the concurrency limit). In-process through httpx's ASGI transport, and
on the wire against `relay serve` where only the wire can say it (raw paths, broken requests)."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from harness import RelayProcess, free_port

from relay.config import load_config
from relay.http.app import build_app
from relay.http.protocol import bounded_protocol
from relay.ops.services import Services
from relay.server import build_services

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [http-errors-secret]}
destinations:
  events: {type: console}
default: {to: [events]}
"""

METHODS = ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
# paths no endpoint has: httpx keeps percent-encoded dots as they are
UNKNOWN = [
    "/",
    "/nope",
    "/hooks/",
    "/hooks/anchor/",
    "/hooks/anchor/x",
    "/hooks//anchor",
    "/hooks/%2e%2e/admin/reload",
    "/hooks/%2E%2E%2Fadmin%2Freload",
    "/hooks/..%2Fadmin%2Freload",
    "/admin/reload/",
    "/healthz/",
    "/%68ooks/anchor/",
]


def assert_json_error(
    status: int, headers: httpx.Headers, body: bytes, method: str
) -> dict[str, str]:
    """The answer is an error in relay's JSON shape and points nowhere else."""
    assert 400 <= status < 600, (status, body)
    assert headers["content-type"] == "application/json", headers
    assert "location" not in headers
    if method == "HEAD":
        assert body == b""
        return {}
    error = json.loads(body)
    assert set(error) == {"error", "detail"}, error
    assert all(isinstance(v, str) and v for v in error.values())
    return dict(error)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    env = {"RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db"}
    built = build_services(load_config(config, env={}), env, tmp_path, io.StringIO())
    await built.store.open()
    yield built
    await built.store.close()


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(services), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as http:
        yield http


@pytest.mark.parametrize("method", METHODS)
async def test_a_method_an_endpoint_does_not_take_is_405_with_allow(
    client: httpx.AsyncClient, method: str
) -> None:
    for path in ("/hooks/anchor", "/hooks/nope"):
        answer = await client.request(method, path)
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"
        error = assert_json_error(405, answer.headers, answer.content, method)
        if error:
            assert error == {"error": "method_not_allowed", "detail": "this endpoint takes POST"}


@pytest.mark.parametrize("path", UNKNOWN)
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_path_no_endpoint_has_is_404_and_never_a_redirect(
    client: httpx.AsyncClient, path: str, method: str
) -> None:
    answer = await client.request(method, path, headers={"Host": "evil.example"})
    assert answer.status_code == 404
    assert assert_json_error(404, answer.headers, answer.content, method) == {
        "error": "not_found",
        "detail": "no endpoint at this path",
    }


async def test_an_unexpected_exception_is_a_json_500(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> bool:
        raise RuntimeError("the store fell over")

    monkeypatch.setattr(services.store, "ping", broken)
    answer = await client.get("/readyz")
    assert answer.status_code == 500
    assert assert_json_error(500, answer.headers, answer.content, "GET") == {
        "error": "internal",
        "detail": "relay failed on this request; retry",
    }


async def test_not_ready_is_an_error_answer_that_still_names_the_config(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.accepting = False
    answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "not_ready",
        "error": "not_ready",
        "detail": "relay is shutting down",
        "config": services.runtime.digest,
        "generation": 1,
    }


# ---------------------------------------------------------------- on the wire


def exchange(port: int, request: bytes) -> tuple[int, httpx.Headers, bytes]:
    """Send raw bytes, read the whole answer (relay closes the connection after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = httpx.Headers([tuple(line.split(": ", 1)) for line in lines])  # type: ignore[misc]
    return int(status_line.split()[1]), headers, body


def request(method: str, path: str, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: evil.example", "Connection: close", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture
def relay(relay_process: type[RelayProcess], tmp_path: Path) -> RelayProcess:
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    env = {"RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db"}
    return relay_process(config, env, tmp_path).start()


def test_every_refusal_on_the_wire_is_json_and_points_nowhere(relay: RelayProcess) -> None:
    for method in METHODS:
        status, headers, body = exchange(relay.port, request(method, "/hooks/anchor"))
        assert (status, headers["allow"]) == (405, "POST")
        assert_json_error(status, headers, body, method)
    # as sent: no client normalised these paths first
    for path in [*UNKNOWN, "/hooks/../admin/reload", "/hooks/./anchor", "/hooks/anchor/."]:
        for method in ("POST", "GET"):
            status, headers, body = exchange(relay.port, request(method, path))
            assert status == 404, (method, path, status, body)
            assert_json_error(status, headers, body, method)
    status, headers, body = exchange(relay.port, request("POST", "/hooks/%2e%2e"))
    assert status == 404  # one path segment: a source name, which no source has
    assert json.loads(body) == {
        "error": "unknown_source",
        "detail": "no source named '..' is configured",
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n",
        b"POST /hooks/anchor HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n{}",
        b"GET /health\x01z HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["garbage", "http2-preface", "bad-length", "length-and-chunked", "control-char"],
)
def test_a_request_that_is_not_http_is_a_json_400(relay: RelayProcess, raw: bytes) -> None:
    status, headers, body = exchange(relay.port, raw)
    assert status == 400
    assert headers["connection"] == "close"
    assert assert_json_error(status, headers, body, "POST") == {
        "error": "malformed",
        "detail": "not a valid HTTP/1.1 request",
    }
    assert httpx.get(relay.url + "/healthz").status_code == 200


def test_an_upgrade_header_is_ignored_not_refused(relay: RelayProcess) -> None:
    upgrade = ("Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")  # fmt: skip
    status, headers, body = exchange(relay.port, request("GET", "/healthz", *upgrade))
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, headers, body = exchange(relay.port, request("GET", "/nope", *upgrade))
    assert status == 404
    assert_json_error(status, headers, body, "GET")
    assert "WebSocket" not in relay.stderr()


# ---------------------------------------------------------------- beyond the concurrency limit


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[int]:
    """relay's app and protocol under uvicorn, at most 2 connections: the port."""
    config_file = tmp_path / "relay.yaml"
    config_file.write_text(CONFIG)
    env = {"RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db"}
    services = build_services(load_config(config_file, env={}), env, tmp_path, io.StringIO())
    port = free_port()
    config = uvicorn.Config(
        build_app(services),  # without its lifespan: /healthz needs nothing started
        host="127.0.0.1",
        port=port,
        http=bounded_protocol(lambda _path: None),
        limit_concurrency=2,
        lifespan="off",
        log_config=None,
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(10)


def test_beyond_the_concurrency_limit_the_503_is_json(small_server: int) -> None:
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", small_server), timeout=10) as first:
        first.sendall(health)  # answered, and kept open: one of the two places
        assert first.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        status, headers, body = exchange(small_server, health)  # the second reaches the limit
    assert (status, headers["connection"]) == (503, "close")
    assert assert_json_error(status, headers, body, "GET") == {
        "error": "overloaded",
        "detail": "relay has too many requests open; retry shortly",
    }
    deadline = time.monotonic() + 10  # the first one closed: room again, once uvicorn saw it
    while exchange(small_server, health)[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
