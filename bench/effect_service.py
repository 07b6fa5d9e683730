"""Service-level validation of the campaign-effect estimates on ``data/samples``.

The sample data hold no real campaign, so every true effect is 0 unless the bench plants one.
The bench replays a deployment, then pretends that some of the planned campaigns were sent:

1. **Build** (slow, cached in ``--db``): import ``data/samples`` complaints into a SQLite
   database (``service.ingest.import_file``; ``--categories`` keeps a subset), then every
   ``--every`` months from ``--first`` to ``--last`` a forecast run
   (``service.forecasting.create_run/execute_run``: signal complaints, ``--horizon`` days,
   engine ``--engine``) with data up to that origin, ``plan_campaigns`` from it as of that
   day, and approval of every draft due before the next origin (``approve_campaign``: the
   run is frozen as ``approved_run_id``). Forecasts are made on untouched data (no campaign
   is ``sent`` during the replay, so nothing is masked: equivalent to perfect masking).
2. **Replicate** (fast): ``--reps`` times, each approved campaign is marked ``sent`` with
   probability ``--p-sent`` and ``cancelled`` otherwise (so its window is a placebo window
   for later campaigns), and every sent campaign whose window is complete is evaluated with
   ``service.evaluation.campaign_effect_report`` (status changes only, the data are not
   touched: true effect 0). Then the **planted** variant: a random 30 % of the complaint
   rows of each sent campaign's series and window are deleted (inside the session, rolled
   back afterwards) and the campaigns evaluated again; the truth is the realised change
   (rows deleted) for the counterfactual and -30 % on the rate for the DiD.

Reported per estimator (rows) under the null and the planted effect:

- ``cf raw``: actual - frozen forecast paths, as stored (every evaluated campaign).
- ``cf raw (same)``: the same, restricted to the campaigns that could be calibrated.
- ``cf calibrated``: with the placebo calibration (bias ratio and dispersion from predicted
  peak windows without a campaign, :func:`models.effect.placebo_calibration`); only campaigns
  whose calibration status is ``calibrated``.
- ``did``: difference-in-differences, status ``ok`` only.
- ``scorecard``: the estimate the scorecard counts (calibrated counterfactual, else DiD ok).

Then the **pooled** table: per replication and category with at least ``--pooled-min-k``
evaluated campaigns, the pooled calibrated counterfactual and DiD
(:func:`service.evaluation.pooling.pooled_groups`): ``sig95`` under the null (false-positive rate),
``recovered`` under the planted effect (95 % interval excludes 0 and covers -30 %; target 0.80),
the pooled MDE and the campaigns needed for -20 %. ``--p-sent 0.6`` gives more categories
with 10 or more campaigns.

Columns: ``n`` (campaign evaluations over all replications), ``sig95`` (share whose 95 %
interval excludes 0; null target 0.05), ``reduced`` (upper bound < 0: power under the planted
effect), ``med_rel`` (median relative effect; null target 0, planted -0.30), ``cov95`` /
``cov80`` (interval covers the truth).

Usage::

    .venv/bin/python bench/effect_service.py                       # build in a temp dir, run
    .venv/bin/python bench/effect_service.py --db var/effect.db    # keep the build, reuse it
    .venv/bin/python bench/effect_service.py --db var/effect.db --reps 50
    .venv/bin/python bench/effect_service.py --categories fireworks,food_safety --every 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLES = ROOT / "data" / "samples"
ACTOR = "bench-effect"


def _add_months(d: dt.date, months: int) -> dt.date:
    m = d.month - 1 + months
    return dt.date(d.year + m // 12, m % 12 + 1, 1)


def origins(first: dt.date, last: dt.date, every: int) -> list[dt.date]:
    out, d = [], first
    while d <= last:
        out.append(d)
        d = _add_months(d, every)
    return out


def _settings(path: Path) -> Any:
    from service.config import Settings

    return Settings(_env_file=None, database_url=f"sqlite:///{path}",
                    categories_file=SAMPLES / "categories.yaml",
                    regions_file=SAMPLES / "regions.yaml", log_json=False)


def build(path: Path, *, first: dt.date, last: dt.date, every: int, horizon: int,
          categories: list[str] | None, engine: str, jobs: int) -> dict[str, Any]:
    """Import, replay forecasts + planning + approvals; skips what the database already has.

    One function on purpose: the replay reads as a deployment's calendar, top to bottom, and
    each step resumes where a kept database stopped."""
    from sqlalchemy import select

    from bench._samples import load_samples
    from service.campaigns.service import approve_campaign, plan_campaigns
    from service.campaigns.tables import Campaign
    from service.db import make_engine, make_sessionmaker
    from service.forecasting import create_run, execute_run
    from service.ingest.pipeline import import_file
    from service.migrate import upgrade
    from service.store.tables import ForecastRun

    settings = _settings(path)
    eng = make_engine(settings.database_url)
    upgrade(eng)
    factory = make_sessionmaker(eng)
    timings: dict[str, float] = {"import": 0.0, "forecast": 0.0, "plan": 0.0}
    t0 = time.perf_counter()

    def import_complaints() -> None:  # the complaints only, of ``categories`` if given
        src = SAMPLES / "complaints.csv.gz"
        with tempfile.TemporaryDirectory(prefix="forewarn-effect-") as tmp:
            if categories:
                frame = pd.read_csv(src, dtype=str, keep_default_na=False)
                frame = frame[frame["category"].isin(categories)]
                src = Path(tmp) / "complaints.csv"
                frame.to_csv(src, index=False)
            import_file(session_factory=factory, kind="complaints", path=src,
                        filename=src.name, tz=settings.timezone)

    load_samples(factory, settings, import_complaints)
    timings["import"] = round(time.perf_counter() - t0, 1)
    points = origins(first, last, every)
    with factory() as s:
        done_origins = {r.params.get("bench_origin") for r in s.scalars(select(ForecastRun).where(
            ForecastRun.requested_by == ACTOR, ForecastRun.status.in_(("succeeded", "partial"))))}
    runs = 0
    for i, origin in enumerate(points):
        if origin.isoformat() in done_origins:
            continue
        nxt = points[i + 1] if i + 1 < len(points) else _add_months(origin, every)
        t0 = time.perf_counter()
        with factory() as s:
            run = create_run(session=s, settings=settings, horizon_days=horizon,
                             train_until=origin - dt.timedelta(days=1), engine=engine,
                             jobs=jobs, signals=["complaints"], requested_by=ACTOR)
            run.params = {**run.params, "bench_origin": origin.isoformat()}
            s.commit()
            run_id = run.id
        execute_run(session_factory=factory, run_id=run_id, settings=settings)
        timings["forecast"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        with factory() as s:
            plan_campaigns(session=s, settings=settings, today=origin, run_id=run_id,
                           actor=ACTOR)
            due = list(s.scalars(select(Campaign.id).where(Campaign.status == "draft",
                                                           Campaign.send_date < nxt)))
            for cid in due:
                approve_campaign(session=s, settings=settings, campaign_id=cid, actor=ACTOR,
                                 today=origin)
        timings["plan"] += time.perf_counter() - t0
        runs += 1
        print(f"  origin {origin}: run {run_id[:8]}, {len(due)} campaigns approved "
              f"({time.perf_counter() - t0:.0f} s plan)", file=sys.stderr, flush=True)
    eng.dispose()
    return {"origins": [str(o) for o in points], "new_runs": runs,
            "timings": {k: round(v, 1) for k, v in timings.items()}}


def _estimates(report: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The bench's estimator rows from one effect report."""
    cf, cal, did = report["counterfactual"], report["calibration"], report["did"]
    calibrated = bool(cf and cf.get("calibrated"))
    raw = report["counterfactual_raw"] if calibrated else cf
    out: dict[str, dict[str, Any] | None] = {
        "cf raw": raw, "cf raw (same)": raw if calibrated else None,
        "cf calibrated": cf if calibrated else None,
        "did": did if did and did.get("status") == "ok" else None}
    out["scorecard"] = out["cf calibrated"] or out["did"]
    out["_cal"] = cal
    return out


