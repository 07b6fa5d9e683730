"""API serving benchmark: ``GET /v1/series/{id}/forecast`` and ``GET /v1/peaks`` under load.

Starts one uvicorn process on a temporary SQLite database holding a stored forecast run (182
daily points, 26 weekly P(spike) rows per series, peaks), drives it with ``wrk`` (Debian
package; 32 connections, bounded duration) over loopback, and measures in the same run the
floor: a bare FastAPI app in its own uvicorn process returning a constant body of the same
size. Prints requests/s, p50/p99 and the ratio to the floor.

    python bench/api.py [--duration 10] [--connections 32] [--series 120]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.db import make_engine, make_sessionmaker  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.store.keys import create_key  # noqa: E402
from service.store.reference import load_reference  # noqa: E402
from service.store.tables import ForecastPoint, ForecastRun, ForecastWeek, Peak  # noqa: E402

SAMPLES = ROOT / "data" / "samples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(url: str, n_series: int) -> tuple[str, str]:
    """A finished run with daily points, weekly rows and peaks; returns (api key, series id)."""
    engine = make_engine(url)
    upgrade(engine)
    rng = np.random.default_rng(0)
    factory = make_sessionmaker(engine)
    with factory() as s:
        load_reference(session=s, categories_file=SAMPLES / "categories.yaml",
                       regions_file=SAMPLES / "regions.yaml")
        _, key = create_key(session=s, name="bench", scopes=["read"])
        run = ForecastRun(status="succeeded", engine="local", horizon_days=182,
                          train_until=dt.date(2026, 10, 31), total=n_series, done=n_series,
                          finished_at=dt.datetime.now(dt.UTC))
        s.add(run)
        s.flush()
        start = dt.date(2026, 11, 1)
        points, weeks, peaks = [], [], []
        for i in range(n_series):
            sid = f"complaints|cat{i % 10}|{150100 + 100 * (i // 10)}"
            y = rng.gamma(2.0, 2.0, 182)
            points += [{"run_id": run.id, "series_id": sid, "ds": start + dt.timedelta(d),
                        "yhat": float(y[d]), "yhat_lower": float(y[d] * 0.5),
                        "yhat_upper": float(y[d] * 1.6), "model": "prophet"}
                       for d in range(182)]
            weeks += [{"run_id": run.id, "series_id": sid,
                       "week": start + dt.timedelta(days=1 + 7 * w), "expected": 20.0,
                       "p_spike": float(rng.uniform()), "threshold": 25.0,
                       "samples": [round(float(v), 2) for v in rng.gamma(4, 5, 200)]}
                      for w in range(26)]
            peaks.append({"run_id": run.id, "series_id": sid, "signal": "complaints",
                          "category": f"cat{i % 10}", "region": str(150100 + 100 * (i // 10)),
                          "start": dt.date(2027, 1, 4), "end": dt.date(2027, 1, 24),
                          "peak_week": dt.date(2027, 1, 11), "expected_count": 80.0,
                          "expected_excess": 20.0, "max_probability": 0.8, "threshold": 25.0})
        s.execute(insert(ForecastPoint), points)
        s.execute(insert(ForecastWeek), weeks)
        s.execute(insert(Peak), peaks)
        s.commit()
    engine.dispose()
    return key, "complaints|cat0|150100"


def _serve(app_ref: str, port: int, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app_ref, "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    err = proc.stderr.read().decode() if proc.stderr else ""
    raise RuntimeError(f"server did not start: {err}")


_FLOOR_APP = '''"""The floor: a bare FastAPI app answering each <name>.json here at /<name>."""
from pathlib import Path

from fastapi import FastAPI, Response

HERE = Path(__file__).resolve().parent
app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _answer(body: bytes):
    def answer() -> Response:
        return Response(body, media_type="application/json")
    return answer


for path in sorted(HERE.glob("*.json")):
    app.get("/" + path.stem)(_answer(path.read_bytes()))
'''


def serve_api(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start the service's API (``env``: :func:`server_env`) in its own uvicorn process;
    returns the process and its port."""
    port = _free_port()
    return _serve("service.api.main:app", port, env, ROOT), port


def serve_floor(folder: Path, bodies: dict[str, bytes], env: dict[str, str]
                ) -> tuple[subprocess.Popen[bytes], int]:
    """Start the floor in ``folder`` (made here): a bare FastAPI app in its own uvicorn
    process answering ``bodies[name]`` at ``/<name>``; returns the process and its port."""
    folder.mkdir()
    for name, body in bodies.items():
        (folder / f"{name}.json").write_bytes(body)
    (folder / "floor_app.py").write_text(_FLOOR_APP)
    port = _free_port()
    return _serve("floor_app:app", port, {**env, "PYTHONPATH": str(folder)}, folder), port


