"""Mailchimp Transactional (Mandrill) ``POST /api/1.0/messages/send`` and ``/messages/search``.

Contract: https://mailchimp.com/developer/transactional/api/messages/send-new-message/ — the key is the
``key`` field of the body; 200 with one ``{email, status, reject_reason, _id}`` per recipient; errors
are ``{"status": "error", "code", "name", "message"}``, sent with HTTP 500 even when they are the
caller's fault, so the ``name`` decides: ``GeneralError``/``ServiceUnavailable`` are worth retrying (after a
send, only once ``messages/search`` says the message is not there: :class:`~connectors.errors.OutcomeUnknown`),
``Invalid_Key`` means the key itself is refused.
"""

from __future__ import annotations

from typing import Any

import requests

from connectors.errors import CredentialsRejected, OutcomeUnknown, PermanentError, TransientError
from connectors.esp.http import network_error, retry_after_seconds
from connectors.esp.message import DEFAULT_HTTP_TIMEOUT_S, EmailMessage, SendResult, http_error_detail

__all__ = ["MailchimpProvider"]

_RETRYABLE_ERRORS = {"GeneralError", "ServiceUnavailable"}
_KEY_ERRORS = {"Invalid_Key"}
_ACCEPTED = {"sent", "queued", "scheduled"}


class MailchimpProvider:
    name = "mailchimp"

    def __init__(
        self, api_key: str, base_url: str = "https://mandrillapp.com", timeout_s: float = DEFAULT_HTTP_TIMEOUT_S
    ):
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def request_body(self, message: EmailMessage) -> dict[str, Any]:
        recipient: dict[str, str] = {"email": message.to_email, "type": "to"}
        if message.to_name:
            recipient["name"] = message.to_name
        payload: dict[str, Any] = {
            "html": message.html,
            "text": message.text,
            "subject": message.subject,
            "from_email": message.from_email,
            "to": [recipient],
            "headers": dict(message.headers),
            "metadata": {"trigger_id": message.trigger_id, **message.metadata},
        }
        if message.from_name:
            payload["from_name"] = message.from_name
        return {"key": self.api_key, "message": payload}

    def _call(self, path: str, body: dict[str, Any]) -> Any:
        url = f"{self.base_url}{path}"
        try:
            answer = self._session.post(url, json=body, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise network_error(self.name, url, exc, self.timeout_s) from exc
        if answer.ok:
            return answer.json()
        detail = http_error_detail(answer.status_code, answer.text)
        try:
            error_name = answer.json().get("name")
        except ValueError:
            error_name = None
        hint = retry_after_seconds(answer.headers)
        if answer.status_code == 429:
            raise TransientError(f"mailchimp: {detail}", retry_after=hint)
        if error_name in _KEY_ERRORS:
            raise CredentialsRejected(f"mailchimp refused the key: {detail}")
        if error_name in _RETRYABLE_ERRORS or (error_name is None and answer.status_code >= 500):
            raise OutcomeUnknown(f"mailchimp: {detail}", retry_after=hint)
        raise PermanentError(f"mailchimp refused the message: {detail}", detail=detail)

    def send(self, message: EmailMessage) -> SendResult:
        results = self._call("/api/1.0/messages/send", self.request_body(message))
        if not isinstance(results, list) or not results:
            raise TransientError(f"mailchimp: unexpected answer {str(results)[:200]}")
        first = results[0]
        if first.get("status") not in _ACCEPTED:
            detail = f"status {first.get('status')!r}, reject_reason {first.get('reject_reason')!r}"
            raise PermanentError(f"mailchimp rejected the message: {detail}", detail=detail)
        return SendResult(self.name, first.get("_id"), detail=first.get("status"))

    def find_sent(self, trigger_id: str) -> SendResult | None:
        found = self._call("/api/1.0/messages/search", {"key": self.api_key, "query": f"u_trigger_id:{trigger_id}"})
        if not found:
            return None
        return SendResult(self.name, found[0].get("_id"), detail="found by messages/search")

    def close(self) -> None:
        self._session.close()
