"""Campaigns: plan from forecasts, create, edit, approve, cancel, list, publish.

The public face of the campaign stage; the work is done in modules named for what they own:

- :mod:`service.campaigns.status` -- the lifecycle's transition table and status sets;
- :mod:`service.campaigns.lifecycle` -- :func:`transition` and the ``*_campaign`` commands;
- :mod:`service.campaigns.plan_from_run` -- :func:`plan_campaigns` from a forecast run;
- :mod:`service.campaigns.audiences` -- who a campaign reaches, recipients' registration;
- :mod:`service.campaigns.queries` -- one campaign, the list, the published reminders;
- :mod:`service.campaigns.constraints`, :mod:`service.campaigns.lookups` -- send-date
  constraints, and the category, region and campaign lookups they share.

Functions named ``*_campaign`` commit their own unit of work; :func:`transition` does not
(callers such as the scheduler commit it together with their own writes, e.g. outbox rows).
"""

from __future__ import annotations

from service.campaigns.audiences import (
    Audience,
    create_recipient,
    resolve_audience,
    set_may_contact,
)
from service.campaigns.constraints import resolve_blackout
from service.campaigns.lifecycle import (
    approve_campaign,
    cancel_campaign,
    create_campaign,
    preview,
    render_message,
    transition,
    update_campaign,
)
from service.campaigns.lookups import local_today
from service.campaigns.plan_from_run import PlanResult, plan_campaigns
from service.campaigns.queries import campaign_peak, get_campaign, list_campaigns, public_reminders
from service.campaigns.status import ALLOWED_TRANSITIONS, EDITABLE, OCCUPYING, PUBLISHED, STATUSES

__all__ = [
    "STATUSES",
    "ALLOWED_TRANSITIONS",
    "EDITABLE",
    "OCCUPYING",
    "PUBLISHED",
    "PlanResult",
    "Audience",
    "local_today",
    "transition",
    "plan_campaigns",
    "create_campaign",
    "update_campaign",
    "approve_campaign",
    "cancel_campaign",
    "get_campaign",
    "list_campaigns",
    "campaign_peak",
    "render_message",
    "preview",
    "resolve_audience",
    "public_reminders",
    "create_recipient",
    "set_may_contact",
    "resolve_blackout",
]
