"""Planning maths without a database: merge peaks into windows, rank them, place send dates.

The service layer (:mod:`service.campaigns.service`) reads peaks and campaigns, calls these
functions and writes the outcome. Everything here is plain data in, plain data out, so each
constraint can be tested in microseconds.

Windows (DESIGN.md, "Spikes, peaks, decisions and campaigns"): the peaks of one (category,
region) that overlap or nearly touch are merged (:func:`merge_peaks`); a merged window longer
than the category's ``max_campaign_weeks`` becomes consecutive campaign windows
(:func:`split_window`), one campaign each.

Placement of one window::

    ideal = the window's expected onset − lead days (the onset comes from the sample paths
            and may lie before the window's start: an uncertain start is warned of early),
            or today when that is already past ("not_in_past")
    try ideal, ideal − 1, …, ideal − max_advance_days (never before today),
    then ideal + 1, …, window start − min_notice_days (window end for a late window)
    the first day that no constraint blocks is the send date;
    none → the campaign is dropped.

Constraints, in the order they are checked on a day: ``blackout`` (no sending on blackout
days, by default the official Spring Festival holiday), ``min_spacing`` (reminders to the same
audience — region and sector — at least N days apart), ``weekly_capacity`` (at most N
reminders per region per ISO week). Every constraint that blocked a day tried before the chosen
one is explained in a note ``{constraint, action: moved|dropped, reason, from, to}``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "PeakLike",
    "Window",
    "Constraints",
    "Booking",
    "Placement",
    "Planner",
    "merge_peaks",
    "split_window",
    "rank_windows",
    "ideal_send_date",
    "fmt_date",
    "CONSTRAINTS",
]

#: Names used in ``constraint_notes``.
CONSTRAINTS = ("not_in_past", "blackout", "min_spacing", "weekly_capacity")


class PeakLike(Protocol):
    """What :func:`merge_peaks` needs of a peak (``service.store.tables.Peak`` fits)."""

    id: int
    run_id: str
    series_id: str
    signal: str
    category: str
    region: str
    start: dt.date
    end: dt.date
    peak_week: dt.date
    expected_count: float
    expected_excess: float
    max_probability: float
    threshold: float
    onset: dt.date | None
    p_min: float | None


@dataclass(frozen=True)
class Window:
    """A predicted peak window of one (category, region), merged over signals.

    ``start`` is the Monday of the first week, ``end`` the last day (Sunday) of the last.
    ``peak_id`` / ``signal`` / ``series_id`` / ``threshold`` / ``peak_week`` /
    ``decision_threshold`` come from the primary peak (largest expected excess);
    ``expected_*`` and ``probability`` are the maxima; ``onset`` is the earliest expected
    onset of its peaks (their start when they have none). ``part`` of ``parts`` places a
    campaign window in a merged window that :func:`split_window` divided.
    """

    category: str
    region: str
    start: dt.date
    end: dt.date
    peak_week: dt.date
    signal: str
    series_id: str
    run_id: str
    peak_id: int | None
    expected_count: float
    expected_excess: float
    probability: float
    threshold: float
    peaks: tuple[Mapping[str, Any], ...] = ()
    onset: dt.date | None = None
    decision_threshold: float | None = None
    part: int = 1
    parts: int = 1

    @property
    def key(self) -> tuple[str, str, dt.date]:
        return (self.category, self.region, self.start)

    @property
    def expected_onset(self) -> dt.date:
        """The day reminders are timed from: the onset, never after the start."""
        return min(self.onset, self.start) if self.onset is not None else self.start


def _peak_dict(p: PeakLike) -> dict[str, Any]:
    return {"peak_id": p.id, "run_id": p.run_id, "series_id": p.series_id, "signal": p.signal,
            "start": p.start.isoformat(), "end": p.end.isoformat(),
            "peak_week": p.peak_week.isoformat(),
            "expected_count": round(float(p.expected_count), 3),
            "expected_excess": round(float(p.expected_excess), 3),
            "max_probability": round(float(p.max_probability), 4),
            "threshold": round(float(p.threshold), 3),
            "onset": p.onset.isoformat() if p.onset is not None else None,
            "p_min": round(float(p.p_min), 4) if p.p_min is not None else None}


def merge_peaks(peaks: Iterable[PeakLike], *, gap_days: int = 7) -> list[Window]:
    """One window per run of peaks of the same (category, region) that overlap or leave at
    most ``gap_days`` days between them (DESIGN's ±1 week): a complaints and a violations
    window of the same surge, or one season split by a single week below ``p_min``, become one
    campaign.
    """
    groups: dict[tuple[str, str], list[PeakLike]] = {}
    for p in peaks:
        groups.setdefault((p.category, p.region), []).append(p)
    out: list[Window] = []
    gap = dt.timedelta(days=gap_days)
    for (category, region), items in groups.items():
        items.sort(key=lambda p: (p.start, p.end, p.signal, p.id))
        cluster: list[PeakLike] = []
        end = dt.date.min
        for p in items:
            if cluster and p.start > end + gap + dt.timedelta(days=1):
                out.append(_window(category, region, cluster))
                cluster = []
            if not cluster:
                end = p.end
            cluster.append(p)
            end = max(end, p.end)
        if cluster:
            out.append(_window(category, region, cluster))
    return out


def _window(category: str, region: str, cluster: Sequence[PeakLike]) -> Window:
    primary = max(cluster, key=lambda p: (p.expected_excess, p.max_probability,
                                          p.signal == "complaints", -p.id))
    return Window(
        category=category, region=region,
        start=min(p.start for p in cluster), end=max(p.end for p in cluster),
        peak_week=primary.peak_week, signal=primary.signal, series_id=primary.series_id,
        run_id=primary.run_id, peak_id=primary.id,
        expected_count=max(float(p.expected_count) for p in cluster),
        expected_excess=max(float(p.expected_excess) for p in cluster),
        probability=max(float(p.max_probability) for p in cluster),
        threshold=float(primary.threshold),
        peaks=tuple(_peak_dict(p) for p in cluster),
        onset=min(p.onset or p.start for p in cluster),
        decision_threshold=None if primary.p_min is None else float(primary.p_min),
    )


def _parts(n_weeks: int, max_weeks: int) -> list[int]:
    """Sizes of ``n_weeks`` split into the fewest parts of at most ``max_weeks``, as equal as
    possible (9 weeks, max 6 → 5 + 4), as :func:`models.peaks.split_weeks` splits them."""
    k = 1 if max_weeks <= 0 else -(-n_weeks // max_weeks)
    return [n_weeks // k + (1 if i < n_weeks % k else 0) for i in range(k)]


def split_window(w: Window, max_weeks: int) -> list[Window]:
    """A merged window longer than ``max_weeks`` weeks as consecutive campaign windows.

    Each part keeps the peaks that overlap it (their maxima and primary peak, as
    :func:`merge_peaks`); the first part keeps the window's onset, a later part's onset is
    its own start (the season is already under way: DESIGN.md). A window that fits is
    returned as it is (``part = parts = 1``).
    """
    n_weeks = ((w.end - w.start).days + 1 + 6) // 7
    sizes = _parts(n_weeks, max_weeks)
    if len(sizes) == 1:
        return [w]
    out: list[Window] = []
    start = w.start
    for k, size in enumerate(sizes, start=1):
        end = min(start + dt.timedelta(weeks=size) - dt.timedelta(days=1), w.end)
        peaks = [p for p in w.peaks
                 if dt.date.fromisoformat(p["start"]) <= end
                 and dt.date.fromisoformat(p["end"]) >= start] or list(w.peaks)
        primary = max(peaks, key=lambda p: (p["expected_excess"], p["max_probability"],
                                            p["signal"] == "complaints", -(p["peak_id"] or 0)))
        peak_week = dt.date.fromisoformat(primary["peak_week"])
        if not start <= peak_week <= end:
            peak_week = start
        out.append(Window(
            category=w.category, region=w.region, start=start, end=end, peak_week=peak_week,
            signal=primary["signal"], series_id=primary["series_id"], run_id=w.run_id,
            peak_id=primary["peak_id"],
            expected_count=max(float(p["expected_count"]) for p in peaks),
            expected_excess=max(float(p["expected_excess"]) for p in peaks),
            probability=max(float(p["max_probability"]) for p in peaks),
            threshold=float(primary["threshold"]), peaks=tuple(peaks),
            onset=w.onset if k == 1 else start,
            decision_threshold=(float(primary["p_min"]) if primary.get("p_min") is not None
                                else w.decision_threshold),
            part=k, parts=len(sizes)))
        start = end + dt.timedelta(days=1)
    return out


def rank_windows(windows: Iterable[Window]) -> list[Window]:
    """Most important first: expected excess, then probability; ties by date, category, region."""
    return sorted(windows, key=lambda w: (-w.expected_excess, -w.probability, w.start,
                                          w.category, w.region))


def ideal_send_date(onset: dt.date, lead_days: int) -> dt.date:
    """``lead_days`` before the window's expected onset (its start when it has none)."""
    return onset - dt.timedelta(days=lead_days)


def fmt_date(d: dt.date) -> str:
    """``2025年1月6日``."""
    return f"{d.year}年{d.month}月{d.day}日"


@dataclass(frozen=True)
class Constraints:
    """The configured constraints (``Settings.campaigns``) with blackout days resolved.

    ``blackout`` maps each blackout day to a label used in explanations (e.g. ``春节假期``).
    """

    min_spacing_days: int = 7
    weekly_capacity: int | None = 5
    blackout: Mapping[dt.date, str] = field(default_factory=dict)
    max_advance_days: int = 14
    min_notice_days: int = 1


@dataclass(frozen=True)
class Booking:
    """A send date already taken (by a placed or an approved campaign)."""

    send_date: dt.date
    region: str
    audience: str
    label: str = ""


@dataclass
class Placement:
    """Where a window's reminder landed, and why."""

    ideal: dt.date
    send_date: dt.date | None
    notes: list[dict[str, Any]]

    @property
    def dropped(self) -> bool:
        return self.send_date is None


def _iso_week(d: dt.date) -> tuple[int, int]:
    y, w, _ = d.isocalendar()
    return (y, w)


class Planner:
    """Places send dates one window at a time (highest rank first), remembering bookings.

    Parameters
    ----------
    constraints : the constraints to respect.
    today : the first day a reminder may go out.
    fixed : bookings that cannot move (approved, scheduled, sent campaigns; locked drafts).
    """

    def __init__(self, constraints: Constraints, today: dt.date,
                 fixed: Iterable[Booking] = ()) -> None:
        self.constraints = constraints
        self.today = today
        self.bookings: list[Booking] = list(fixed)
        self._per_week: Counter[tuple[str, tuple[int, int]]] = Counter(
            (b.region, _iso_week(b.send_date)) for b in self.bookings)

    def book(self, booking: Booking) -> None:
        self.bookings.append(booking)
        self._per_week[(booking.region, _iso_week(booking.send_date))] += 1

    def blocked_by(self, day: dt.date, *, region: str, audience: str) -> tuple[str, str] | None:
        """The first constraint that forbids sending on ``day``, with the reason (Chinese)."""
        c = self.constraints
        if day in c.blackout:
            return ("blackout", f"{fmt_date(day)}处于{c.blackout[day]}，为禁发日")
        if c.min_spacing_days > 0:
            for b in self.bookings:
                if b.audience == audience and abs((b.send_date - day).days) < c.min_spacing_days:
                    what = f"（{b.label}）" if b.label else ""
                    return ("min_spacing",
                            f"同一受众已在{fmt_date(b.send_date)}收到提示{what}，"
                            f"两次提示至少间隔{c.min_spacing_days}天")
        if c.weekly_capacity is not None:
            used = self._per_week[(region, _iso_week(day))]
            if used >= c.weekly_capacity:
                y, w = _iso_week(day)
                return ("weekly_capacity",
                        f"该地区{y}年第{w}周已安排{used}条提示，达到每周上限{c.weekly_capacity}条")
        return None

    def place(self, *, window_start: dt.date, window_end: dt.date, lead_days: int,
              region: str, audience: str, label: str = "", book: bool = True,
              onset: dt.date | None = None) -> Placement:
        """Choose the send date of one window and (by default) book it: ``lead_days``
        before its expected ``onset`` (default: its start; an onset after the start counts
        as the start)."""
        c = self.constraints
        computed = ideal_send_date(min(onset or window_start, window_start), lead_days)
        notes: list[dict[str, Any]] = []
        ideal = computed
        if computed < self.today:
            ideal = self.today
            short = (window_start - self.today).days
            notes.append({
                "constraint": "not_in_past", "action": "moved",
                "from": computed.isoformat(), "to": self.today.isoformat(),
                "reason": (f"按提前{lead_days}天计算的发送日期{fmt_date(computed)}已过，"
                           f"改为尽快发送；距预计多发期开始仅{max(short, 0)}天"
                           + ("（多发期已开始）" if short < 0 else "")),
            })
        earliest = max(self.today, ideal - dt.timedelta(days=c.max_advance_days))
        latest = window_start - dt.timedelta(days=c.min_notice_days)
        if latest < ideal:  # a late window: allow sending up to its end
            latest = max(ideal, window_end)
        candidates = [ideal - dt.timedelta(days=k) for k in range((ideal - earliest).days + 1)]
        candidates += [ideal + dt.timedelta(days=k) for k in range(1, (latest - ideal).days + 1)]
        blockers: dict[str, str] = {}
        chosen: dt.date | None = None
        for day in candidates:
            hit = self.blocked_by(day, region=region, audience=audience)
            if hit is None:
                chosen = day
                break
            blockers.setdefault(hit[0], hit[1])
        if chosen is None:
            for name, reason in blockers.items():
                notes.append({"constraint": name, "action": "dropped", "from": ideal.isoformat(),
                              "to": None,
                              "reason": (f"{reason}；在{fmt_date(earliest)}至{fmt_date(latest)}"
                                         "之间找不到可发送的日期，本次不发送")})
            return Placement(ideal=ideal, send_date=None, notes=notes)
        if chosen != ideal:
            direction = "提前" if chosen < ideal else "推迟"
            for name, reason in blockers.items():
                notes.append({"constraint": name, "action": "moved", "from": ideal.isoformat(),
                              "to": chosen.isoformat(),
                              "reason": f"{reason}；发送日期{direction}至{fmt_date(chosen)}"})
        if book:
            self.book(Booking(chosen, region, audience, label))
        return Placement(ideal=ideal, send_date=chosen, notes=notes)
