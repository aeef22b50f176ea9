"""Microsoft Teams: the sender that posts a card through a Workflows (Power Automate) webhook,
the classification of every answer the flow's trigger gives, and what `relay check` says about
a destination's URL.

What the trigger answers. Microsoft documents the 202; the error answers below are Logic Apps'
(`{"error": {"code", "message"}}`) as users of Workflows webhooks and their clients report them
in public issues and code (none is in Microsoft's Teams documentation), so each is classified
by its status and, for a 400, its code:
- 202 with an empty body: the flow accepted the request. That proves no post (the flow posts
  after answering; a card Teams refuses fails in the flow's run history) and carries no message
  id: the body is never read. Recorded as sent, without an id.
- 400 `WorkflowTriggerIsNotEnabled`: the flow is turned off (state 'Disabled') or was deleted
  (state 'Deleted'; a flow made again gets a new URL): permanent, `channel`.
- 400 otherwise (`TriggerInputSchemaMismatch` when someone gave the trigger a schema, a body
  that is not JSON): permanent, `invalid_payload`.
- 401 (`DirectApiAuthorizationRequired`: the URL lost its `sig=`, or the trigger is not open to
  "Anyone"; `DirectApiInvalidAuthorizationSignature`; `MisMatchingOAuthClaims`) and 403:
  permanent, `auth`.
- 404 (`WorkflowNotFound`): permanent, `channel`.
- 413: permanent, `invalid_payload` (relay packs under Teams' size: this is some proxy's limit).
- 429, throttled (more than about 4 requests a second): retried, never sooner than its
  `Retry-After` when it sends one, else after the worker's backoff.
- 408, 425, 5xx, timeouts and connection failures: retried.
A result's `detail` is the platform's error code (when it is an identifier) or `http_<status>`:
never the URL (its `sig=` is the credential) nor a message.

Through Workflows Teams has no message id, hence no threads and no updates: a reply is posted
flat, and an update is posted as a new message showing the new state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from relay.config import TeamsDestination
from relay.delivery.http import Answer, attempt, failed
from relay.records import DeliveryResult, Outcome, Outgoing, Reason
from relay.render.formats.teams import payload

# the hosts Power Automate gives Workflows webhooks (the second replaces the first over time)
HOSTS = (".logic.azure.com", ".environment.api.powerplatform.com")
# Office 365 connectors' incoming webhooks: retired by Microsoft
RETIRED_HOSTS = (".webhook.office.com", "outlook.office.com", "outlook.office365.com")

# the flow is off or gone (answered with a 400)
GONE_CODES = frozenset({"WorkflowTriggerIsNotEnabled"})
PERMANENT: Mapping[int, Reason] = {
    400: Reason.INVALID_PAYLOAD,
    401: Reason.AUTH,
    403: Reason.AUTH,
    404: Reason.CHANNEL,
    413: Reason.INVALID_PAYLOAD,
}
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,79}$")


class TeamsSender:
    """Posts to one Workflows webhook. With no shared HTTP client, each attempt opens one."""

    def __init__(self, client: httpx.AsyncClient | None, url: str, timeout: float = 10.0) -> None:
        self.client = client
        self.url = url
        self.timeout = timeout

    async def send(self, out: Outgoing) -> DeliveryResult:
        # `reply_to`, `update` and `thread` have no form here: the message is posted as it is
        body = payload(out.message)
        if self.client is not None:
            answer = await self._post(self.client, body)
        else:
            async with httpx.AsyncClient() as own:
                answer = await self._post(own, body)
        if isinstance(answer, DeliveryResult):
            return answer
        if answer.ok:
            return DeliveryResult(Outcome.SENT, Reason.OK)  # accepted by the flow: no id back
        return classify(answer)

    async def _post(
        self, client: httpx.AsyncClient, body: Mapping[str, Any]
    ) -> Answer | DeliveryResult:
        return await attempt(client, "POST", self.url, json_body=body, timeout=self.timeout)


def classify(answer: Answer) -> DeliveryResult:
    """A trigger's answer that is not a success, classified (see the module's docstring)."""
    code = error_code(answer)
    if answer.status == 400 and code in GONE_CODES:
        return DeliveryResult(Outcome.PERMANENT, Reason.CHANNEL, detail=code)
    return failed(answer, permanent=PERMANENT, detail=code)


def error_code(answer: Answer) -> str | None:
    """The Logic Apps error code of an error answer, when it is an identifier."""
    error = answer.json_object().get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and _CODE.match(code) else None


def warnings(destination: TeamsDestination) -> list[str]:
    """What `relay check` says about a destination's URL (never the URL itself): relay posts
    to any http(s) URL, so these are warnings, never refusals."""
    if destination.workflow_url is None:
        return []
    parts = urlsplit(destination.workflow_url.get_secret_value())
    host = (parts.hostname or "").lower()
    out = []
    if parts.scheme.lower() == "http":
        out.append(
            "workflow_url is plain http: the URL, its signature included, crosses the network"
            " in clear"
        )
    if host.endswith(RETIRED_HOSTS):
        out.append(
            "workflow_url is an Office 365 connector webhook, which Microsoft retired: make a"
            " Workflows webhook instead (see the README, Chats: Microsoft Teams)"
        )
    elif not host.endswith(HOSTS) and host not in (h.lstrip(".") for h in HOSTS):
        out.append(
            "workflow_url's host is not Power Automate's (*.logic.azure.com,"
            " *.environment.api.powerplatform.com): fine for a proxy or a test server"
        )
    if "sig" not in parse_qs(parts.query):
        out.append(
            "workflow_url has no sig= parameter: the flow answers 401 unless its trigger lets"
            " anyone post; copy the whole URL from the trigger"
        )
    return out
