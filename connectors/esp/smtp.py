"""SMTP with STARTTLS and AUTH, for shops that relay through their own mail server.

SMTP offers no way to ask whether a message was accepted, so after a crash between acceptance and
our "sent" mark the delivery stage records the trigger as ``uncertain`` instead of sending twice.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage as MimeMessage
from email.utils import formataddr, make_msgid

from connectors.errors import CredentialsRejected, OutcomeUnknown, PermanentError, TransientError
from connectors.esp.message import DEFAULT_HTTP_TIMEOUT_S, EmailMessage, SendResult

__all__ = ["SmtpProvider"]


class SmtpProvider:
    name = "smtp"
    idempotent_resend = False

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        starttls: bool = True,
        ca_file: str | None = None,
        verify_tls: bool = True,
        timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
    ):
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout_s = timeout_s
        self._tls = ssl.create_default_context(cafile=ca_file)
        if not verify_tls:  # only for a local sandbox with a self-signed certificate
            self._tls.check_hostname = False
            self._tls.verify_mode = ssl.CERT_NONE

    def mime(self, message: EmailMessage) -> MimeMessage:
        mime = MimeMessage()
        mime["From"] = formataddr((message.from_name or "", message.from_email))
        mime["To"] = formataddr((message.to_name or "", message.to_email))
        mime["Subject"] = message.subject
        mime["Message-ID"] = make_msgid(idstring=message.trigger_id, domain="cartpulse")
        mime["X-Cartpulse-Trigger-Id"] = message.trigger_id
        for name, value in {**message.headers, **{f"X-Cartpulse-{k}": v for k, v in message.metadata.items()}}.items():
            if name not in mime:
                mime[name] = value
        mime.set_content(message.text)
        mime.add_alternative(message.html, subtype="html")
        return mime

    def send(self, message: EmailMessage) -> SendResult:
        mime = self.mime(message)
        handing_over = False  # past login: from here a lost connection may have lost the server's "250 OK"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as server:
                if self.starttls:
                    server.starttls(context=self._tls)
                if self.username:
                    server.login(self.username, self.password or "")
                handing_over = True
                server.send_message(mime)
        except smtplib.SMTPAuthenticationError as exc:
            raise CredentialsRejected(f"smtp refused the login: {exc.smtp_code} {exc.smtp_error!r}") from exc
        except smtplib.SMTPResponseException as exc:
            detail = f"{exc.smtp_code} {exc.smtp_error!r}"
            if 400 <= exc.smtp_code < 500:
                raise TransientError(f"smtp: {detail}") from exc
            raise PermanentError(f"smtp refused the message: {detail}", detail=detail) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"smtp refused the recipient: {exc.recipients}", detail=str(exc.recipients)) from exc
        except (OSError, smtplib.SMTPException) as exc:
            if handing_over:
                raise OutcomeUnknown(f"smtp: the connection failed while handing the message over: {exc}") from exc
            raise TransientError(f"smtp: {exc}") from exc
        return SendResult(self.name, mime["Message-ID"])

    def find_sent(self, trigger_id: str) -> SendResult | None:
        raise NotImplementedError("SMTP cannot tell whether a message was accepted")

    def close(self) -> None:
        return None
