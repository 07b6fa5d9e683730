"""The channel interface: validate a destination, send one message.

Exception tree::

    DeliveryError                 a delivery failed; retry later
    └── PermanentDeliveryError    retrying cannot help (bad destination, refused by policy)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from service.config import Settings

__all__ = ["Channel", "Message", "Receipt", "DeliveryError", "PermanentDeliveryError"]


class DeliveryError(Exception):
    """A delivery failed and may succeed later; ``status`` is the receiver's answer, if any."""

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class PermanentDeliveryError(DeliveryError):
    """A delivery that no retry can fix (e.g. the destination is not allowed)."""


@dataclass(frozen=True)
class Message:
    """One rendered message for one recipient through one channel.

    ``idempotency_key`` is the same on every attempt; receivers dedupe on it.
    """

    idempotency_key: str
    destination: str
    subject: str
    body: str
    campaign_id: str = ""
    recipient_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    """What the receiver acknowledged."""

    status: int | None = None
    detail: str = ""


class Channel(ABC):
    """A delivery channel. Subclasses set ``name`` and build themselves from settings."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Channel:
        """Build the channel from the deployment's settings."""

    def validate(self, destination: str) -> str:
        """Check a destination when it is registered; return its normal form or raise
        :class:`PermanentDeliveryError`."""
        return destination

    @abstractmethod
    def send(self, message: Message) -> Receipt:
        """Deliver ``message`` once; raise :class:`DeliveryError` when it did not arrive."""

    def attach(self, recipient_secrets: Callable[[str], list[str]]) -> None:  # noqa: B027
        """Optional hook: the dispatcher hands over a lookup of a recipient's own signing
        secrets (by recipient id; empty when it has none), for channels that sign (the webhook
        channel). Channels know nothing of where recipients are stored."""

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections (the default holds none)."""
