"""Planning campaigns from a forecast run: the run's peak windows merged over signals, split
into campaign windows, ranked, matched with existing campaigns, then placed by
:class:`service.campaigns.planning.Planner` under the deployment's constraints. The steps of
:func:`plan_campaigns` are small functions over one :class:`_Pass`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import record
from service.campaigns.audiences import audience_summary
from service.campaigns.constraints import audience_key, booking_of, constraints_for
from service.campaigns.lifecycle import transition
from service.campaigns.lookups import (
    campaign_title,
    lead_days_for,
    legal_basis_error,
    local_today,
    require_legal_basis,
)
from service.campaigns.planning import (
    Placement,
    Planner,
    Window,
    fmt_date,
    ideal_send_date,
    merge_peaks,
    rank_windows,
    split_window,
)
from service.campaigns.randomised import propose_randomised_timing
from service.campaigns.status import FLAGGABLE, OCCUPYING, REPLANNABLE
from service.campaigns.tables import Campaign
from service.config import CampaignSettings, Settings
from service.errors import Conflict, NotFound, UnprocessableContent
from service.store.tables import Category, ForecastRun, ForecastWeek, Region, utcnow

__all__ = ["PlanResult", "plan_campaigns"]


@dataclass
class PlanResult:
    """What a planning pass did."""

    run_id: str
    today: dt.date
    windows: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "today": self.today, "windows": self.windows,
                "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "flagged": self.flagged, "superseded": self.superseded,
                "dropped": self.dropped, "untouched": self.untouched, "errors": self.errors}


def _overlaps(c: Campaign, w: Window, days: int) -> bool:
    tol = dt.timedelta(days=days)
    return c.window_start <= w.end + tol and c.window_end >= w.start - tol


def _match(windows: Sequence[Window], campaigns: Sequence[Campaign],
           days: int) -> dict[tuple[str, str, dt.date], Campaign]:
    """Pair each window (highest rank first) with at most one existing campaign."""
    by_series: dict[tuple[str, str], list[Campaign]] = {}
    for c in campaigns:
        by_series.setdefault((c.category, c.region), []).append(c)
    used: set[str] = set()
    out: dict[tuple[str, str, dt.date], Campaign] = {}
    for w in windows:
        options = [c for c in by_series.get((w.category, w.region), [])
                   if c.id not in used and _overlaps(c, w, days)]
        if not options:
            continue
        best = min(options, key=lambda c: (abs((c.window_start - w.start).days)
                                           + abs((c.window_end - w.end).days),
                                           c.status not in REPLANNABLE, c.created_at, c.id))
        used.add(best.id)
        out[w.key] = best
    return out


def _weeks_evidence(session: Session, run_id: str, w: Window) -> list[dict[str, Any]]:
    series = [str(p["series_id"]) for p in w.peaks]
    rows = session.execute(select(ForecastWeek.series_id, ForecastWeek.week,
                                  ForecastWeek.expected, ForecastWeek.p_spike).where(
        ForecastWeek.run_id == run_id, ForecastWeek.series_id.in_(series),
        ForecastWeek.week >= w.start, ForecastWeek.week <= w.end)
        .order_by(ForecastWeek.series_id, ForecastWeek.week)).all()
    return [{"series_id": s, "week": wk.isoformat(), "expected": round(float(e), 2),
             "p_spike": round(float(p), 3)} for s, wk, e, p in rows]


def _evidence(session: Session, run_id: str, w: Window) -> list[dict[str, Any]]:
    weeks = _weeks_evidence(session, run_id, w)
    return [{**dict(p), "weeks": [x for x in weeks if x["series_id"] == p["series_id"]]}
            for p in w.peaks]


def _apply_window(c: Campaign, w: Window, *, lead_days: int, run_id: str, rank: int,
                  evidence: list[dict[str, Any]]) -> None:
    c.window_start, c.window_end, c.peak_week = w.start, w.end, w.peak_week
    c.signal, c.lead_days, c.rank = w.signal, lead_days, rank
    c.expected_count, c.expected_excess = w.expected_count, w.expected_excess
    c.probability, c.threshold = w.probability, w.threshold
    c.onset, c.decision_threshold = w.expected_onset, w.decision_threshold
    c.part, c.parts = w.part, w.parts
    c.peak_id, c.run_id, c.last_run_id = w.peak_id, run_id, run_id
    c.evidence = evidence


def _proposal(w: Window, lead_days: int, today: dt.date, run_id: str) -> dict[str, Any]:
    return {"window_start": w.start.isoformat(), "window_end": w.end.isoformat(),
            "peak_week": w.peak_week.isoformat(),
            "send_date": max(ideal_send_date(w.expected_onset, lead_days), today).isoformat(),
            "onset": w.expected_onset.isoformat(), "decision_threshold": w.decision_threshold,
            "part": w.part, "parts": w.parts,
            "expected_count": w.expected_count, "expected_excess": w.expected_excess,
            "probability": w.probability, "threshold": w.threshold, "peak_id": w.peak_id,
            "signal": w.signal, "run_id": run_id}


@dataclass
class _Pass:
    """One planning pass: what its steps read, and the result they fill in."""

    session: Session
    cfg: CampaignSettings
    run: ForecastRun
    today: dt.date
    actor: str
    cats: dict[str, Category]
    regions: dict[str, Region]
    result: PlanResult
    planner: Planner = field(init=False)  # once the send dates to plan around are known


def plan_campaigns(
    *,
    session: Session,
    settings: Settings,
    today: dt.date | None = None,
    run_id: str | None = None,
    categories: Sequence[str] | None = None,
    actor: str = "planner",
) -> PlanResult:
    """(Re)plan campaigns from the predicted peak windows of the latest (or a given) run.

    One campaign per (category, region, window): a window matches an existing campaign of the
    same category and region whose window overlaps it within ``window_match_days``. Drafts are
    updated in place; approved/scheduled campaigns whose window moved by more than
    ``review_shift_days`` — or vanished from a run that covers their window — become
    ``needs_review`` with the new proposal; drafts whose window vanished are ``superseded``;
    dispatching, sent, partially failed and cancelled campaigns are left as they are.

    A category without a legal basis is not planned: it is listed in ``errors`` and the other
    categories are planned. Asking explicitly (``categories``) for such a category raises 422.
    """
    today = today or local_today(settings)
    run = _finished_run(session, run_id)
    cats = {c.code: c for c in session.scalars(select(Category))}
    regions = {r.code: r for r in session.scalars(select(Region))}
    wanted = _wanted_categories(categories, cats)
    p = _Pass(session=session, cfg=settings.campaigns, run=run, today=today, actor=actor,
              cats=cats, regions=regions, result=PlanResult(run_id=run.id, today=today))
    ranked, no_basis = _ranked_windows(p, wanted)
    existing, others = _campaigns_in_scope(session, wanted)
    matches = _match(ranked, existing, p.cfg.window_match_days)
    matched_ids = {c.id for c in matches.values()}
    _retire_vanished(p, existing, matched_ids, no_basis)
    horizon_end = max([w.end for w in ranked] + [today]) + dt.timedelta(days=90)
    p.planner = Planner(constraints_for(p.cfg, today, horizon_end), today,
                        fixed=[booking_of(c, cats) for c in existing + others
                               if _fixed(c, today, matched_ids)])
    for rank, w in enumerate(ranked, start=1):
        _plan_window(p, w, rank, matches.get(w.key))
    propose_randomised_timing(session=session, settings=settings, run_id=run.id, actor=actor)
    session.commit()
    return p.result


def _finished_run(session: Session, run_id: str | None) -> ForecastRun:
    """The run to plan from (the latest by default); 404 without one, 409 if unfinished."""
    from service.forecasting import get_run, latest_run  # pandas: only to plan

    run: ForecastRun | None = get_run(session=session, run_id=run_id) if run_id \
        else latest_run(session=session)
    if run is None:
        raise NotFound("there is no finished forecast run to plan from; run a forecast first")
    if run.status not in ("succeeded", "partial"):
        raise Conflict(f"forecast run {run.id} is {run.status}; plan from a finished run")
    return run


def _wanted_categories(categories: Sequence[str] | None,
                       cats: dict[str, Category]) -> set[str] | None:
    """The categories asked for (None: all); 422 for an unknown one or one without a legal
    basis."""
    wanted = set(categories) if categories else None
    if wanted:
        unknown = sorted(wanted - set(cats))
        if unknown:
            raise UnprocessableContent(f"unknown category {', '.join(unknown)}",
                                       categories=unknown)
        for code in sorted(wanted):
            require_legal_basis(cats[code])
    return wanted


def _ranked_windows(p: _Pass, wanted: set[str] | None) -> tuple[list[Window], set[str]]:
    """The run's campaign windows to plan, ranked, and the categories left out for want of a
    legal basis (each listed once in the result's ``errors``)."""
    from service.forecasting import list_peaks  # pandas: only to plan

    cfg = p.cfg
    peaks = [pk for pk in list_peaks(session=p.session, run_id=p.run.id)
             if pk.signal in cfg.signals and pk.max_probability >= cfg.min_probability
             and pk.end >= p.today and (wanted is None or pk.category in wanted)]
    # merged over signals, then split into campaign windows of the category's length
    windows = [part for w in merge_peaks(peaks, gap_days=7)
               for part in split_window(w, int(p.cats[w.category].max_campaign_weeks or 6)
                                        if w.category in p.cats else 6)]
    no_basis: set[str] = set()
    plannable: list[Window] = []
    for w in windows:
        cat = p.cats.get(w.category)
        err = legal_basis_error(cat) if cat else f"unknown category '{w.category}'"
        if err or w.region not in p.regions:
            if err and w.category not in no_basis:
                no_basis.add(w.category)
                p.result.errors.append({"category": w.category, "detail": err})
            continue
        plannable.append(w)
    ranked = rank_windows(plannable)
    p.result.windows = len(ranked)
    return ranked, no_basis


def _campaigns_in_scope(session: Session, wanted: set[str] | None
                        ) -> tuple[list[Campaign], list[Campaign]]:
    """The campaigns this pass may replan (of the wanted categories, superseded ones aside)
    and those of other categories whose send dates it plans around."""
    scope = select(Campaign).where(Campaign.status != "superseded")
    if wanted:
        scope = scope.where(Campaign.category.in_(wanted))
    existing = list(session.scalars(scope.order_by(Campaign.created_at, Campaign.id)))
    others = [] if not wanted else list(session.scalars(select(Campaign).where(
        Campaign.status.in_(OCCUPYING | REPLANNABLE), Campaign.category.not_in(wanted))))
    return existing, others


def _retire_vanished(p: _Pass, existing: Sequence[Campaign], matched_ids: set[str],
                     no_basis: set[str]) -> None:
    """Campaigns whose window the run covers but no longer predicts: drafts are superseded,
    approved and scheduled ones flagged for review."""
    run, today = p.run, p.today
    covered_from = (run.train_until + dt.timedelta(days=1)) if run.train_until else today
    covered_to = covered_from + dt.timedelta(days=run.horizon_days - 1)
    for c in existing:
        if (c.id in matched_ids or c.origin != "planned" or c.category in no_basis
                or c.window_start < max(covered_from, today) or c.window_start > covered_to):
            continue
        if c.status in REPLANNABLE:
            transition(session=p.session, campaign=c, to="superseded", actor=p.actor,
                       reason="window_vanished", detail={"run_id": run.id})
            p.result.superseded.append(c.id)
        elif c.status in FLAGGABLE:
            c.review = {"reason": "window_vanished", "run_id": run.id, "proposal": None,
                        "detail": (f"最新预测（{run.id}）不再预计{fmt_date(c.window_start)}至"
                                   f"{fmt_date(c.window_end)}的多发期，请复核是否仍需发送")}
            transition(session=p.session, campaign=c, to="needs_review", actor=p.actor,
                       reason="window_vanished", detail={"run_id": run.id})
            p.result.flagged.append(c.id)


def _fixed(c: Campaign, today: dt.date, matched_ids: set[str]) -> bool:
    """Whether ``c``'s send date is one the pass plans around (it does not move it)."""
    if c.status in OCCUPYING:
        return True
    if c.status != "draft" or c.send_date < today:
        return False
    return (c.id not in matched_ids or c.origin != "planned"
            or "send_date" in (c.locked_fields or []))


def _plan_window(p: _Pass, w: Window, rank: int, camp: Campaign | None) -> None:
    """Plan one ranked window: a new campaign, a replanned draft, or a committed campaign
    reviewed against it (a manual campaign is left alone)."""
    lead = lead_days_for(p.cats[w.category], p.cfg)
    if camp is not None and camp.origin != "planned":
        p.result.untouched.append(camp.id)  # a manual campaign: the planner leaves it alone
    elif camp is not None and camp.status not in REPLANNABLE:
        _review_committed(p, camp, w, lead)
    elif camp is None:
        _create_planned(p, w, rank, lead)
    else:
        _replan_draft(p, camp, w, rank, lead)


def _review_committed(p: _Pass, camp: Campaign, w: Window, lead: int) -> None:
    """An approved or scheduled campaign whose window moved more than ``review_shift_days``
    needs review (with the new proposal); one under review gets the new proposal."""
    run_id = p.run.id
    if camp.status in FLAGGABLE:
        shift = max(abs((camp.window_start - w.start).days),
                    abs((camp.window_end - w.end).days))
        if shift > p.cfg.review_shift_days:
            camp.review = {
                "reason": "window_moved", "run_id": run_id,
                "detail": (f"最新预测的多发期为{fmt_date(w.start)}至{fmt_date(w.end)}，"
                           f"与已批准的{fmt_date(camp.window_start)}至"
                           f"{fmt_date(camp.window_end)}相差{shift}天，请复核"),
                "proposal": _proposal(w, lead, p.today, run_id)}
            transition(session=p.session, campaign=camp, to="needs_review", actor=p.actor,
                       reason="window_moved", detail={"run_id": run_id, "shift_days": shift})
            p.result.flagged.append(camp.id)
        else:
            camp.last_run_id = run_id
            p.result.unchanged.append(camp.id)
    elif camp.status == "needs_review":
        camp.review = {**(camp.review or {}), "run_id": run_id,
                       "proposal": _proposal(w, lead, p.today, run_id)}
        p.result.unchanged.append(camp.id)
    else:
        p.result.untouched.append(camp.id)


def _place(p: _Pass, w: Window, lead: int) -> Placement:
    cat = p.cats[w.category]
    return p.planner.place(window_start=w.start, window_end=w.end, lead_days=lead,
                           region=w.region, audience=audience_key(cat, w.region),
                           label=cat.name_zh, onset=w.expected_onset)


def _create_planned(p: _Pass, w: Window, rank: int, lead: int) -> None:
    """A new draft for a window no campaign matched (``dropped`` when no day is left)."""
    cat, reg, run_id = p.cats[w.category], p.regions[w.region], p.run.id
    evidence = _evidence(p.session, run_id, w)
    placement = _place(p, w, lead)
    camp = Campaign(category=w.category, region=w.region, origin="planned",
                    status="dropped" if placement.dropped else "draft",
                    planned_send_date=placement.ideal,
                    send_date=placement.send_date or placement.ideal,
                    constraint_notes=placement.notes, title=campaign_title(cat, reg),
                    public=True, notify_entities=True, created_by=p.actor)
    _apply_window(camp, w, lead_days=lead, run_id=run_id, rank=rank, evidence=evidence)
    camp.audience = audience_summary(p.session, camp)
    p.session.add(camp)
    p.session.flush()
    record(session=p.session, actor=p.actor, action="campaign.created",
           entity_type="campaign", entity_id=camp.id,
           detail={"origin": "planned", "status": camp.status, "run_id": run_id,
                   "window_start": w.start, "window_end": w.end,
                   "send_date": camp.send_date, "rank": rank,
                   "constraints": [n["constraint"] for n in placement.notes]})
    p.result.created.append(camp.id)
    if placement.dropped:
        p.result.dropped.append(camp.id)


def _replan_draft(p: _Pass, camp: Campaign, w: Window, rank: int, lead: int) -> None:
    """A draft (or dropped) campaign follows its window: new dates unless its send date is
    locked, a new title unless locked, audited when anything changed."""
    cat, reg, run_id = p.cats[w.category], p.regions[w.region], p.run.id
    evidence = _evidence(p.session, run_id, w)
    before = (camp.window_start, camp.window_end, camp.send_date, camp.status,
              camp.constraint_notes)
    _apply_window(camp, w, lead_days=lead, run_id=run_id, rank=rank, evidence=evidence)
    if "send_date" in (camp.locked_fields or []):
        new_status = camp.status
    else:
        placement = _place(p, w, lead)
        camp.planned_send_date = placement.ideal
        camp.send_date = placement.send_date or placement.ideal
        camp.constraint_notes = placement.notes
        new_status = "dropped" if placement.dropped else "draft"
    if "title" not in (camp.locked_fields or []):
        camp.title = campaign_title(cat, reg)
    camp.audience = audience_summary(p.session, camp)
    after = (camp.window_start, camp.window_end, camp.send_date, new_status,
             camp.constraint_notes)
    if new_status != camp.status:
        transition(session=p.session, campaign=camp, to=new_status, actor=p.actor,
                   reason="replanned", detail={"run_id": run_id})
    if before != after:
        camp.updated_at = utcnow()
        record(session=p.session, actor=p.actor, action="campaign.replanned",
               entity_type="campaign", entity_id=camp.id,
               detail={"run_id": run_id, "window_start": [before[0], after[0]],
                       "window_end": [before[1], after[1]],
                       "send_date": [before[2], after[2]]})
        p.result.updated.append(camp.id)
    else:
        p.result.unchanged.append(camp.id)
    if new_status == "dropped":
        p.result.dropped.append(camp.id)
