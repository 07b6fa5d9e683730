"""E-mail over SMTP (STARTTLS, implicit TLS or plain), UTF-8 subject and body.

``Message-ID`` is derived from the idempotency key, so a retried delivery carries the same id
and mail systems (and people) can recognise the duplicate.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Literal

from service.channels.base import Channel, DeliveryError, Message, PermanentDeliveryError, Receipt

if TYPE_CHECKING:
    from service.config import Settings

__all__ = ["EmailChannel", "message_id", "build_email"]


def message_id(idempotency_key: str, domain: str) -> str:
    """``<fw-<sha256(key)[:32]>@domain>``: stable for a key, safe in a header."""
    return f"<fw-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def build_email(message: Message, *, sender: str, domain: str) -> EmailMessage:
    """The MIME message: UTF-8 text body, RFC 2047-encoded Chinese subject."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = message.destination
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = message_id(message.idempotency_key, domain)
    mail["X-Forewarn-Idempotency-Key"] = message.idempotency_key
    if message.campaign_id:
        mail["X-Forewarn-Campaign"] = message.campaign_id
    mail.set_content(message.body, charset="utf-8", cte="base64")
    return mail


class EmailChannel(Channel):
    """Send one e-mail per message through an SMTP server."""

    name = "email"

    def __init__(self, *, host: str | None, port: int = 587,
                 security: Literal["starttls", "ssl", "none"] = "starttls",
                 username: str | None = None, password: str | None = None,
                 sender: str = "forewarn@localhost", domain: str = "forewarn.local",
                 timeout: float = 10.0, verify_tls: bool = True) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.sender, self.domain, self.timeout = sender, domain, timeout
        self.context = ssl.create_default_context()
        if not verify_tls:
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailChannel:
        e = settings.channels.email
        return cls(host=e.host, port=e.port, security=e.security, username=e.username,
                   password=e.password.get_secret_value() if e.password else None,
                   sender=e.sender, domain=e.message_id_domain, timeout=e.timeout_seconds,
                   verify_tls=e.verify_tls)

    def validate(self, destination: str) -> str:
        local, at, domain = destination.strip().rpartition("@")
        if not at or not local or "." not in domain or any(c in destination for c in "\r\n<>,"):
            raise PermanentDeliveryError(f"'{destination}' is not an e-mail address")
        return destination.strip()

    def _connect(self) -> smtplib.SMTP:
        assert self.host is not None
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                    context=self.context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            smtp.starttls(context=self.context)
        return smtp

    def send(self, message: Message) -> Receipt:
        if not self.host:
            raise PermanentDeliveryError("no SMTP server is configured "
                                         "(FOREWARN_CHANNELS__EMAIL__HOST)")
        to = self.validate(message.destination)
        mail = build_email(message, sender=self.sender, domain=self.domain)
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(mail, from_addr=self.sender, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError(f"recipient refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            detail = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(detail, status=exc.smtp_code) from exc
            raise DeliveryError(detail, status=exc.smtp_code) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if refused:
            raise PermanentDeliveryError(f"recipient refused: {refused}")
        return Receipt(status=250, detail=mail["Message-ID"])
