"""Planning: send dates, ranking, each constraint, the legal-basis rule, replanning."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.series import SeriesId
from service.audit import list_entries
from service.campaigns.planning import (
    Booking,
    Constraints,
    Planner,
    merge_peaks,
    rank_windows,
    split_window,
)
from service.campaigns.service import (
    approve_campaign,
    cancel_campaign,
    create_campaign,
    plan_campaigns,
    transition,
)
from service.campaigns.tables import Campaign
from service.config import CampaignSettings, Settings
from service.errors import NotFound, UnprocessableContent
from tests.campaigns.conftest import TODAY, P, add_run

D = dt.date


def _with(settings: Settings, **campaigns: object) -> Settings:
    cfg = CampaignSettings(**{**settings.campaigns.model_dump(), **campaigns})
    return settings.model_copy(update={"campaigns": cfg})


def _by_category(session: Session) -> dict[str, Campaign]:
    return {c.category: c for c in session.scalars(select(Campaign))}


# ---------------------------------------------------------------- pure planning maths


def test_planner_ideal_date_without_constraints() -> None:
    p = Planner(Constraints(blackout={}), TODAY)
    got = p.place(window_start=D(2025, 5, 5), window_end=D(2025, 5, 18), lead_days=21,
                  region="r", audience="a")
    assert got.send_date == D(2025, 4, 14) and got.notes == []


def test_planner_never_sends_in_the_past_and_says_so() -> None:
    p = Planner(Constraints(blackout={}), TODAY)
    got = p.place(window_start=D(2025, 1, 6), window_end=D(2025, 1, 19), lead_days=21,
                  region="r", audience="a")
    assert got.send_date == TODAY
    [note] = got.notes
    assert note["constraint"] == "not_in_past" and note["action"] == "moved"
    assert note["from"] == "2024-12-16" and note["to"] == "2025-01-01"
    assert "尽快发送" in note["reason"]


def test_planner_blackout_moves_earlier() -> None:
    blackout = {D(2025, 2, 3): "春节假期", D(2025, 2, 2): "春节假期"}
    p = Planner(Constraints(blackout=blackout), TODAY)
    got = p.place(window_start=D(2025, 2, 17), window_end=D(2025, 3, 2), lead_days=14,
                  region="r", audience="a")
    assert got.send_date == D(2025, 2, 1)
    [note] = got.notes
    assert note["constraint"] == "blackout" and note["action"] == "moved"
    assert "春节假期" in note["reason"] and note["to"] == "2025-02-01"


def test_planner_spacing_applies_to_the_same_audience_only() -> None:
    p = Planner(Constraints(min_spacing_days=7, weekly_capacity=None, blackout={}), TODAY,
                fixed=[Booking(D(2025, 4, 14), "r", "r|sector", "烟花")])
    same = p.place(window_start=D(2025, 4, 28), window_end=D(2025, 5, 4), lead_days=14,
                   region="r", audience="r|sector", book=False)
    assert same.send_date == D(2025, 4, 7)
    assert same.notes[0]["constraint"] == "min_spacing" and "烟花" in same.notes[0]["reason"]
    other = p.place(window_start=D(2025, 4, 28), window_end=D(2025, 5, 4), lead_days=14,
                    region="r", audience="r|other", book=False)
    assert other.send_date == D(2025, 4, 14) and other.notes == []


def test_planner_weekly_capacity_per_region() -> None:
    p = Planner(Constraints(min_spacing_days=0, weekly_capacity=2, blackout={}), TODAY)
    dates = [p.place(window_start=D(2025, 5, 5), window_end=D(2025, 5, 11), lead_days=14,
                     region="r", audience=f"a{i}").send_date for i in range(3)]
    assert dates[:2] == [D(2025, 4, 21), D(2025, 4, 21)]
    assert dates[2] == D(2025, 4, 20)  # the Sunday of the week before
    elsewhere = p.place(window_start=D(2025, 5, 5), window_end=D(2025, 5, 11), lead_days=14,
                        region="other", audience="a9")
    assert elsewhere.send_date == D(2025, 4, 21)
    assert p.bookings[-2].send_date == D(2025, 4, 20)


def test_planner_drops_when_no_day_is_left() -> None:
    c = Constraints(min_spacing_days=0, weekly_capacity=1, blackout={}, max_advance_days=0,
                    min_notice_days=14)
    p = Planner(c, TODAY, fixed=[Booking(D(2025, 4, 21), "r", "x")])
    got = p.place(window_start=D(2025, 5, 5), window_end=D(2025, 5, 11), lead_days=14,
                  region="r", audience="a")
    assert got.dropped and got.send_date is None
    assert [(n["constraint"], n["action"]) for n in got.notes] == [("weekly_capacity",
                                                                     "dropped")]
    assert "本次不发送" in got.notes[0]["reason"]


class _Peak:
    def __init__(self, i: int, signal: str, start: dt.date, weeks: int, excess: float,
                 prob: float = 0.7, category: str = "c", region: str = "r",
                 onset: dt.date | None = None, p_min: float | None = 0.3) -> None:
        self.id, self.run_id, self.signal = i, "run", signal
        self.series_id = str(SeriesId(signal, category, region))
        self.category, self.region = category, region
        self.start, self.end = start, start + dt.timedelta(days=7 * weeks - 1)
        self.peak_week, self.expected_count = start, 40.0 + excess
        self.expected_excess, self.max_probability, self.threshold = excess, prob, 30.0
        self.onset, self.p_min = onset, p_min


def test_merge_peaks_joins_signals_of_one_surge_and_ranks() -> None:
    peaks = [_Peak(1, "complaints", D(2025, 3, 3), 2, 5.0),
             _Peak(2, "violations", D(2025, 3, 10), 2, 9.0, prob=0.6),
             _Peak(3, "complaints", D(2025, 6, 2), 1, 20.0),
             _Peak(4, "complaints", D(2025, 6, 2), 1, 20.0, prob=0.9, region="q")]
    windows = merge_peaks(peaks)
    assert len(windows) == 3
    merged = next(w for w in windows if w.start == D(2025, 3, 3))
    assert merged.end == D(2025, 3, 23) and merged.peak_id == 2 and merged.signal == "violations"
    assert merged.expected_excess == 9.0 and merged.probability == 0.7
    assert {p["signal"] for p in merged.peaks} == {"complaints", "violations"}
    ranked = rank_windows(windows)
    assert [(w.region, w.expected_excess) for w in ranked] == [("q", 20.0), ("r", 20.0),
                                                               ("r", 9.0)]


def test_a_long_merged_window_becomes_consecutive_campaign_windows() -> None:
    # complaints 2025-03-03 … 04-13 (6 weeks) and violations 04-07 … 05-04 (4 weeks) of one
    # surge: one merged window of 9 weeks, longer than max 4 -> 3 + 3 + 3 weeks
    peaks = [_Peak(1, "complaints", D(2025, 3, 3), 6, 5.0, onset=D(2025, 2, 17)),
             _Peak(2, "violations", D(2025, 4, 7), 4, 9.0, prob=0.6, p_min=0.35)]
    [merged] = merge_peaks(peaks)
    assert (merged.start, merged.end) == (D(2025, 3, 3), D(2025, 5, 4))
    assert merged.onset == D(2025, 2, 17) and merged.decision_threshold == 0.35
    parts = split_window(merged, 4)
    assert [(w.start, w.end) for w in parts] == [
        (D(2025, 3, 3), D(2025, 3, 23)), (D(2025, 3, 24), D(2025, 4, 13)),
        (D(2025, 4, 14), D(2025, 5, 4))]
    assert [(w.part, w.parts) for w in parts] == [(1, 3), (2, 3), (3, 3)]
    # the first keeps the onset of the sample paths; later ones start on their own start
    assert [w.expected_onset for w in parts] == [D(2025, 2, 17), D(2025, 3, 24),
                                                  D(2025, 4, 14)]
    # each keeps the peaks it overlaps: the violations peak from the second part on
    assert [{p["signal"] for p in w.peaks} for w in parts] == [
        {"complaints"}, {"complaints", "violations"}, {"violations"}]
    assert [w.signal for w in parts] == ["complaints", "violations", "violations"]
    assert [w.decision_threshold for w in parts] == [0.3, 0.35, 0.35]
    assert len({w.key for w in parts}) == 3
    # as equal as possible, like models.peaks.split_weeks: 9 weeks, max 6 -> 5 + 4
    assert [((w.end - w.start).days + 1) // 7 for w in split_window(merged, 6)] == [5, 4]
    assert split_window(merged, 9) == [merged] and merged.parts == 1


def test_send_date_follows_the_expected_onset() -> None:
    p = Planner(Constraints(blackout={}), TODAY)
    start, end = D(2025, 5, 5), D(2025, 5, 18)
    plain = p.place(window_start=start, window_end=end, lead_days=14, region="r",
                    audience="a", book=False)
    early = p.place(window_start=start, window_end=end, lead_days=14, region="r",
                    audience="a", book=False, onset=D(2025, 4, 21))
    assert plain.send_date == D(2025, 4, 21)
    # an uncertain start (onset two weeks before the window) is warned of two weeks earlier
    assert early.send_date == D(2025, 4, 7) and early.ideal == D(2025, 4, 7)
    # an onset after the start never delays the reminder
    late = p.place(window_start=start, window_end=end, lead_days=14, region="r",
                   audience="a", book=False, onset=D(2025, 5, 12))
    assert late.send_date == D(2025, 4, 21)
    # and never into the past
    past = p.place(window_start=D(2025, 1, 20), window_end=D(2025, 2, 2), lead_days=14,
                   region="r", audience="a", book=False, onset=D(2025, 1, 6))
    assert past.send_date == TODAY and past.notes[0]["from"] == "2024-12-23"


# ---------------------------------------------------------------- planning on the database


def test_plan_sends_before_the_onset_and_splits_long_windows(session: Session,
                                                             settings: Settings) -> None:
    # fireworks: max_campaign_weeks 4 and 21 lead days (tests/fixtures/categories.yaml)
    run = add_run(session, [
        P("fireworks", "150100", D(2025, 5, 5), weeks=6, excess=30, onset=D(2025, 4, 21),
          p_min=0.25),
        P("food_safety", "150200", D(2025, 6, 2), weeks=3, excess=20, onset=D(2025, 5, 26),
          p_min=0.2)], train_until=D(2024, 12, 31))
    result = plan_campaigns(session=session, settings=settings, today=TODAY)
    assert result.run_id == run and result.windows == 3
    rows = sorted(session.scalars(select(Campaign)), key=lambda c: (c.category,
                                                                     c.window_start))
    fw1, fw2, food = rows
    assert (fw1.window_start, fw1.window_end) == (D(2025, 5, 5), D(2025, 5, 25))
    assert (fw2.window_start, fw2.window_end) == (D(2025, 5, 26), D(2025, 6, 15))
    assert [(c.part, c.parts) for c in rows] == [(1, 2), (2, 2), (1, 1)]
    assert fw1.onset == D(2025, 4, 21) and fw1.send_date == D(2025, 3, 31)  # onset − 21
    assert fw2.onset == D(2025, 5, 26) and fw2.send_date == D(2025, 5, 5)
    assert food.onset == D(2025, 5, 26) and food.send_date == D(2025, 5, 12)  # onset − 14
    assert {c.decision_threshold for c in rows} == {0.25, 0.2}
    assert fw1.planned_send_date == fw1.send_date and fw1.constraint_notes == []


def test_plan_one_campaign_per_window_ranked_with_evidence(session: Session,
                                                           settings: Settings) -> None:
    run = add_run(session, [P("fireworks", "150100", D(2025, 5, 5), excess=30),
                            P("food_safety", "150200", D(2025, 6, 2), excess=50),
                            P("fireworks", "150100", D(2025, 9, 1), excess=5, prob=0.45)],
                  train_until=D(2024, 12, 31))
    settings = _with(settings, min_probability=0.5)  # the 0.45 window is left out
    result = plan_campaigns(session=session, settings=settings, today=TODAY)
    assert result.run_id == run and result.windows == 2 and len(result.created) == 2
    rows = _by_category(session)
    fw, food = rows["fireworks"], rows["food_safety"]
    assert fw.send_date == D(2025, 4, 14) and fw.lead_days == 21   # 21 lead days
    assert food.send_date == D(2025, 5, 19) and food.lead_days == 14  # default lead days
    assert (food.rank, fw.rank) == (1, 2)  # more expected excess first
    assert fw.status == "draft" and fw.peak_id is not None and fw.run_id == run
    assert fw.evidence[0]["series_id"] == "complaints|fireworks|150100"
    assert [w["week"] for w in fw.evidence[0]["weeks"]] == ["2025-05-05", "2025-05-12"]
    assert fw.audience == {"public": True, "entities": 3, "recipients": 0}
    again = plan_campaigns(session=session, settings=settings, today=TODAY)
    assert again.created == [] and sorted(again.unchanged) == sorted(result.created)
    assert session.scalar(select(func.count()).select_from(Campaign)) == 2


def test_every_window_of_the_run_is_planned_by_default(session: Session,
                                                       settings: Settings) -> None:
    """A run made with a lower p_min (FOREWARN_FORECAST__P_MIN) stores less likely windows;
    by default (campaigns.min_probability 0) each of them gets a campaign (DESIGN.md)."""
    assert settings.campaigns.min_probability == 0.0
    add_run(session, [P("fireworks", "150100", D(2025, 5, 5), prob=0.8),
                      P("fireworks", "150100", D(2025, 9, 1), prob=0.25)],
            train_until=D(2024, 12, 31))
    result = plan_campaigns(session=session, settings=settings, today=TODAY)
    assert result.windows == 2 and len(result.created) == 2
    sends = sorted(c.send_date for c in session.scalars(select(Campaign)))
    assert sends == [D(2025, 4, 14), D(2025, 8, 11)]


def test_plan_without_run_is_not_found(session: Session, settings: Settings) -> None:
    with pytest.raises(NotFound, match="no finished forecast run"):
        plan_campaigns(session=session, settings=settings, today=TODAY)


def test_category_without_legal_basis_is_not_planned(session: Session,
                                                     settings: Settings) -> None:
    add_run(session, [P("noise", "150100", D(2025, 5, 5), excess=99),
                      P("fireworks", "150100", D(2025, 5, 5))], train_until=D(2024, 12, 31))
    result = plan_campaigns(session=session, settings=settings, today=TODAY)
    assert [e["category"] for e in result.errors] == ["noise"]
    assert "noise" in result.errors[0]["detail"] and "legal basis" in result.errors[0]["detail"]
    assert set(_by_category(session)) == {"fireworks"}
    with pytest.raises(UnprocessableContent, match="'noise'"):
        plan_campaigns(session=session, settings=settings, today=TODAY, categories=["noise"])
    with pytest.raises(UnprocessableContent, match="'noise'") as exc:
        create_campaign(session=session, settings=settings, actor="t", category="noise",
                        region="150100", window_start=D(2025, 5, 5),
                        window_end=D(2025, 5, 18), today=TODAY)
    assert exc.value.status == 422 and exc.value.extensions["category"] == "noise"


def test_spring_festival_blackout_on_the_database(session: Session,
                                                  settings: Settings) -> None:
    # fireworks: 21 lead days; window 2025-02-24 → ideal 2025-02-03, inside the holiday
    add_run(session, [P("fireworks", "150100", D(2025, 2, 24))], train_until=D(2024, 12, 31))
    plan_campaigns(session=session, settings=settings, today=TODAY)
    c = _by_category(session)["fireworks"]
    assert c.planned_send_date == D(2025, 2, 3)
    assert c.send_date == D(2025, 1, 27)  # last day before the 2025-01-28 … 02-04 break
    assert [n["constraint"] for n in c.constraint_notes] == ["blackout"]
    assert "春节假期" in c.constraint_notes[0]["reason"]


def test_configured_blackout_dates_and_no_blackout(session: Session,
                                                   settings: Settings) -> None:
    add_run(session, [P("fireworks", "150100", D(2025, 5, 5))], train_until=D(2024, 12, 31))
    off = _with(settings, blackout_holiday_blocks=[], blackout_dates=[D(2025, 4, 14)])
    plan_campaigns(session=session, settings=off, today=TODAY)
    c = _by_category(session)["fireworks"]
    assert c.send_date == D(2025, 4, 13)
    assert c.constraint_notes[0]["constraint"] == "blackout"


def test_spacing_between_reminders_to_the_same_audience(session: Session,
                                                        settings: Settings) -> None:
    # fireworks and fire_hazard share the sector 公共安全 in 150100: same audience
    add_run(session, [P("fireworks", "150100", D(2025, 5, 5), excess=30),
                      P("fire_hazard", "150100", D(2025, 4, 28), excess=10),
                      P("food_safety", "150100", D(2025, 4, 28), excess=5)],
            train_until=D(2024, 12, 31))
    plan_campaigns(session=session, settings=settings, today=TODAY)
    rows = _by_category(session)
    assert rows["fireworks"].send_date == D(2025, 4, 14)
    assert rows["fire_hazard"].send_date == D(2025, 4, 7)
    assert rows["fire_hazard"].constraint_notes[0]["constraint"] == "min_spacing"
    assert rows["food_safety"].send_date == D(2025, 4, 14)  # another sector: not affected
    assert rows["food_safety"].constraint_notes == []
    zero = _with(settings, min_spacing_days=0)
    plan_campaigns(session=session, settings=zero, today=TODAY)
    session.expire_all()
    assert _by_category(session)["fire_hazard"].send_date == D(2025, 4, 14)


def test_weekly_capacity_per_region(session: Session, settings: Settings) -> None:
    add_run(session, [P("fireworks", "150100", D(2025, 5, 12), excess=30),
                      P("food_safety", "150100", D(2025, 5, 5), excess=20),
                      P("gas_safety", "150100", D(2025, 5, 5), excess=10),
                      P("gas_safety", "150200", D(2025, 5, 5), excess=10)],
            train_until=D(2024, 12, 31))
    one = _with(settings, weekly_capacity_per_region=2, max_advance_days=0)
    result = plan_campaigns(session=session, settings=one, today=TODAY)
    rows = {(c.category, c.region): c for c in session.scalars(select(Campaign))}
    assert rows[("fireworks", "150100")].send_date == D(2025, 4, 21)
    assert rows[("food_safety", "150100")].send_date == D(2025, 4, 21)
    gas = rows[("gas_safety", "150100")]
    assert gas.send_date == D(2025, 4, 28)  # moved later, still before the window
    assert gas.constraint_notes[0]["constraint"] == "weekly_capacity"
    assert gas.constraint_notes[0]["action"] == "moved"
    assert rows[("gas_safety", "150200")].send_date == D(2025, 4, 21)
    assert result.dropped == []


def test_constraint_that_drops_a_campaign_says_so(session: Session,
                                                  settings: Settings) -> None:
    add_run(session, [P("fireworks", "150100", D(2025, 5, 5), excess=30),
                      P("food_safety", "150100", D(2025, 4, 28), excess=10)],
            train_until=D(2024, 12, 31))
    tight = _with(settings, weekly_capacity_per_region=1, max_advance_days=0,
                  min_notice_days=14)
    result = plan_campaigns(session=session, settings=tight, today=TODAY)
    food = _by_category(session)["food_safety"]
    assert food.status == "dropped" and result.dropped == [food.id]
    assert food.constraint_notes[0]["constraint"] == "weekly_capacity"
    assert food.constraint_notes[0]["action"] == "dropped"
    # capacity freed: replanning revives the dropped campaign in place
    roomy = _with(settings, weekly_capacity_per_region=5)
    again = plan_campaigns(session=session, settings=roomy, today=TODAY)
    session.refresh(food)
    assert food.status == "draft" and food.id in again.updated
    assert food.send_date == D(2025, 4, 14) and food.constraint_notes == []


def test_replanning_updates_drafts_and_flags_approved(session: Session,
                                                      settings: Settings) -> None:
    add_run(session, [P("fireworks", "150100", D(2025, 5, 5), excess=30),
                      P("food_safety", "150200", D(2025, 6, 2), excess=20),
                      P("gas_safety", "152900", D(2025, 7, 7), excess=10),
                      P("fire_hazard", "150200", D(2025, 8, 4), excess=8),
                      P("food_safety", "150100", D(2025, 9, 1), excess=4)],
            train_until=D(2024, 12, 31))
    plan_campaigns(session=session, settings=settings, today=TODAY)
    first = {(c.category, c.region): c.id for c in session.scalars(select(Campaign))}
    approve_campaign(session=session, settings=settings, actor="key:aa",
                     campaign_id=first[("food_safety", "150200")], today=TODAY)
    approve_campaign(session=session, settings=settings, actor="key:aa",
                     campaign_id=first[("fire_hazard", "150200")], today=TODAY)
    approve_campaign(session=session, settings=settings, actor="key:aa",
                     campaign_id=first[("food_safety", "150100")], today=TODAY)
    cancel_campaign(session=session, actor="key:aa", reason="not needed",
                    campaign_id=first[("gas_safety", "152900")])
    # the next run: fireworks one week later (draft), food_safety/150200 three weeks later
    # (approved), gas_safety moved (cancelled), fire_hazard 5 days off (approved, small move),
    # food_safety/150100 gone (approved) and a new window
    run2 = add_run(session, [P("fireworks", "150100", D(2025, 5, 12), excess=31),
                             P("food_safety", "150200", D(2025, 6, 23), excess=25),
                             P("gas_safety", "152900", D(2025, 7, 14), excess=10),
                             P("fire_hazard", "150200", D(2025, 8, 4), weeks=3, excess=8),
                             P("fireworks", "150200", D(2025, 10, 6), excess=3)],
                   train_until=D(2025, 1, 31))
    result = plan_campaigns(session=session, settings=settings, today=D(2025, 2, 1))
    session.expire_all()
    rows = {c.id: c for c in session.scalars(select(Campaign))}
    assert len(rows) == 6  # one new; nothing duplicated, nothing deleted
    fw = rows[first[("fireworks", "150100")]]
    assert fw.status == "draft" and fw.window_start == D(2025, 5, 12)
    assert fw.send_date == D(2025, 4, 21) and fw.run_id == run2 and fw.id in result.updated
    moved = rows[first[("food_safety", "150200")]]
    assert moved.status == "needs_review" and moved.id in result.flagged
    assert moved.window_start == D(2025, 6, 2)  # not silently changed
    assert moved.review["reason"] == "window_moved"
    assert moved.review["proposal"]["window_start"] == "2025-06-23"
    small = rows[first[("fire_hazard", "150200")]]
    assert small.status == "approved" and small.window_end == D(2025, 8, 17)
    assert small.last_run_id == run2
    gone = rows[first[("food_safety", "150100")]]
    assert gone.status == "needs_review" and gone.review["reason"] == "window_vanished"
    cancelled = rows[first[("gas_safety", "152900")]]
    assert cancelled.status == "cancelled" and cancelled.window_start == D(2025, 7, 7)
    assert cancelled.id in result.untouched
    [new] = result.created
    assert rows[new].category == "fireworks" and rows[new].region == "150200"
    # the reviewer approves the flagged campaign: the proposal is adopted, on the record
    approve_campaign(session=session, settings=settings, actor="key:bb",
                     campaign_id=moved.id, today=D(2025, 2, 1))
    session.refresh(moved)
    assert moved.status == "approved" and moved.window_start == D(2025, 6, 23)
    assert moved.send_date == D(2025, 6, 9) and moved.approved_by == "key:bb"
    actions = [e.action for e in list_entries(session=session, entity_type="campaign",
                                              entity_id=moved.id)]
    assert actions == ["campaign.created", "campaign.approved", "campaign.needs_review",
                       "campaign.approved"]


def test_vanished_draft_is_superseded_and_sent_untouched(session: Session,
                                                         settings: Settings) -> None:
    add_run(session, [P("fireworks", "150100", D(2025, 5, 5)),
                      P("food_safety", "150200", D(2025, 6, 2))], train_until=D(2024, 12, 31))
    plan_campaigns(session=session, settings=settings, today=TODAY)
    rows = _by_category(session)
    sent = rows["food_safety"]
    approve_campaign(session=session, settings=settings, actor="t", campaign_id=sent.id,
                     today=TODAY)
    for to in ("scheduled", "dispatching", "sent"):
        transition(session=session, campaign=sent, to=to, actor="scheduler")
    session.commit()
    add_run(session, [], train_until=D(2025, 1, 15))
    result = plan_campaigns(session=session, settings=settings, today=D(2025, 1, 16))
    session.expire_all()
    assert result.superseded == [rows["fireworks"].id]
    assert session.get(Campaign, rows["fireworks"].id).status == "superseded"  # type: ignore[union-attr]
    assert session.get(Campaign, sent.id).status == "sent"  # type: ignore[union-attr]
    assert result.flagged == []