def _row(est: dict[str, Any], name: str, truth_abs: float, truth_rel: float) -> dict[str, Any]:
    is_did = name == "did" or (name == "scorecard" and "log_effect" in est)
    lo95, hi95 = est["effect_lower_95"], est["effect_upper_95"]
    lo80, hi80 = est["effect_lower_80"], est["effect_upper_80"]
    if is_did:  # estimand: the relative effect on the rate
        cover95 = est["relative_lower_95"] <= truth_rel <= est["relative_upper_95"]
        cover80 = est["relative_lower_80"] <= truth_rel <= est["relative_upper_80"]
    else:  # estimand: the realised effect (actual with - without the campaign)
        cover95 = lo95 <= truth_abs <= hi95
        cover80 = lo80 <= truth_abs <= hi80
    return {"estimator": name, "effect": est["effect"], "rel": est["relative_effect"],
            "sig95": bool(lo95 > 0 or hi95 < 0), "reduced": bool(hi95 < 0),
            "cov95": bool(cover95), "cov80": bool(cover80),
            "lo95": lo95, "hi95": hi95,
            # the DiD's interval ingredients (log scale): log_effect ± t(df) * placebo_rmse
            "log_effect": est["log_effect"] if is_did else np.nan,
            "placebo_rmse": est["placebo_rmse"] if is_did else np.nan,
            "did_df": est.get("df", np.nan) if is_did else np.nan,
            "did_n_placebos": est["n_placebos"] if is_did else np.nan,
            "did_weeks": ((pd.Timestamp(est["window_end"]) - pd.Timestamp(est["window_start"]))
                          .days + 1) // 7 if is_did else np.nan}


def replicate(path: Path, *, reps: int, p_sent: float, effect: float, seed: int,
              min_placebos: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Null and planted-effect replications on a built database (nothing is committed).

    One function on purpose: every replication marks a random draw of the approved campaigns
    sent and, for the planted variant, deletes a share of their windows' complaints, in one
    session that it rolls back; its steps share that session, the campaigns, the panel and
    the placebo candidates."""
    from sqlalchemy import delete, select, update

    from models.series import SeriesId
    from service.campaigns.tables import Campaign
    from service.db import make_engine, make_sessionmaker
    from service.evaluation import campaign_effect_report, placebo_windows, weekly_panel
    from service.store.tables import Category, Complaint, Region

    settings = _settings(path)
    eng = make_engine(settings.database_url)
    factory = make_sessionmaker(eng)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    totals: list[dict[str, Any]] = []
    pooled: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with factory() as s:
        approved = [(c.id, c.category, c.region, c.window_start, c.window_end) for c in
                    s.scalars(select(Campaign).where(Campaign.status == "approved",
                                                     Campaign.approved_run_id.is_not(None))
                              .order_by(Campaign.id))]
        panel = weekly_panel(session=s, signal="complaints")
        last_week = pd.Timestamp(panel["week"].max())
        approved = [a for a in approved if pd.Timestamp(a[4]) <= last_week]
        cands = placebo_windows(session=s, signal="complaints", panel=panel,
                                min_probability=settings.campaigns.min_probability)
        refs = ({c.code: c.sector for c in s.scalars(select(Category))},
                {r.code: str(r.level) for r in s.scalars(select(Region))})
    info: dict[str, Any] = {"approved": len(approved), "placebo_candidates": len(cands),
            "setup_seconds": round(time.perf_counter() - t0, 1)}
    for rep in range(reps):
        pick = rng.random(len(approved)) < p_sent
        sent = [a for a, k in zip(approved, pick, strict=True) if k]
        with factory() as s:
            ids = [a[0] for a in sent]
            s.execute(update(Campaign).where(Campaign.id.in_(ids)).values(status="sent"))
            s.execute(update(Campaign).where(Campaign.status == "approved")
                      .values(status="cancelled"))
            s.expire_all()
            for variant in ("null", "planted"):
                truth_abs: dict[str, float] = dict.fromkeys(ids, 0.0)
                if variant == "planted":
                    before = _window_totals(s, sent)
                    for cat, reg, days in _series_days(sent):
                        row_ids = list(s.scalars(select(Complaint.id).where(
                            Complaint.category == cat, Complaint.region == reg,
                            Complaint.day.in_(days))))
                        drop = [i for i, u in zip(row_ids, rng.random(len(row_ids)),
                                                  strict=True) if u < -effect]
                        for k in range(0, len(drop), 500):
                            s.execute(delete(Complaint).where(Complaint.id.in_(drop[k:k + 500])))
                    after = _window_totals(s, sent)
                    truth_abs = {i: after[i] - before[i] for i in ids}
                    panel_v = weekly_panel(session=s, signal="complaints")
                else:
                    panel_v = panel
                cats = SeriesId.part(panel_v["unique_id"], "category")
                by_cat = {c: panel_v[cats == c] for c in set(cats)}
                truth_rel = 0.0 if variant == "null" else effect
                tot: dict[str, Any] = {"rep": rep, "variant": variant, "counted": 0, "avoided": 0.0,
                       "lo95": 0.0, "hi95": 0.0, "truth": -sum(truth_abs.values())}
                reports: list[dict[str, Any]] = []
                for cid, cat, *_ in sent:
                    rep_ = campaign_effect_report(
                        session=s, campaign_id=cid, panel=by_cat.get(cat), placebos=cands,
                        min_placebos=min_placebos,
                        min_probability=settings.campaigns.min_probability)
                    if rep_["evaluation"] != "complete":
                        continue
                    reports.append(rep_)
                    ests = _estimates(rep_)
                    cal = ests.pop("_cal") or {}
                    for name, est in ests.items():
                        if est is None:
                            continue
                        r = _row(est, name, truth_abs[cid], truth_rel)
                        r.update(rep=rep, variant=variant, campaign_id=cid,
                                 n_placebos=cal.get("n_placebos"),
                                 bias_ratio=cal.get("bias_ratio"),
                                 dispersion=cal.get("dispersion"),
                                 pooled_over=cal.get("pooled_over"))
                        rows.append(r)
                        if name == "scorecard":
                            tot["counted"] += 1
                            tot["avoided"] -= est["effect"]
                            tot["lo95"] -= est["effect_upper_95"]
                            tot["hi95"] -= est["effect_lower_95"]
                totals.append(tot)
                pooled += _pooled_rows(reports, sent, cands, refs, rep=rep, variant=variant,
                                       truth_rel=truth_rel)
            s.rollback()
        print(f"  rep {rep}: {len(sent)} sent ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr, flush=True)
    eng.dispose()
    info["replicate_seconds"] = round(time.perf_counter() - t0, 1)
    info["pooled"] = pooled
    return pd.DataFrame(rows), pd.DataFrame(totals), info


def _pooled_rows(reports: list[dict[str, Any]], sent: list[tuple[Any, ...]],
                 cands: pd.DataFrame, refs: tuple[dict[str, Any], dict[str, str]], *,
                 rep: int, variant: str, truth_rel: float) -> list[dict[str, Any]]:
    """Pooled estimates per category of one replication (service.evaluation.pooling)."""
    from types import SimpleNamespace

    from service.evaluation.pooling import (
        _without,
        calibration_variance,
        estimate_frame,
        placebo_correlation,
        pooled_groups,
    )

    frame = estimate_frame(reports, departments=refs[0], region_levels=refs[1])
    windows = [SimpleNamespace(category=c, region=r, window_start=a, window_end=b)
               for _, c, r, a, b in sent]
    unused = _without(cands, windows)  # as the scorecard does (pooled_scorecard)
    rho = placebo_correlation(unused)
    groups, _ = pooled_groups(frame, "category", rho=rho,
                              bias_variance=calibration_variance(unused))
    out = []
    for key, g in groups.items():
        for method in ("counterfactual", "did"):
            est = g[method]
            if est is None:
                continue
            cover = est["relative_lower_95"] <= truth_rel <= est["relative_upper_95"]
            out.append({"rep": rep, "variant": variant, "category": key, "method": method,
                        "k": est["k"], "sig": est["significant"], "cov95": cover,
                        "recovered": est["significant"] and cover,
                        "rel": est["relative_effect"], "mde": est["mde"],
                        "needed": est["campaigns_needed"], "rho": rho})
    return out


def summarise_pooled(pooled: list[dict[str, Any]], min_k: int) -> pd.DataFrame:
    p = pd.DataFrame(pooled)
    if p.empty:
        return p
    p = p[p["k"] >= min_k]
    return p.groupby(["variant", "method"], sort=False).agg(
        groups=("k", "size"), k=("k", "median"), sig95=("sig", "mean"),
        recovered=("recovered", "mean"), cov95=("cov95", "mean"), med_rel=("rel", "median"),
        mde=("mde", "median"), needed=("needed", "median"), rho=("rho", "median")
    ).reset_index()


def _series_days(sent: list[tuple[Any, ...]]) -> list[tuple[str, str, list[dt.date]]]:
    days: dict[tuple[str, str], set[dt.date]] = {}
    for _, cat, reg, start, end in sent:
        d = days.setdefault((cat, reg), set())
        d.update(start + dt.timedelta(days=k) for k in range((end - start).days + 1))
    return [(c, r, sorted(d)) for (c, r), d in days.items()]


def _window_totals(session: Any, sent: list[tuple[Any, ...]]) -> dict[str, float]:
    from sqlalchemy import func, select

    from service.store.tables import Complaint

    out = {}
    for cid, cat, reg, start, end in sent:
        ws = start - dt.timedelta(days=start.weekday())
        we = end + dt.timedelta(days=6 - end.weekday())
        out[cid] = float(session.scalar(select(func.count()).select_from(Complaint).where(
            Complaint.category == cat, Complaint.region == reg, Complaint.day >= ws,
            Complaint.day <= we)))
    return out


ESTIMATORS = ("cf raw", "cf raw (same)", "cf calibrated", "did", "scorecard")


def summarise(rows: pd.DataFrame, totals: pd.DataFrame) -> pd.DataFrame:
    out = []
    for variant in ("null", "planted"):
        for name in ESTIMATORS:
            f = rows[(rows["variant"] == variant) & (rows["estimator"] == name)]
            if f.empty:
                continue
            out.append({"variant": variant, "estimator": name, "n": len(f),
                        "sig95": f["sig95"].mean(), "reduced": f["reduced"].mean(),
                        "med_rel": f["rel"].median(), "cov95": f["cov95"].mean(),
                        "cov80": f["cov80"].mean()})
    return pd.DataFrame(out)


def _print(table: pd.DataFrame, rows: pd.DataFrame, totals: pd.DataFrame,
           info: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"origins {info['origins'][0]} … {info['origins'][-1]} every {args.every} months, "
          f"horizon {args.horizon} d; {info['approved']} approved campaigns with complete "
          f"windows; {info['placebo_candidates']} placebo candidates (peak windows × runs); "
          f"{args.reps} reps, p_sent {args.p_sent}, planted effect {args.effect:+.0%}")
    cal = rows[(rows["estimator"] == "cf raw") & (rows["variant"] == "null")]
    n_cal = rows[(rows["estimator"] == "cf calibrated") & (rows["variant"] == "null")]
    print(f"calibrated: {len(n_cal)} of {len(cal)} null evaluations "
          f"(min_placebos {args.min_placebos}); bias ratio median "
          f"{n_cal['bias_ratio'].median():.3f} [{n_cal['bias_ratio'].min():.3f}, "
          f"{n_cal['bias_ratio'].max():.3f}], dispersion median "
          f"{n_cal['dispersion'].median():.2f}; pooled over "
          f"{n_cal['pooled_over'].value_counts().to_dict()}")
    print("significance level 0.05 (95 % intervals): sig95 in the null rows is the "
          "false-positive rate, target <= 0.05")
    print(f"{'variant':<8} {'estimator':<15} {'n':>5} {'sig95':>6} {'reduced':>8} "
          f"{'med_rel':>8} {'cov95':>6} {'cov80':>6}")
    for r in table.itertuples(index=False):
        print(f"{r.variant:<8} {r.estimator:<15} {r.n:>5} {r.sig95:>6.3f} {r.reduced:>8.3f} "
              f"{r.med_rel:>+8.3f} {r.cov95:>6.3f} {r.cov80:>6.3f}")
    for variant in ("null", "planted"):
        t = totals[totals["variant"] == variant]
        if t.empty:
            continue
        cover = ((t["lo95"] <= t["truth"]) & (t["truth"] <= t["hi95"])).mean()
        print(f"scorecard total ({variant}): counted {t['counted'].median():.0f} campaigns/rep,"
              f" avoided median {t['avoided'].median():.0f} (truth median "
              f"{t['truth'].median():.0f}), 95 % interval covers the truth in {cover:.0%} of "
              f"reps, median width {(t['hi95'] - t['lo95']).median():.0f}")
    pooled = summarise_pooled(info.get("pooled", []), args.pooled_min_k)
    if not pooled.empty:
        print(f"pooled per category and replication (groups with k >= {args.pooled_min_k} "
              "campaigns; level 0.05: sig95 under the null is the false-positive rate; "
              "recovered = 95 % interval excludes 0 and covers the planted effect, target "
              ">= 0.80)")
        print(pooled.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"timings: { {k: v for k, v in info.items() if k != 'pooled'} }")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path, help="SQLite file (kept; the build is reused)")
    ap.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2023, 1, 1))
    ap.add_argument("--last", type=dt.date.fromisoformat, default=dt.date(2025, 11, 1))
    ap.add_argument("--every", type=int, default=2, help="months between forecast origins")
    ap.add_argument("--horizon", type=int, default=182, help="forecast horizon (days)")
    ap.add_argument("--categories", help="comma-separated subset of categories to import")
    ap.add_argument("--engine", default="local", choices=["local", "serial", "dask"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--reps", type=int, default=10, help="random 'sent' subsets")
    ap.add_argument("--p-sent", type=float, default=0.3,
                    help="probability an approved campaign is marked sent")
    ap.add_argument("--effect", type=float, default=-0.3, help="planted relative effect")
    ap.add_argument("--min-placebos", type=int, default=8)
    ap.add_argument("--pooled-min-k", type=int, default=10,
                    help="pooled table: only categories with at least this many campaigns")
    ap.add_argument("--seed", type=int, default=46)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rows", type=Path, help="write every evaluation row to this CSV")
    args = ap.parse_args(argv)
    from service.logging import configure_logging

    configure_logging("WARNING", json=False)
    tmp = None if args.db else tempfile.TemporaryDirectory(prefix="forewarn-effect-")
    path = args.db or Path(tmp.name) / "bench.db"  # type: ignore[union-attr]
    t0 = time.perf_counter()
    info = build(path, first=args.first, last=args.last, every=args.every,
                 horizon=args.horizon,
                 categories=args.categories.split(",") if args.categories else None,
                 engine=args.engine, jobs=args.jobs)
    info["build_seconds"] = round(time.perf_counter() - t0, 1)
    if args.build_only:
        print(json.dumps(info))
        return 0
    rows, totals, rinfo = replicate(path, reps=args.reps, p_sent=args.p_sent,
                                    effect=args.effect, seed=args.seed,
                                    min_placebos=args.min_placebos)
    info.update(rinfo)
    table = summarise(rows, totals)
    if args.rows:
        rows.to_csv(args.rows, index=False)
    if args.json:
        print(json.dumps({"info": info, "table": table.to_dict("records"),
                          "pooled": summarise_pooled(info.get("pooled", []),
                                                     args.pooled_min_k).to_dict("records"),
                          "totals": totals.to_dict("records")}, default=str, indent=2))
    else:
        _print(table, rows, totals, info, args)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
