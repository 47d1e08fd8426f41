"""The unsubscribe link every email carries: a confirmation page, and the POST that honours it.

``GET /unsubscribe?token=…`` shows a page with one button, so that mail scanners which open links do
not unsubscribe anyone; ``POST /unsubscribe?token=…`` (the button, or a mail client's RFC 8058
one-click ``List-Unsubscribe-Post``) adds the address to the suppression list the delivery job checks.
"""

from __future__ import annotations

import html
import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from connectors.delivery_ledger import DeliveryLedger
from connectors.errors import ConnectorError
from udfs.unsubscribe import ExpiredToken, InvalidToken, verify

__all__ = ["UnsubscribePages"]

log = logging.getLogger(__name__)

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}
button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head><body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status)


class UnsubscribePages:
    def __init__(self, secret: bytes | None, max_age_s: int, ledger: DeliveryLedger) -> None:
        self.secret = secret
        self.max_age_s = max_age_s
        self.ledger = ledger
        self._ledger_ready = False

    def _who(self, request: Request) -> tuple[str, str] | HTMLResponse:
        if not self.secret:
            return _page("Unsubscribe is not configured", "<p>Set UNSUBSCRIBE_SECRET for the collector.</p>", 503)
        token = request.query_params.get("token", "")
        try:
            return verify(token, self.secret, self.max_age_s)
        except ExpiredToken:
            return _page("This link has expired", "<p>Use the link in a more recent email.</p>", 400)
        except InvalidToken:
            return _page("This link is not valid", "<p>It may have been cut short; copy the whole link.</p>", 400)

    def _suppress(self, email: str, person_id: str) -> None:
        """Connects on first use, so the collector starts (and ingests) while Redis is still coming up."""
        if self._ledger_ready is False:
            self.ledger.setup()
            self._ledger_ready = True
        self.ledger.suppress([email], "unsubscribed", f"link:{person_id}")

    async def confirm(self, request: Request) -> Response:
        who = self._who(request)
        if isinstance(who, Response):
            return who
        _, email = who
        token = html.escape(request.query_params["token"], quote=True)
        form = (
            f"<p>Stop emails to <b>{html.escape(email)}</b>?</p>"
            f'<form method="post" action="/unsubscribe?token={token}"><button>Unsubscribe</button></form>'
        )
        return _page("Unsubscribe", form)

    async def unsubscribe(self, request: Request) -> Response:
        who = self._who(request)
        if isinstance(who, Response):
            return who
        person_id, email = who
        try:
            await run_in_threadpool(self._suppress, email, person_id)
        except ConnectorError:
            log.warning("unsubscribe of %s could not be stored; Redis is unreachable", person_id)
            return _page("Please try again in a minute", "<p>We could not record this just now.</p>", 503)
        log.info("unsubscribed %s", person_id)
        return _page("You are unsubscribed", f"<p>We will not email <b>{html.escape(email)}</b> again.</p>")
