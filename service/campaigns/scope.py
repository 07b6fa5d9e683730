"""Which stored evaluation answers a change to some campaigns can alter (issue 13).

An effect (:mod:`service.evaluation.effects`) reads, besides records and the forecast run:
its own campaign's status; the committed campaigns of its category (control regions) and the
sent campaigns of its category and region (its own other windows); and, for its placebo
calibration, the committed campaigns of every category. Scorecards read every campaign and
every outbox row.

So a delivery, or a status move from one committed status to another (what a dispatch tick
does: scheduled → dispatching → sent / partially_failed), can change the scorecards and the
effects of campaigns in the moved campaigns' categories only: the set of committed campaigns
does not change. Any other status move (an approval, a cancellation, a campaign sent back to
draft) changes the placebo pool of every category: everything is stale.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.campaigns.status import COMMITTED
from service.campaigns.tables import Campaign

__all__ = ["evaluation_scope", "keeps_commitment"]


def keeps_commitment(frm: str, to: str) -> bool:
    """A status move that leaves the set of committed campaigns as it was."""
    return frm in COMMITTED and to in COMMITTED


def evaluation_scope(session: Session, campaign_ids: Collection[str]) -> set[str]:
    """Every campaign of the categories of ``campaign_ids`` (unknown ids: none): the
    campaigns whose effect deliveries to, or committed-to-committed status moves of,
    ``campaign_ids`` can alter."""
    ids = sorted(set(campaign_ids))
    categories: set[str] = set()
    for i in range(0, len(ids), 500):
        categories.update(session.scalars(select(Campaign.category).where(
            Campaign.id.in_(ids[i:i + 500])).distinct()))
    if not categories:
        return set()
    return set(session.scalars(select(Campaign.id).where(
        Campaign.category.in_(sorted(categories)))))