_LAT = re.compile(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_STATUS = re.compile(r"^status (\d{3}) (\d+)$", re.M)
# wrk script: count answers per status code over all threads, printed at the end
_COUNT_STATUSES = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do total[code] = (total[code] or 0) + n end
  end
  for code, n in pairs(total) do io.write(string.format("status %d %d\\n", code, n)) end
end
"""


def _wrk(url: str, headers: dict[str, str], duration: int, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_COUNT_STATUSES)
    args = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s",
            "-s", script.name]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    try:
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {}
    for pct, value, unit in _LAT.findall(out):
        lat[pct] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    return {"rps": rps, "p50_ms": lat.get("50", float("nan")),
            "p90_ms": lat.get("90", float("nan")), "p99_ms": lat.get("99", float("nan")),
            "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
            "statuses": {int(c): int(n) for c, n in _STATUS.findall(out)}}


def stop(*procs: subprocess.Popen[bytes] | None) -> None:
    """Terminate the servers this bench started."""
    for proc in procs:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


def alternate(targets: dict[str, tuple[str, dict[str, str]]], *, rounds: int, duration: int,
              connections: int) -> dict[str, list[dict[str, Any]]]:
    """``wrk`` every target round by round after a warm-up (on a shared machine the load
    changes between minutes, so each round's ratio compares like with like)."""
    for url_, hdrs in targets.values():  # warm up
        _wrk(url_, hdrs, 2, connections)
    out: dict[str, list[dict[str, float]]] = {}
    for _ in range(rounds):
        for name, (url_, hdrs) in targets.items():
            out.setdefault(name, []).append(_wrk(url_, hdrs, duration, connections))
    return out


def wrk_workdir(name: str) -> tuple[Path, str]:
    """Exit unless wrk is installed; a fresh temporary folder and the URL of the SQLite
    database ``<name>.db`` in it."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    tmp = Path(tempfile.mkdtemp(prefix=f"forewarn-bench-{name}-"))
    return tmp, f"sqlite:///{tmp / f'{name}.db'}"


def server_env(url: str) -> dict[str, str]:
    """Environment of the API server under test: ``url``, quiet logs, no rate limit."""
    return {**os.environ, "FOREWARN_DATABASE_URL": url, "FOREWARN_LOG_LEVEL": "WARNING",
            "FOREWARN_API__RATE_LIMIT_PER_MINUTE": "0", "PYTHONPATH": str(ROOT)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--series", type=int, default=120)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp, url = wrk_workdir("api")
    key, sid = _seed(url, args.series)
    env = server_env(url)
    headers = {"X-API-Key": key}
    results: dict[str, dict[str, Any]] = {}
    proc, port = serve_api(env)
    try:
        base = f"http://127.0.0.1:{port}"
        forecast_body = httpx.get(f"{base}/v1/series/{sid}/forecast", headers=headers).content
        peaks_body = httpx.get(f"{base}/v1/peaks", headers=headers).content
        for name, path in (("forecast", f"/v1/series/{sid}/forecast"), ("peaks", "/v1/peaks")):
            _wrk(base + path, headers, 2, args.connections)  # warm up
            results[name] = _wrk(base + path, headers, args.duration, args.connections)
    finally:
        proc.terminate()
        proc.wait(10)
    proc, port = serve_floor(tmp / "floor", {"forecast": forecast_body, "peaks": peaks_body},
                             env)
    try:
        for name in ("forecast", "peaks"):
            _wrk(f"http://127.0.0.1:{port}/{name}", {}, 2, args.connections)
            results[f"floor_{name}"] = _wrk(f"http://127.0.0.1:{port}/{name}", {},
                                            args.duration, args.connections)
    finally:
        proc.terminate()
        proc.wait(10)
    shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"one uvicorn process, {args.connections} connections, {args.duration} s, "
          f"bodies {len(forecast_body):,} B (forecast) and {len(peaks_body):,} B (peaks)")
    print(f"{'endpoint':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}  statuses")
    for name, label in (("forecast", "GET /v1/series/{id}/forecast"),
                        ("floor_forecast", "  floor: constant body"),
                        ("peaks", "GET /v1/peaks"), ("floor_peaks", "  floor: constant body")):
        r = results[name]
        codes = " ".join(f"{c}:{n}" for c, n in sorted(r["statuses"].items()))
        print(f"{label:<34}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
              f"{r['non_2xx']:>9.0f}  {codes}")
    for name in ("forecast", "peaks"):
        ratio = results[f"floor_{name}"]["rps"] / results[name]["rps"]
        ok = ratio <= 2 and results[name]["p99_ms"] < 50
        print(f"{name}: floor/ours = {ratio:.2f}× (target ≤ 2×), p99 "
              f"{results[name]['p99_ms']:.1f} ms (target < 50) → {'met' if ok else 'NOT met'}")
        ok13 = 1 / ratio >= 0.6 and results[name]["p99_ms"] < 50
        print(f"{name}: ours/floor = {1 / ratio:.2f}× (issue 13: ≥ 0.6× and p99 < 50 ms) → "
              f"{'met' if ok13 else 'NOT met'}")
        bad = {c: n for c, n in results[name]["statuses"].items() if c not in (200, 429, 503)}
        print(f"{name}: answers other than 200/429/503: {bad or 'none'}")


if __name__ == "__main__":
    main()
