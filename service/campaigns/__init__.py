"""Reminder campaigns (执法事项提示): planning before predicted peaks, content, lifecycle.

Modules: :mod:`~service.campaigns.tables` (Campaign, Recipient), :mod:`~.status` (statuses
and transitions), :mod:`~.lifecycle`, :mod:`~.plan_from_run`, :mod:`~.planning` (pure
planning maths), :mod:`~.constraints`, :mod:`~.lookups`, :mod:`~.audiences`,
:mod:`~.queries`, :mod:`~.content` (Jinja2 rendering), :mod:`~.recipients`,
:mod:`~.randomised`, :mod:`~.ics` (iCalendar), :mod:`~.cli` (Typer commands);
:mod:`~.service` re-exports the public functions. This package's ``__init__`` imports
nothing.
"""
