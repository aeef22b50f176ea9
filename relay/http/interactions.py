"""`POST /slack/interactions`: Slack's button clicks (relay.interactions), answered in time.

In order: 404 unless the config has a signing secret; the signature and its timestamp checked
(401 `unsigned`, `stale_request` or `bad_signature`); the signature recorded so the same request
is never acted on twice, by any replica (401 `replayed`); the form read (415 for another
content type, 400 `malformed_interaction` or `unknown_action`); relay's records checked and the
click acted on (400 `unknown_message`, `unknown_action`, `unknown_silence`). A refused request
changes nothing. Then `200` at once, well within Slack's 3 seconds: the message is updated with
chat.update in the background (a failure is logged, the click's effect stays).
"""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.delivery.slack import web_client
from relay.errors import UnsupportedMediaType
from relay.http.answers import error_response
from relay.http.hooks import media_type, read_body
from relay.interactions import (
    TOLERANCE,
    MalformedClick,
    UnknownAction,
    Verdict,
    parse_click,
    verify,
)
from relay.ops.interactions import ClickRefused, MessageUpdate, act
from relay.ops.services import Services

log = logging.getLogger("relay.interactions")

_REFUSED = {
    Verdict.UNSIGNED: ("unsigned", "X-Slack-Request-Timestamp and X-Slack-Signature are required"),
    Verdict.STALE: ("stale_request", "the request's timestamp is more than 5 minutes from now"),
    Verdict.FORGED: ("bad_signature", "the signature matches no configured signing secret"),
}


def interaction_routes(services: Services) -> list[Route]:
    async def update(change: MessageUpdate) -> None:
        slack = services.runtime.config.slack
        if slack.token is None:
            log.warning("a click was acted on, but without slack.token the message stays as it was")
            return
        client = web_client(
            slack.token.get_secret_value(), base_url=slack.api_url, timeout=int(slack.timeout)
        )
        try:
            await client.chat_update(
                channel=change.channel_id, ts=change.ts, text=change.text, blocks=change.blocks
            )
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            log.warning("could not update the clicked message", extra={"error": str(error)})
        except Exception as exc:  # the click's effect stands; only the message is behind
            log.warning("could not update the clicked message", extra={"error": type(exc).__name__})

    def refuse(status: int, code: str, detail: str, action: str = "none") -> Response:
        services.metrics.interactions.labels(action, code).inc()
        return error_response(status, code, detail)

    async def interactions(request: Request) -> Response:
        config = services.runtime.config
        secrets = [s.get_secret_value() for s in config.slack.signing_secrets]
        if not secrets:  # interactivity is off: as if there were no such endpoint
            return error_response(404, "not_found", "no endpoint at this path")
        headers = dict(request.headers)  # names are lower case already
        body = await read_body(request.receive, headers, config.server.max_body_bytes)
        now = services.clock()
        verdict = verify(headers, body, secrets, now)
        if verdict is not Verdict.VALID:
            return refuse(401, *_REFUSED[verdict])
        mark = headers["x-slack-signature"]
        if not await services.store.first_use(mark, now, now - 2 * TOLERANCE):
            return refuse(401, "replayed", "this request was received already")
        if media_type(headers) != "application/x-www-form-urlencoded":
            services.metrics.interactions.labels("none", "unsupported_media_type").inc()
            raise UnsupportedMediaType("Content-Type must be application/x-www-form-urlencoded")
        try:
            click = parse_click(body)
        except MalformedClick as exc:
            return refuse(400, "malformed_interaction", str(exc))
        except UnknownAction as exc:
            return refuse(400, "unknown_action", str(exc))
        try:
            change = await act(services.store, click, now, list(config.destinations))
        except ClickRefused as exc:
            return refuse(400, exc.code, exc.detail, click.action.value)
        services.metrics.interactions.labels(click.action.value, "ok").inc()
        services.keep(asyncio.get_running_loop().create_task(update(change)))
        return Response(status_code=200)

    return [Route("/slack/interactions", interactions, methods=["POST"])]
