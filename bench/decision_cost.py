"""What learning the decision thresholds costs a forecast run (issue 11: ≤ 1.5× a run without).

End to end through the service on ``data/samples`` (SQLite, ``execute_run``): the sample
complaints (and enforcement actions) are imported into a temporary database, then runs are
timed in this one process. Every run warm-starts from the latest finished run's registry, as
the weekly refit does, so each timed pair starts from the same kind of registry (a run at
the same cut-off for the first pair, at the previous week's cut-off for the second; the
untimed "reset" runs put it there):

- warm-up: pinned at cut-off ``C``;
- **pinned** at ``C`` (``FOREWARN_FORECAST__P_MIN=0.5``: no backtest) — baseline of the next;
- **learned, first run** at ``C`` with no stored decision backtests: every series is fitted
  again at each origin (2 origins, the run's horizon clamped to 26–52 weeks);
- reset (pinned at ``C``), then **learned, next weekly refit** at ``C + 7 days``: its origins
  are the same (anchored on a 13-week grid), so the stored backtests are reused and only
  series whose history changed would be refitted;
- reset (pinned at ``C``), then **pinned** at ``C + 7 days`` — baseline of the weekly refit.

Printed: wall seconds of each run, the two ratios (target ≤ 1.5), the run's own split
(``durations``: fits incl. backtest, learning, storing) and the load average, since the
machine is shared — compare ratios measured in one run, not seconds across runs.

Usage::

    .venv/bin/python bench/decision_cost.py                  # complaints and violations
    .venv/bin/python bench/decision_cost.py --signal complaints --jobs 2
    .venv/bin/python bench/decision_cost.py --db var/cost.db --keep   # reuse the import
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLES = ROOT / "data" / "samples"
CUTOFF = dt.date(2025, 1, 5)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(*, db: Path | None, keep: bool, signals: list[str], jobs: int, engine: str,
            horizon_days: int, cutoff: dt.date) -> dict[str, Any]:
    """Import the samples, then time pinned and learned runs in pairs (a first run and a
    weekly refit); returns each run's timings.

    One function on purpose: the protocol reads top to bottom, and each timed pair must start
    from the registry the step before left (see the module docstring)."""
    from sqlalchemy import delete

    from bench._samples import load_samples
    from service.config import Settings
    from service.db import make_engine, make_sessionmaker
    from service.forecasting import create_run, execute_run
    from service.migrate import upgrade
    from service.store.tables import DecisionBacktest

    tmp = None if db else tempfile.TemporaryDirectory(prefix="forewarn-cost-")
    path = db or Path(tmp.name) / "cost.db"  # type: ignore[union-attr]
    learned = Settings(_env_file=None, database_url=f"sqlite:///{path}",
                       categories_file=SAMPLES / "categories.yaml",
                       regions_file=SAMPLES / "regions.yaml", log_json=False)
    pinned = learned.model_copy(update={
        "forecast": learned.forecast.model_copy(update={"p_min": 0.5})})
    eng = make_engine(learned.database_url)
    upgrade(eng)
    factory = make_sessionmaker(eng)
    t0 = time.perf_counter()
    load_samples(factory, learned)
    with factory() as s:  # every measurement starts without stored backtests
        s.execute(delete(DecisionBacktest))
        s.commit()
    print(f"import {time.perf_counter() - t0:.1f} s; load average {_load()}", flush=True)

    def run(label: str, settings: Settings, until: dt.date) -> dict[str, Any]:
        with factory() as s:
            r = create_run(session=s, settings=settings, horizon_days=horizon_days,
                           train_until=until, engine=engine, jobs=jobs, signals=signals,
                           requested_by="bench")
        t = time.perf_counter()
        done = execute_run(session_factory=factory, run_id=r.id, settings=settings)
        wall = time.perf_counter() - t
        bt = (done.decisions or {}).get("backtests", {})
        print(f"{label:<34} {wall:7.1f} s  {done.total} series, status {done.status}; "
              f"fits {done.durations.get('fit_seconds')} s, learning "
              f"{done.durations.get('decision_seconds')} s, store "
              f"{done.durations.get('store_seconds')} s; backtests {bt or '-'}; "
              f"load {_load()}", flush=True)
        return {"label": label, "wall_seconds": round(wall, 2), "series": done.total,
                "durations": done.durations, "backtests": bt,
                "origins": (done.decisions or {}).get("origins", []),
                "thresholds": {c: d["threshold"] for c, d in
                               ((done.decisions or {}).get("categories") or {}).items()}}

    nxt = cutoff + dt.timedelta(days=7)
    runs = [run("warm-up (pinned)", pinned, cutoff),
            run("pinned p_min 0.5", pinned, cutoff),
            run("learned, first run", learned, cutoff),
            run("reset (pinned)", pinned, cutoff),
            run("learned, next weekly refit", learned, nxt),
            run("reset (pinned)", pinned, cutoff),
            run("pinned p_min 0.5, next week", pinned, nxt)]
    eng.dispose()
    if tmp is not None and not keep:
        tmp.cleanup()
    first = runs[2]["wall_seconds"] / runs[1]["wall_seconds"]
    weekly = runs[4]["wall_seconds"] / runs[6]["wall_seconds"]
    print(f"ratio learned / pinned, first run (every backtest fitted): {first:.2f}x "
          f"(target <= 1.5x)")
    print(f"ratio learned / pinned, next weekly refit (stored backtests reused): "
          f"{weekly:.2f}x (target <= 1.5x)")
    print(f"origins {runs[2]['origins']} then {runs[4]['origins']}; learned thresholds "
          f"{runs[2]['thresholds']}")
    return {"runs": runs, "ratio_first_run": round(first, 3),
            "ratio_weekly_refit": round(weekly, 3), "cutoff": str(cutoff),
            "horizon_days": horizon_days, "signals": signals, "engine": engine, "jobs": jobs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path, help="SQLite file to use (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--signal", action="append", choices=["complaints", "violations"],
                    help="signals to forecast (repeatable; default both)")
    ap.add_argument("--jobs", type=int, default=-1)
    ap.add_argument("--engine", default="local", choices=["serial", "local", "dask"])
    ap.add_argument("--horizon-days", type=int, default=182)
    ap.add_argument("--cutoff", type=dt.date.fromisoformat, default=CUTOFF)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    print(f"decision cost on data/samples: cut-off {args.cutoff}, horizon "
          f"{args.horizon_days} days, engine {args.engine}, jobs {args.jobs}, "
          f"{os.cpu_count()} CPUs, load average {_load()}", flush=True)
    out = measure(db=args.db, keep=args.keep, signals=args.signal or ["complaints",
                                                                      "violations"],
                  jobs=args.jobs, engine=args.engine, horizon_days=args.horizon_days,
                  cutoff=args.cutoff)
    if args.json:
        print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
