"""Decision thresholds of a forecast run (DESIGN.md "Spikes, peaks, decisions and campaigns").

Every run decides, per category, the weekly ``P(spike)`` at which a week belongs to a warning
window:

- ``FOREWARN_FORECAST__P_MIN`` set: that constant for every category (``basis = "pinned"``);
- otherwise learned (:func:`models.decision.learn_thresholds`) from a rolling-origin backtest
  that runs beside the fits on the same workers (:class:`models.runner.BacktestSpec`). Its
  origins come from :func:`models.decision.decision_origins` on the frame handed to the
  runner, which :func:`service.forecasting.execute_run` cuts at the run's ``train_until``: the
  choice never sees a record after the cut-off. The backtest horizon is the run's horizon in
  weeks, clamped to [26, 52].

Backtests are reused: the result of one series at one origin depends only on the series'
counts up to the end of that origin's horizon, the forecaster parameters, the backtest
definitions and the code of ``models``; it is stored in ``decision_backtests`` under a
fingerprint of all of these, and a later run with the same fingerprint reads it instead of
fitting again. Origins sit on a grid (``decision_anchor_weeks``), so the weekly refits of a
quarter share them and only the first of them pays for the backtest.

The decision document stored on the run (``forecast_runs.decisions``) holds, per category, the
threshold, its objective and basis, β or the cost/loss ratio, the origins and the backtest
scores at the threshold; :func:`public_decision` turns one into the API's ``decision`` object
with a plain-words explanation (:func:`models.decision.describe`, English or Chinese).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from models.decision import (
    CategoryRule,
    decision_origins,
    describe,
    learn_thresholds,
    pinned_thresholds,
    series_open_factors,
    series_thresholds,
)
from models.hysteresis import open_probability
from models.peaks import DEFAULT_P_MIN
from models.series import horizon_days
from service.store.series import parse_series_id
from service.store.tables import Category, DecisionBacktest, utcnow

if TYPE_CHECKING:  # the runner imports Prophet: only where a run executes
    from models.runner import BacktestSpec, RunResult

__all__ = ["MIN_BACKTEST_WEEKS", "MAX_BACKTEST_WEEKS", "DECISION_FIELDS_PUBLIC",
           "backtest_horizon_weeks", "rule_of", "category_rules", "Decider",
           "public_decision", "public_decisions", "summary_lines"]

MIN_BACKTEST_WEEKS, MAX_BACKTEST_WEEKS = 26, 52
#: Keys of one category's decision in the stored document and the API.
DECISION_FIELDS_PUBLIC = ("category", "threshold", "objective", "basis", "beta", "cost_loss",
                          "max_campaign_weeks", "origins", "n_series", "n_windows",
                          "n_campaigns", "recall", "precision", "f1", "f_beta", "in_time",
                          "open_factor")
_BT_WEEKLY = ["cutoff", "unique_id", "week", "expected", "p_spike", "threshold", "y", "spike"]
_BT_ACTUAL = ["cutoff", "unique_id", "start", "end", "eligible"]


def backtest_horizon_weeks(horizon_days: int) -> int:
    """The decision backtest's horizon: the run's horizon in whole weeks, within [26, 52]."""
    return int(min(max(-(-int(horizon_days) // 7), MIN_BACKTEST_WEEKS), MAX_BACKTEST_WEEKS))


def rule_of(cat: Category) -> CategoryRule:
    """The :class:`models.decision.CategoryRule` of a stored category."""
    return CategoryRule(
        beta=float(cat.beta if cat.beta is not None else 1.0),
        reminder_cost=None if cat.reminder_cost is None else float(cat.reminder_cost),
        miss_cost=None if cat.miss_cost is None else float(cat.miss_cost),
        max_campaign_weeks=int(cat.max_campaign_weeks or 6))


def category_rules(session: Session) -> dict[str, CategoryRule]:
    return {c.code: rule_of(c) for c in session.scalars(select(Category))}


@functools.cache
def _code_digest() -> str:
    """Hash of the ``models`` package's source and Prophet's version: stored backtests of an
    older forecaster are never reused."""
    import prophet

    import models

    h = hashlib.sha256(str(getattr(prophet, "__version__", "")).encode())
    root = Path(models.__file__).resolve().parent
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".yaml", ".json"):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _fingerprints(frame: pd.DataFrame, spec: BacktestSpec, params: Mapping[str, Any]
                  ) -> dict[tuple[str, pd.Timestamp], str]:
    """One fingerprint per (series, origin): the series' rows up to the end of the origin's
    horizon, the forecaster parameters, the backtest definitions and the models' code."""
    base = json.dumps({"params": dict(params), "horizon_weeks": spec.horizon_weeks,
                       "lead_days": spec.lead_days, "min_spike_count": spec.min_spike_count,
                       "code": _code_digest()}, sort_keys=True, default=str).encode()
    f = frame.sort_values(["unique_id", "ds"], kind="stable")
    ends = {o: (o + pd.Timedelta(days=horizon_days(o, spec.horizon_weeks))).to_datetime64()
            .astype("datetime64[D]").astype(np.int64) for o in spec.origins}
    out: dict[tuple[str, pd.Timestamp], str] = {}
    for uid, g in f.groupby("unique_id", sort=True):
        days = g["ds"].to_numpy(dtype="datetime64[D]").astype(np.int64)
        y = g["y"].to_numpy(dtype=np.float64)
        for origin, end in ends.items():
            n = int(np.searchsorted(days, end, side="right"))
            h = hashlib.sha256(base)
            h.update(f"{uid}|{origin.date().isoformat()}".encode())
            h.update(days[:n].tobytes())
            h.update(y[:n].tobytes())
            out[(str(uid), origin)] = h.hexdigest()
    return out


