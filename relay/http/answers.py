"""Every error answer relay gives over HTTP, built in one place: a JSON body
`{"error": code, "detail": text}` with its status.

`error_body` is the body; `error_response` the Starlette response; the acknowledgement path
(`relay.http.hooks`) and the protocol (`relay.http.protocol`) send the same bytes through ASGI
or the raw transport.
"""

from __future__ import annotations

import json

from starlette.responses import Response

JSON = "application/json"


def error_body(code: str, detail: str) -> bytes:
    return json.dumps({"error": code, "detail": detail}).encode()


def error_response(status: int, code: str, detail: str) -> Response:
    return Response(error_body(code, detail), status_code=status, media_type=JSON)
