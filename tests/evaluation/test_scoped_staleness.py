"""A dispatch tick marks only what it changed (issue 13): its deliveries and its campaigns'
status moves among committed statuses change the scorecards and the effects of the
campaigns' categories; another category's stored effects stay current and are not
recomputed. Other status moves (an approval) still mark everything."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from service.campaigns.service import transition
from service.campaigns.tables import Campaign
from service.config import Settings
from service.dispatch.campaign_link import CampaignHooks
from service.dispatch.dispatcher import Dispatcher
from service.dispatch.tables import Outbox
from service.evaluation.storage import effect_key, state
from service.evaluation.tables import EvaluationResult
from service.evaluation.worker import needs_refresh, refresh
from tests.dispatch.conftest import add_rows
from tests.dispatch.test_outbox import Recorder
from tests.evaluation.conftest import Seeded

MONDAY = dt.datetime(2026, 11, 30, 4, tzinfo=dt.UTC)  # no week closes between refreshes


def _rows(seeded: Seeded) -> dict[tuple[str, str], Any]:
    with seeded.factory() as s:
        return {(r.kind, r.key): (r.generation, r.body, r.computed_at)
                for r in s.scalars(select(EvaluationResult))}


def test_a_delivery_in_one_category_leaves_another_categorys_effects_untouched(
        seeded: Seeded, settings: Settings) -> None:
    assert refresh(session_factory=seeded.factory, settings=settings,
                   now=MONDAY)["computed"] == 5  # 3 scorecards, 2 effects
    fireworks = ("effect", effect_key(seeded.sent_id, None))
    food = ("effect", effect_key(seeded.pending_id, None))  # food_safety, partially_failed
    before = _rows(seeded)
    with seeded.factory() as s:
        g = state(s).generation
        assert {gen for gen, _, _ in before.values()} == {g}

    # the food-safety campaign's failed recipient is sent again, and delivered
    add_rows(seeded.factory, n=1, channel="fake", destination="x",
             campaign_id=seeded.pending_id, start=9)
    recorder = Recorder()
    stats = Dispatcher(session_factory=seeded.factory, settings=settings,
                       channels={"fake": recorder}, hooks=CampaignHooks()).run()
    assert stats.delivered == 1 and len(recorder.sent) == 1
    with seeded.factory() as s:
        assert s.get(Campaign, seeded.pending_id).status == "partially_failed"  # type: ignore[union-attr]
        now = state(s).generation
        assert now > g and needs_refresh(s, settings, now=MONDAY)
        assert s.scalar(select(Outbox.status).where(Outbox.recipient_id == "r9")) \
            == "delivered"

    after = _rows(seeded)
    assert after[fireworks] == (now, *before[fireworks][1:])  # current, body untouched
    assert after[food][0] < now  # to be recomputed
    scorecards = [k for k in after if k[0] == "scorecard"]
    assert len(scorecards) == 3 and all(after[k][0] < now for k in scorecards)

    out = refresh(session_factory=seeded.factory, settings=settings, now=MONDAY)
    assert out["computed"] == 4  # the scorecards and the food-safety effect only
    final = _rows(seeded)
    assert final[fireworks] == (now, *before[fireworks][1:])
    assert final[food][0] == now and final[food][2] > before[food][2]
    with seeded.factory() as s:
        assert not needs_refresh(s, settings, now=MONDAY)


def test_an_approval_still_marks_every_answer_stale(seeded: Seeded,
                                                    settings: Settings) -> None:
    """Approving a campaign adds it to the committed campaigns every category's placebo
    calibration leaves out: no stored answer can be kept."""
    refresh(session_factory=seeded.factory, settings=settings, now=MONDAY)
    with seeded.factory() as s:
        draft = s.get(Campaign, seeded.draft_id)
        assert draft is not None
        transition(session=s, campaign=draft, to="approved", actor="test")
        s.commit()
        now = state(s).generation
    rows = _rows(seeded)
    assert len(rows) == 5 and all(gen < now for gen, _, _ in rows.values())
