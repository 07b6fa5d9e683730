"""Find channels through the ``forewarn.channels`` entry point group (built-ins as fallback)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from service.channels.base import Channel

if TYPE_CHECKING:
    from service.config import Settings

__all__ = ["GROUP", "BUILTIN", "available_channels", "load_channels"]

GROUP = "forewarn.channels"
BUILTIN = {
    "file": "service.channels.file:FileChannel",
    "webhook": "service.channels.webhook:WebhookChannel",
    "email": "service.channels.email:EmailChannel",
}


def _load(ref: str) -> type[Channel]:
    module, _, attr = ref.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    if not (isinstance(obj, type) and issubclass(obj, Channel)):
        raise TypeError(f"{ref} is not a Channel subclass")
    return obj


def available_channels() -> dict[str, type[Channel]]:
    """Channel classes by name: installed entry points override the built-in table."""
    found = {name: _load(ref) for name, ref in BUILTIN.items()}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        if isinstance(cls, type) and issubclass(cls, Channel):
            found[ep.name] = cls
    return found


def load_channels(settings: Settings, names: list[str] | None = None) -> dict[str, Channel]:
    """Instantiate the enabled channels (``settings.channels.enabled`` unless ``names``)."""
    classes = available_channels()
    wanted = names if names is not None else settings.channels.enabled
    unknown = sorted(set(wanted) - set(classes))
    if unknown:
        raise ValueError(f"unknown channel(s) {', '.join(unknown)}; known: {sorted(classes)}")
    return {name: classes[name].from_settings(settings) for name in wanted}
