"""Signed webhooks (Standard Webhooks) with an SSRF guard.

Headers: ``webhook-id`` (the idempotency key), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>``, one signature per
active secret separated by spaces, so a receiver can rotate its secret without downtime; the
signatures are made by the reference ``standardwebhooks`` library.
A recipient registered through ``/v1/recipients`` has its own secrets (rotated with a grace
period, :mod:`service.campaigns.recipients`); the deployment-wide
``FOREWARN_CHANNELS__WEBHOOK__SECRETS`` sign for recipients without any.
The destination is resolved and vetted at registration and again at every send; the request
goes to the vetted address (``Host`` and TLS SNI keep the name), redirects are not followed,
timeouts are short and at most ``max_response_bytes`` of the answer are read.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
from standardwebhooks import Webhook

from service.channels.base import Channel, DeliveryError, Message, PermanentDeliveryError, Receipt
from service.channels.netguard import AddressRefused, ResolutionFailed, Resolver, resolve_vetted

if TYPE_CHECKING:
    from service.config import Settings

__all__ = ["WebhookChannel", "sign", "decode_secret", "webhook_body"]


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret (the prefix is optional)."""
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise ValueError("a webhook secret must be base64, optionally prefixed 'whsec_'") from exc


def sign(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<sig>`` per key, space-separated, each
    signed by the reference ``standardwebhooks`` library (the body is UTF-8 JSON)."""
    when = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    text = body.decode("utf-8")
    return " ".join(Webhook(k).sign(msg_id, when, text) for k in keys)


def webhook_body(message: Message) -> bytes:
    """The JSON body of a reminder webhook (UTF-8, compact)."""
    doc: dict[str, Any] = {
        "type": "enforcement_reminder",
        "id": message.idempotency_key,
        "campaign_id": message.campaign_id,
        "recipient_id": message.recipient_id,
        "subject": message.subject,
        "body": message.body,
        "data": message.data,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookChannel(Channel):
    """POST signed JSON to the recipient's URL."""

    name = "webhook"

    def __init__(self, *, secrets: list[str], connect_timeout: float = 3.0,
                 read_timeout: float = 5.0, max_response_bytes: int = 64 * 1024,
                 allow_loopback: bool = False, allow_private: bool = False,
                 user_agent: str = "Forewarn-Webhook/1", max_connections: int = 16,
                 resolver: Resolver | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.keys = [decode_secret(s) for s in secrets]
        self.max_response_bytes = max_response_bytes
        self.allow_loopback = allow_loopback
        self.allow_private = allow_private
        self.user_agent = user_agent
        self.resolver = resolver
        self._recipient_secrets: Callable[[str], list[str]] | None = None
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
        self._client = httpx.Client(
            timeout=timeout, follow_redirects=False, trust_env=False, transport=transport,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookChannel:
        w = settings.channels.webhook
        return cls(secrets=[s.get_secret_value() for s in w.secrets],
                   connect_timeout=w.connect_timeout_seconds,
                   read_timeout=w.read_timeout_seconds,
                   max_response_bytes=w.max_response_bytes, allow_loopback=w.allow_loopback,
                   allow_private=w.allow_private, user_agent=w.user_agent,
                   max_connections=max(4, settings.dispatch.concurrency))

    def attach(self, recipient_secrets: Callable[[str], list[str]]) -> None:
        self._recipient_secrets = recipient_secrets

    def signing_keys(self, recipient_id: str) -> list[bytes]:
        """The recipient's own unexpired secrets, else the deployment-wide ones."""
        own = self._recipient_secrets(recipient_id) if self._recipient_secrets else []
        return [decode_secret(s) for s in own] if own else self.keys

    def _vet(self, destination: str) -> tuple[httpx.URL, str]:
        try:
            url = httpx.URL(destination)
        except httpx.InvalidURL as exc:
            raise PermanentDeliveryError(f"invalid webhook URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise PermanentDeliveryError("a webhook URL must be http(s)://host/…")
        if url.userinfo:
            raise PermanentDeliveryError("a webhook URL must not carry credentials")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            ip = resolve_vetted(url.host, port, allow_loopback=self.allow_loopback,
                                allow_private=self.allow_private, resolver=self.resolver)
        except ResolutionFailed as exc:  # temporary: retried with backoff
            raise DeliveryError(f"webhook destination not resolved now: {exc}") from exc
        except AddressRefused as exc:  # the SSRF guard's refusal: permanent
            raise PermanentDeliveryError(f"webhook destination refused: {exc}") from exc
        return url, str(ip)

    def validate(self, destination: str) -> str:
        try:
            url, _ = self._vet(destination)
        except DeliveryError as exc:  # checking a destination: an unresolvable one is refused
            raise PermanentDeliveryError(exc.detail) from exc
        return str(url)

    def send(self, message: Message) -> Receipt:
        keys = self.signing_keys(message.recipient_id)
        if not keys:
            raise PermanentDeliveryError("no webhook secret: the recipient has none and "
                                         "FOREWARN_CHANNELS__WEBHOOK__SECRETS is empty")
        url, ip = self._vet(message.destination)  # re-checked at send time: DNS may change
        body = webhook_body(message)
        ts = int(time.time())
        host_header = url.host if url.port is None else f"{url.host}:{url.port}"
        if ":" in url.host and url.port is None:
            host_header = f"[{url.host}]"
        elif ":" in url.host:
            host_header = f"[{url.host}]:{url.port}"
        headers = {
            "host": host_header,
            "content-type": "application/json; charset=utf-8",
            "user-agent": self.user_agent,
            "webhook-id": message.idempotency_key,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(keys, message.idempotency_key, ts, body),
        }
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        request = self._client.build_request("POST", url.copy_with(host=ip), content=body,
                                             headers=headers, extensions=extensions)
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"timeout: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        try:
            read = 0
            snippet = b""
            for chunk in response.iter_raw():
                if read < 512:
                    snippet += chunk[:512 - read]
                read += len(chunk)
                if read >= self.max_response_bytes:
                    break  # cap: stop reading, close the connection
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__} while reading the answer") from exc
        finally:
            response.close()
        status = response.status_code
        text = snippet.decode("utf-8", "replace")
        if 200 <= status < 300:
            return Receipt(status=status, detail=text[:200])
        if 300 <= status < 400:
            raise DeliveryError(f"HTTP {status}: redirects are not followed", status=status)
        raise DeliveryError(f"HTTP {status}: {text[:200]}", status=status)

    def close(self) -> None:
        self._client.close()
