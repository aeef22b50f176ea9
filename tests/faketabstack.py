"""A fake Tabstack API over real HTTP: `POST /v1/automate` answers with a recorded SSE stream.

Like the real service it checks `Authorization: Bearer <key>` (401 JSON error otherwise) and the
JSON body (`task` required, else 422) before the stream starts, then sends the events of the
chosen fixture stream one by one, with a short pause between them so a consumer sees them live.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from fakeserver import FakeServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

API_KEY = "tabstack-test-key"


class FakeTabstack(FakeServer[dict[str, object]]):
    def __init__(self, stream: Path, *, pause: float = 0.01) -> None:
        super().__init__()
        self.stream = stream
        self.pause = pause
        self.app = Starlette(routes=[Route("/v1/automate", self._automate, methods=["POST"])])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _automate(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": "Invalid API key"}, status_code=401)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "Invalid JSON"}, status_code=400)
        if not isinstance(body, dict) or not body.get("task"):
            return JSONResponse({"error": "task is required"}, status_code=422)
        self._keep(body)
        blocks = [b + "\n\n" for b in self.stream.read_text().split("\n\n") if b.strip()]

        async def events() -> AsyncIterator[bytes]:
            for block in blocks:
                yield block.encode()
                await asyncio.sleep(self.pause)

        return StreamingResponse(events(), media_type="text/event-stream")
