"""Reminder campaigns (执法事项提示): planning before predicted peaks, content, lifecycle.

Modules: :mod:`~service.campaigns.tables` (Campaign, Recipient), :mod:`~.planning` (pure
planning maths), :mod:`~.content` (Jinja2 rendering), :mod:`~.service` (lifecycle and
queries), :mod:`~.ics` (iCalendar), :mod:`~.cli` (Typer commands). This package's
``__init__`` imports nothing, so ``service.store.tables`` can register the tables early.
"""
