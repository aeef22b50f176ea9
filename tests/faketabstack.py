"""A fake Tabstack API over real HTTP: `POST /v1/automate` answers with a recorded SSE stream.

Like the real service it checks `Authorization: Bearer <key>` (401 JSON error otherwise) and the
JSON body (`task` required, else 422) before the stream starts, then sends the events of the
chosen fixture stream one by one, with a short pause between them so a consumer sees them live.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType

import uvicorn
from harness import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

API_KEY = "tabstack-test-key"


class FakeTabstack:
    def __init__(self, stream: Path, *, pause: float = 0.01) -> None:
        self.stream = stream
        self.pause = pause
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.requests: list[dict[str, object]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[Route("/v1/automate", self._automate, methods=["POST"])])

    async def _automate(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": "Invalid API key"}, status_code=401)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "Invalid JSON"}, status_code=400)
        if not isinstance(body, dict) or not body.get("task"):
            return JSONResponse({"error": "task is required"}, status_code=422)
        self.requests.append(body)
        blocks = [b + "\n\n" for b in self.stream.read_text().split("\n\n") if b.strip()]

        async def events() -> AsyncIterator[bytes]:
            for block in blocks:
                yield block.encode()
                await asyncio.sleep(self.pause)

        return StreamingResponse(events(), media_type="text/event-stream")

    def __enter__(self) -> FakeTabstack:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(10)
