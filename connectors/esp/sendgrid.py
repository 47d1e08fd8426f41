"""SendGrid v3 Mail Send (``POST /v3/mail/send``) and, for reconciliation, the Email Activity API.

Contract: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send — Bearer key; 202 with
an empty body and ``X-Message-Id`` on success; 400 ``{"errors": [{"message", "field", "help"}]}``; 429
when rate limited. ``trigger_id`` goes in ``custom_args`` so the Activity API can find the message.
"""

from __future__ import annotations

from typing import Any

import requests

from connectors.errors import CredentialsRejected, OutcomeUnknown, PermanentError, TransientError
from connectors.esp.http import post
from connectors.esp.message import DEFAULT_HTTP_TIMEOUT_S, EmailMessage, SendResult

__all__ = ["SendGridProvider"]


class SendGridProvider:
    name = "sendgrid"

    def __init__(
        self, api_key: str, base_url: str = "https://api.sendgrid.com", timeout_s: float = DEFAULT_HTTP_TIMEOUT_S
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {api_key}"

    def request_body(self, message: EmailMessage) -> dict[str, Any]:
        recipient: dict[str, str] = {"email": message.to_email}
        if message.to_name:
            recipient["name"] = message.to_name
        sender: dict[str, str] = {"email": message.from_email}
        if message.from_name:
            sender["name"] = message.from_name
        body: dict[str, Any] = {
            "personalizations": [{"to": [recipient]}],
            "from": sender,
            "subject": message.subject,
            # SendGrid requires text/plain before text/html.
            "content": [{"type": "text/plain", "value": message.text}, {"type": "text/html", "value": message.html}],
            "custom_args": {"trigger_id": message.trigger_id, **message.metadata},
        }
        if message.headers:
            body["headers"] = dict(message.headers)
        return body

    def send(self, message: EmailMessage) -> SendResult:
        answer = post(
            self._session,
            self.name,
            f"{self.base_url}/v3/mail/send",
            json_body=self.request_body(message),
            timeout_s=self.timeout_s,
        )
        if answer.status_code != 202:
            raise OutcomeUnknown(f"sendgrid: expected 202 Accepted, got {answer.status_code}")
        return SendResult(self.name, answer.headers.get("X-Message-Id"))

    def find_sent(self, trigger_id: str) -> SendResult | None:
        query = f"unique_args['trigger_id']=\"{trigger_id}\""
        try:
            params: dict[str, str | int] = {"query": query, "limit": 10}
            answer = self._session.get(f"{self.base_url}/v3/messages", params=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise TransientError(f"sendgrid: activity lookup failed: {exc}") from exc
        if answer.status_code == 429 or answer.status_code >= 500:
            raise TransientError(f"sendgrid: activity lookup answered {answer.status_code}")
        if answer.status_code in (401, 403):
            raise CredentialsRejected(f"sendgrid refused the key for the activity lookup: {answer.status_code}")
        if not answer.ok:
            raise PermanentError(f"sendgrid: activity lookup refused: {answer.status_code}", detail=answer.text[:500])
        messages = answer.json().get("messages") or []
        if not messages:
            return None
        return SendResult(self.name, messages[0].get("msg_id"), detail="found by the Email Activity API")

    def close(self) -> None:
        self._session.close()
