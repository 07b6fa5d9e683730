"""Series listing benchmark: ``GET /v1/series`` under load (issue 13 target).

Builds a SQLite database through the real import (the sample complaints and enforcement
actions, plus the four years of Chicago 311 when ``../shared`` is there: 667 series, 352,627
records), serves it with one uvicorn process and drives ``/v1/series`` (first page, default
limit 100, and a later page through its cursor) with ``wrk`` at 8 connections. The floor,
measured in the same run: a bare FastAPI app in its own uvicorn process returning a constant
body of the same size; for reference also our cheapest authenticated route
(``/v1/dashboard/whoami``), the ceiling that the shared request path (key check, middleware)
leaves any route. Also times, in process, the listing query before this change (a GROUP BY
over every record) against the summary read.

    python bench/series.py [--rounds 5] [--duration 5] [--connections 8] [--no-chicago]

The two servers run side by side and ``wrk`` alternates between them round by round (the
machine is shared: its load changes from one minute to the next); the ratio printed is the
median of the per-round ratios.

Targets (issue 13): ≥ 0.5× the floor's requests/s and p99 < 50 ms at 8 connections.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import alternate, serve_api, serve_floor, server_env, stop, wrk_workdir  # noqa: E402
from service.db import make_engine, make_sessionmaker  # noqa: E402
from service.ingest.pipeline import import_file  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.store.keys import create_key  # noqa: E402
from service.store.reference import load_reference  # noqa: E402
from service.store.series import series_page  # noqa: E402
from service.store.tables import Complaint, EnforcementAction  # noqa: E402

SAMPLES = ROOT / "data" / "samples"
CHICAGO = ROOT.parent / "shared" / "data" / "chicago_311"
CHICAGO_MAP = {"external_id": "service_request_number", "received_at": "created_date",
               "category": "violation_nature", "region": "ward"}


def sample_database(url: str) -> tuple[Engine, sessionmaker[Session], str]:
    """A migrated database with the sample reference data, a ``read`` key and the sample
    complaints imported through the real pipeline; returns (engine, sessions, key)."""
    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with factory() as s:
        load_reference(session=s, categories_file=SAMPLES / "categories.yaml",
                       regions_file=SAMPLES / "regions.yaml")
        _, key = create_key(session=s, name="bench", scopes=["read"])
    import_file(session_factory=factory, kind="complaints", path=SAMPLES / "complaints.csv.gz")
    return engine, factory, key


def _seed(url: str, chicago: bool) -> tuple[str, int, int]:
    """Import the data; returns (api key, records, series)."""
    engine, factory, key = sample_database(url)
    import_file(session_factory=factory, kind="enforcement",
                path=SAMPLES / "enforcement.csv.gz")
    files = sorted(CHICAGO.glob("chicago_311_sanitation_code_complaints_*.csv")) if chicago \
        else []
    for f in files:
        year = f.stem.rsplit("_", 1)[1]
        import_file(session_factory=factory, kind="complaints", path=f, source="chicago-311",
                    mapping=CHICAGO_MAP, register_new=True,
                    coverage=f"{year}-01-01..{year}-12-31")
    with factory() as s:
        records = int(s.scalar(select(func.count()).select_from(Complaint)) or 0) + int(
            s.scalar(select(func.count()).select_from(EnforcementAction)) or 0)
        n_series = 0
        after = None
        while page := series_page(session=s, after=after, limit=1000):
            n_series += len(page)
            after = page[-1]["id"]
    engine.dispose()
    return key, records, n_series


def _in_process(url: str, repeat: int = 20) -> dict[str, float]:
    """Median ms of the listing's reads: the GROUP BY over all records that the route ran
    before, and the summary page read now."""
    engine = make_engine(url)
    factory = make_sessionmaker(engine)

    def old(s: Any) -> None:
        for table, cond in ((Complaint, None),
                            (EnforcementAction, EnforcementAction.violation_found.is_(True))):
            stmt = select(table.category, table.region, func.min(table.day),
                          func.max(table.day), func.count()).group_by(
                table.category, table.region)
            if cond is not None:
                stmt = stmt.where(cond)
            s.execute(stmt).all()

    out: dict[str, float] = {}
    with factory() as s:
        for name, fn in (("group_by_all_records_ms", old),
                         ("summary_page_ms", lambda s: series_page(session=s, limit=101))):
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn(s)
                times.append((time.perf_counter() - t0) * 1000)
            out[name] = statistics.median(times)
    engine.dispose()
    return out


def main() -> None:
    """Seed the series, serve the listing in rounds against its baselines, print the figures.

    One function on purpose: a benchmark's protocol reads top to bottom (seed, served rounds,
    the report), and the report divides the rounds' figures by each other."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--no-chicago", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp, url = wrk_workdir("series")
    t0 = time.perf_counter()
    key, records, n_series = _seed(url, chicago=not args.no_chicago and CHICAGO.is_dir())
    seed_s = time.perf_counter() - t0
    reads = _in_process(url)
    env = server_env(url)
    headers = {"X-API-Key": key}
    ours, port = serve_api(env)
    floor: subprocess.Popen[bytes] | None = None
    rounds: dict[str, list[dict[str, Any]]] = {}
    try:
        base = f"http://127.0.0.1:{port}"
        first = httpx.get(f"{base}/v1/series", headers=headers)
        first.raise_for_status()
        body = first.content
        cursor = first.json()["next_cursor"]
        targets = {"first_page": (base + "/v1/series", headers)}
        if cursor:
            targets["next_page"] = (f"{base}/v1/series?cursor={cursor}", headers)
        # our cheapest authenticated route: what the shared request path (key check,
        # middleware) leaves of the floor, whatever the route does
        targets["whoami"] = (f"{base}/v1/dashboard/whoami", headers)
        floor, fport = serve_floor(tmp / "floor", {"series": body}, env)
        targets["floor"] = (f"http://127.0.0.1:{fport}/series", {})
        rounds = alternate(targets, rounds=args.rounds, duration=args.duration,
                           connections=args.connections)
    finally:
        stop(ours, floor)
    paths = [n for n in targets if n not in ("floor", "whoami")]
    results: dict[str, dict[str, Any]] = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "statuses"}
        for name, rs in rounds.items()}
    for name, rs in rounds.items():  # answers by status, summed over the rounds
        total: dict[int, int] = {}
        for r in rs:
            for code, n in dict(r.get("statuses") or {}).items():
                total[code] = total.get(code, 0) + n
        results[name]["statuses"] = total
    for name in (*paths, "whoami"):
        results[name]["ratio"] = statistics.median(
            a["rps"] / f["rps"] for a, f in zip(rounds[name], rounds["floor"], strict=True))
        results[name]["worst_p99_ms"] = max(r["p99_ms"] for r in rounds[name])
    shutil.rmtree(tmp, ignore_errors=True)
    summary = {"records": records, "series": n_series, "seed_seconds": round(seed_s, 1),
               "body_bytes": len(body), "connections": args.connections,
               "rounds": args.rounds, "seconds_per_run": args.duration, **reads}
    if args.json:
        print(json.dumps({"setup": summary, "results": results, "rounds": rounds}, indent=2))
        return
    print(f"{records:,} records, {n_series} series (imported in {seed_s:.0f} s); one uvicorn "
          f"process each, {args.connections} connections, {args.rounds} alternating rounds of "
          f"{args.duration} s; page body {len(body):,} B")
    print(f"in process: GROUP BY over all records (the route before) "
          f"{reads['group_by_all_records_ms']:.1f} ms, summary page read "
          f"{reads['summary_page_ms']:.2f} ms (medians)")
    print(f"{'endpoint (medians over rounds)':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'non-2xx':>9}")
    labels = {"first_page": "GET /v1/series", "next_page": "GET /v1/series?cursor=…",
              "whoami": "GET /v1/dashboard/whoami (auth only)",
              "floor": "  floor: constant body"}
    for name in (*paths, "whoami", "floor"):
        r = results[name]
        print(f"{labels[name]:<34}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
              f"{sum(x['non_2xx'] for x in rounds[name]):>9.0f}")
    for name in paths:
        r = results[name]
        errors = sum(x["non_2xx"] for x in rounds[name])
        ok = r["ratio"] >= 0.5 and r["p99_ms"] < 50 and errors == 0
        print(f"{labels[name]}: ours/floor = {r['ratio']:.2f}× (median of per-round ratios; "
              f"target ≥ 0.5×), p99 {r['p99_ms']:.1f} ms (worst round "
              f"{r['worst_p99_ms']:.1f}; target < 50) → {'met' if ok else 'NOT met'}")
    print(f"for reference, the auth-only route: ours/floor = {results['whoami']['ratio']:.2f}×")

if __name__ == "__main__":
    main()