def _num(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        x = float(v)
        return None if math.isnan(x) else x
    return None if v is None or v is pd.NaT else v


def _day(v: Any) -> str:
    return pd.Timestamp(v).date().isoformat()


@dataclass
class Decider:
    """The decision of one run, from preparation (before the fits) to the stored document.

    Use :meth:`prepare` with the frame handed to the runner, pass :attr:`spec` to
    :func:`models.runner.run_forecasts`, then :meth:`decide` with its result; :attr:`thresholds`
    and :attr:`max_weeks` (per series) go to :func:`models.peaks.peak_windows` and
    :meth:`document` onto the run.
    """

    categories: dict[str, str]
    rules: dict[str, CategoryRule]
    p_min: float | None
    min_windows: int
    horizon_weeks: int
    spec: BacktestSpec | None = None
    fingerprints: dict[tuple[str, pd.Timestamp], str] = field(default_factory=dict)
    cached_weekly: pd.DataFrame = field(default_factory=pd.DataFrame)
    cached_actual: pd.DataFrame = field(default_factory=pd.DataFrame)
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def prepare(cls, factory: sessionmaker[Session], params: Mapping[str, Any],
                frame: pd.DataFrame, horizon_days: int,
                forecaster_params: Mapping[str, Any]) -> Decider:
        """Origins, the backtest specification and the stored backtests it can reuse.

        ``frame`` is the daily frame handed to the runner (cut at the run's cut-off)."""
        t0 = time.perf_counter()
        uids = sorted(frame["unique_id"].astype(str).unique())
        categories = {u: parse_series_id(u).category for u in uids}
        with factory() as s:
            rules = category_rules(s)
        p_min = params.get("p_min")
        dec = cls(categories=categories, rules=rules,
                  p_min=None if p_min is None else float(p_min),
                  min_windows=int(params.get("decision_min_windows", 8)),
                  horizon_weeks=backtest_horizon_weeks(horizon_days))
        if dec.p_min is not None or not uids:
            return dec
        days = pd.to_datetime(frame["ds"])
        origins = decision_origins(days.max(), days.min(), horizon_weeks=dec.horizon_weeks,
                                   max_origins=int(params.get("decision_origins", 2)),
                                   anchor_weeks=int(params.get("decision_anchor_weeks", 13)))
        if not origins:
            return dec
        from models.runner import BacktestSpec

        spec = BacktestSpec(origins=tuple(origins), horizon_weeks=dec.horizon_weeks,
                            min_spike_count=float(params.get("min_spike_count", 5.0)))
        dec.fingerprints = _fingerprints(frame, spec, forecaster_params)
        weekly, actual, known = dec._load(factory)
        dec.cached_weekly, dec.cached_actual = weekly, actual
        dec.spec = BacktestSpec(origins=spec.origins, horizon_weeks=spec.horizon_weeks,
                                lead_days=spec.lead_days, min_spike_count=spec.min_spike_count,
                                skip=frozenset(known))
        dec.counts = {"pairs": len(dec.fingerprints), "reused": len(known)}
        dec.seconds["prepare_seconds"] = time.perf_counter() - t0
        return dec

    # ------------------------------------------------------------------ stored backtests
    def _load(self, factory: sessionmaker[Session]
              ) -> tuple[pd.DataFrame, pd.DataFrame, set[tuple[str, pd.Timestamp]]]:
        by_print = {fp: key for key, fp in self.fingerprints.items()}
        weeks: list[dict[str, Any]] = []
        wins: list[dict[str, Any]] = []
        known: set[tuple[str, pd.Timestamp]] = set()
        prints = list(by_print)
        with factory() as s:
            for i in range(0, len(prints), 500):
                rows = s.execute(select(DecisionBacktest.fingerprint, DecisionBacktest.weeks,
                                        DecisionBacktest.windows)
                                 .where(DecisionBacktest.fingerprint.in_(prints[i:i + 500])))
                for fp, w_rows, a_rows in rows:
                    uid, origin = by_print[fp]
                    known.add((uid, origin))
                    weeks.extend({"cutoff": origin, "unique_id": uid, "week": r[0],
                                  "expected": r[1], "p_spike": r[2], "threshold": r[3],
                                  "y": r[4], "spike": r[5]} for r in w_rows)
                    wins.extend({"cutoff": origin, "unique_id": uid, "start": r[0],
                                 "end": r[1], "eligible": bool(r[2])} for r in a_rows)
        weekly = pd.DataFrame(weeks, columns=_BT_WEEKLY)
        actual = pd.DataFrame(wins, columns=_BT_ACTUAL)
        for col, frame in (("week", weekly), ("start", actual), ("end", actual)):
            frame[col] = pd.to_datetime(frame[col])
        weekly["y"] = pd.to_numeric(weekly["y"], errors="coerce")
        return weekly, actual, known

    def _store(self, factory: sessionmaker[Session], run_id: str, result: RunResult) -> int:
        """Keep the fresh backtests of the series that ran without a failure; drop other
        fingerprints of the same (series, origin) and origins long gone. Returns rows kept."""
        assert self.spec is not None
        done = set(result.backtest_seconds)
        w, a = result.backtest_weekly, result.backtest_actual
        w_groups = {(str(u), pd.Timestamp(str(c))): g for (c, u), g in
                    w.groupby(["cutoff", "unique_id"], sort=False)} if len(w) else {}
        a_groups = {(str(u), pd.Timestamp(str(c))): g for (c, u), g in
                    a.groupby(["cutoff", "unique_id"], sort=False)} if len(a) else {}
        rows: list[dict[str, Any]] = []
        now = utcnow()
        for key, fp in self.fingerprints.items():
            if key in self.spec.skip or key[0] not in done:
                continue
            g = w_groups.get(key)
            ga = a_groups.get(key)
            rows.append({
                "series_id": key[0], "origin": key[1].date(), "fingerprint": fp,
                "weeks": [] if g is None else [
                    [_day(r.week), _num(r.expected), _num(r.p_spike), _num(r.threshold),
                     _num(r.y), _num(r.spike)] for r in g.itertuples(index=False)],
                "windows": [] if ga is None else [
                    [_day(r.start), _day(r.end), bool(r.eligible)]
                    for r in ga.itertuples(index=False)],
                "run_id": run_id, "created_at": now})
        if not rows:
            return 0
        oldest = min(self.spec.origins).date() - dt.timedelta(weeks=104)
        with factory() as s:
            keys = [(r["series_id"], r["origin"]) for r in rows]
            try:
                for i in range(0, len(keys), 500):
                    s.execute(delete(DecisionBacktest).where(
                        tuple_(DecisionBacktest.series_id, DecisionBacktest.origin).in_(
                            keys[i:i + 500])))
                s.execute(delete(DecisionBacktest).where(DecisionBacktest.origin < oldest))
                for i in range(0, len(rows), 1000):
                    s.execute(insert(DecisionBacktest), rows[i:i + 1000])
                s.commit()
            except IntegrityError:  # a concurrent run stored them first: theirs are as good
                s.rollback()
                return 0
        return len(rows)

    # ------------------------------------------------------------------ deciding
    def decide(self, factory: sessionmaker[Session], run_id: str,
               result: RunResult) -> pd.DataFrame:
        """The decision frame (one row per category, :data:`models.decision.DECISION_COLUMNS`)
        from the run's backtest and the reused ones; stores the fresh backtests."""
        t0 = time.perf_counter()
        if self.p_min is not None:
            self.decisions = pinned_thresholds(self.categories.values(), self.p_min,
                                               self.rules)
        else:
            if self.spec is not None:
                self.counts["stored"] = self._store(factory, run_id, result)
                self.counts["fitted"] = len(set(result.backtest_seconds))
            parts = [f for f in (result.backtest_weekly, self.cached_weekly) if len(f)]
            weekly = (pd.concat(parts, ignore_index=True) if parts
                      else pd.DataFrame(columns=_BT_WEEKLY))
            parts = [f for f in (result.backtest_actual, self.cached_actual) if len(f)]
            actual = (pd.concat(parts, ignore_index=True) if parts
                      else pd.DataFrame(columns=_BT_ACTUAL))
            self.decisions = learn_thresholds(
                weekly, actual, categories=self.categories, rules=self.rules,
                min_windows=self.min_windows,
                lead_days=self.spec.lead_days if self.spec else 14, fallback=DEFAULT_P_MIN)
        self.seconds["decision_seconds"] = time.perf_counter() - t0
        self.seconds["backtest_seconds"] = float(sum(result.backtest_seconds.values()))
        return self.decisions

    @property
    def thresholds(self) -> pd.Series:
        """``unique_id -> decision threshold``."""
        return series_thresholds(self.decisions, self.categories)

    @property
    def open_factors(self) -> pd.Series:
        """``unique_id -> open factor`` (:mod:`models.hysteresis`; 1 when pinned)."""
        return series_open_factors(self.decisions, self.categories)

    @property
    def max_weeks(self) -> pd.Series:
        """``unique_id -> max_campaign_weeks`` of the series' category."""
        return pd.Series({u: self.rules.get(c, CategoryRule()).max_campaign_weeks
                          for u, c in self.categories.items()}, dtype=int)

    def document(self) -> dict[str, Any]:
        """The JSON stored on the run (``forecast_runs.decisions``)."""
        cats: dict[str, Any] = {}
        for row in self.decisions.to_dict(orient="records"):
            code = str(row["category"])
            entry = {k: _num(row.get(k)) for k in DECISION_FIELDS_PUBLIC
                     if k not in ("origins", "max_campaign_weeks")}
            entry["category"] = code
            entry["origins"] = [str(o) for o in (row.get("origins") or [])]
            entry["max_campaign_weeks"] = self.rules.get(code, CategoryRule()).max_campaign_weeks
            for k in ("n_series", "n_windows", "n_campaigns"):
                if entry.get(k) is not None:
                    entry[k] = int(entry[k])
            cats[code] = entry
        origins = [o.date().isoformat() for o in self.spec.origins] if self.spec else []
        return {"mode": "pinned" if self.p_min is not None else "learned",
                "p_min": self.p_min, "horizon_weeks": self.horizon_weeks,
                "origins": origins, "min_windows": self.min_windows,
                "lead_days": self.spec.lead_days if self.spec else 14,
                "backtests": dict(self.counts), "categories": cats}


def public_decision(document: Mapping[str, Any] | None, category: str, *,
                    language: str = "en") -> dict[str, Any] | None:
    """One category's decision from a run's document, with ``explanation`` in plain words;
    None for runs that stored none (before decisions were learned)."""
    if not document:
        return None
    row = (document.get("categories") or {}).get(category)
    if row is None:
        return None
    out = {k: row.get(k) for k in DECISION_FIELDS_PUBLIC}
    out["origins"] = list(row.get("origins") or [])
    if out.get("threshold") is not None:  # the level a window must reach to open
        out["opens_at"] = float(open_probability(float(out["threshold"]),
                                                 float(out.get("open_factor") or 1.0)))
    out["explanation"] = describe(out, language=language)
    return out


def public_decisions(document: Mapping[str, Any] | None, *,
                     language: str = "en") -> list[dict[str, Any]]:
    """Every category's decision of a run (by category code)."""
    if not document:
        return []
    return [d for c in sorted(document.get("categories") or {})
            if (d := public_decision(document, c, language=language)) is not None]


def _pct(v: Any) -> str:
    return "  n/a" if v is None else f"{100 * float(v):4.0f} %"


def summary_lines(document: Mapping[str, Any] | None) -> list[str]:
    """The per-category thresholds of a run as a small table (``forewarn forecast``)."""
    if not document:
        return ["no decision thresholds stored for this run"]
    cats = document.get("categories") or {}
    if document.get("mode") == "pinned":
        return [f"decision threshold pinned at P(spike) >= {document.get('p_min'):g} "
                f"(FOREWARN_FORECAST__P_MIN) for {len(cats)} categories"]
    origins = list(document.get("origins") or [])
    bt = document.get("backtests") or {}
    head = (f"decision thresholds learned per category on {len(origins)} backtest(s) before "
            f"the cut-off ({', '.join(origins) or 'none possible'}; horizon "
            f"{document.get('horizon_weeks')} weeks")
    if bt:
        head += (f"; {bt.get('pairs', 0)} series x origin backtests, {bt.get('reused', 0)} "
                 f"reused from earlier runs")
    lines = [head + "):",
             f"  {'category':<22} {'P(spike) >=':>11} {'opens at':>8}  {'basis':<9} "
             f"{'recall':>7} {'precision':>9} {'F1':>6} {'windows':>7}"]
    for code in sorted(cats):
        d = cats[code]
        p = float(d["threshold"])
        k = float(d.get("open_factor") or 1.0)
        lines.append(f"  {code:<22} {p:>11.3f} {float(open_probability(p, k)):>8.3f}  "
                     f"{str(d['basis']):<9} {_pct(d.get('recall')):>7} "
                     f"{_pct(d.get('precision')):>9} {_pct(d.get('f1')):>6} "
                     f"{d.get('n_windows') or 0:>7}")
    return lines
