"""Delivery channels behind one small interface, registered by entry point.

Entry point group ``forewarn.channels``: each entry names a :class:`~service.channels.base.Channel`
subclass; :func:`~service.channels.registry.load_channels` builds them from settings.
"""

from __future__ import annotations

from service.channels.base import Channel, DeliveryError, Message, PermanentDeliveryError, Receipt
from service.channels.registry import available_channels, load_channels

__all__ = [
    "Channel",
    "DeliveryError",
    "Message",
    "PermanentDeliveryError",
    "Receipt",
    "available_channels",
    "load_channels",
]
