"""A generic signed webhook: for shops whose mail goes through their own service.

Contract (ours; README "Providers"): ``POST <url>`` with JSON ``{trigger_id, to, from, subject, html,
text, headers}``; ``X-Cartpulse-Signature: sha256=<hex HMAC-SHA256 of the raw body with the shared
secret>``; ``Idempotency-Key: <trigger_id>``, which the receiver must honour, so sending the same
trigger again after a crash is safe. Any 2xx is acceptance; a JSON ``id`` in it is the message id.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import requests

from connectors.esp.http import post
from connectors.esp.message import DEFAULT_HTTP_TIMEOUT_S, EmailMessage, SendResult

__all__ = ["WebhookProvider", "sign"]


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookProvider:
    name = "webhook"
    #: the receiver deduplicates on Idempotency-Key, so a resend after a crash cannot double-send
    idempotent_resend = True

    def __init__(self, url: str, secret: str, timeout_s: float = DEFAULT_HTTP_TIMEOUT_S):
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def send(self, message: EmailMessage) -> SendResult:
        body = json.dumps(
            {
                "trigger_id": message.trigger_id,
                "to": message.to_email,
                "from": message.from_email,
                "subject": message.subject,
                "html": message.html,
                "text": message.text,
                "headers": dict(message.headers),
                "metadata": dict(message.metadata),
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Cartpulse-Signature": sign(body, self.secret),
            "Idempotency-Key": message.trigger_id,
        }
        answer = post(self._session, self.name, self.url, data=body, headers=headers, timeout_s=self.timeout_s)
        try:
            message_id = answer.json().get("id")
        except ValueError:
            message_id = None
        return SendResult(self.name, message_id)

    def find_sent(self, trigger_id: str) -> SendResult | None:
        raise NotImplementedError("the webhook needs no lookup: a resend with the same Idempotency-Key is safe")

    def close(self) -> None:
        self._session.close()
