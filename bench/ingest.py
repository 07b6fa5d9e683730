"""Benchmark of complaint ingestion: full import vs a bare floor, SQLite and PostgreSQL.

Generates ``--rows`` complaint rows (default 1,000,000) as a UTF-8 CSV with Chinese headers
and a realistic mix: several timestamp forms, categories and regions by code / name / alias,
free texts of which about 5 % hold a phone number and 1 % an ID number or e-mail, personal
columns (dropped on import), and a few bad rows (unparseable time, unknown category, blank
region) and repeated ids. Then, each in its own subprocess so peak memory is separate:

- ``full``: :func:`service.ingest.import_file` into a fresh, migrated database (reference data
  from ``data/samples`` or the test fixtures): everything an import does -- the limits
  (bounded streams, rows, columns, line length, wall time), the file fingerprint (SHA-256 on a
  thread of its own), redaction (NFKC, libphonenumber's matcher, ID checksums), staging in
  temporary tables and the one-transaction publish -- with the collector paused
  (``service.gcpause.paused_gc``, as the CLI does);
- ``floor``: bare ``pandas.read_csv(chunksize, dtype=str)`` + ``executemany`` of the raw values
  into a table with the same columns and the same unique key (``source, external_id``) and
  nothing else (no series index, no foreign keys, no validation).

Prints rows/s of wall-clock time and rows per CPU-second of the importing process (the
machine may be shared: CPU time is the steadier figure; for PostgreSQL the server's own work is
not in it), peak RSS (``VmHWM`` of the worker) and full/floor. The data file is generated in a
subprocess too, so the workers do not inherit the generator's memory. PostgreSQL runs in a
fresh schema on ``postgresql+psycopg://postgres@127.0.0.1:5432/test`` (dropped afterwards) and
is skipped with a message if the server is unreachable. Usage::

    .venv/bin/python bench/ingest.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHUNK = 50_000
HEADER = ["工单编号", "受理时间", "问题类别", "所属地区", "行业", "受理渠道", "投诉内容",
          "投诉人", "联系电话"]
FLOOR_COLS = ["source", "external_id", "received_at", "day", "category", "region", "sector",
              "channel", "text", "batch_id"]


def _reference_files() -> tuple[Path, Path]:
    samples = ROOT / "data" / "samples"
    if (samples / "categories.yaml").exists() and (samples / "regions.yaml").exists():
        return samples / "categories.yaml", samples / "regions.yaml"
    fixtures = ROOT / "tests" / "ingest" / "fixtures"
    return fixtures / "categories.yaml", fixtures / "regions.yaml"


def _names(path: Path, key: str) -> list[list[str]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for item in doc[key]:
        names = [str(item["code"]), str(item.get("name_zh") or item["code"])]
        names += [str(a) for a in item.get("aliases") or []]
        out.append(names)
    return out


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write the benchmark CSV."""
    rng = np.random.default_rng(seed)
    cat_file, reg_file = _reference_files()
    cats = [n for names in _names(cat_file, "categories") for n in names[:3]]
    regs = [n for names in _names(reg_file, "regions") for n in names[:3]]
    base = np.datetime64("2020-01-01T00:00:00")
    secs = rng.integers(0, 5 * 365 * 86_400, rows)
    ts = pd.Series((base + secs.astype("timedelta64[s]")).astype(str)).str.replace(
        "T", " ", regex=False)
    form = rng.random(rows)
    slash = form < 0.10
    ts[slash] = pd.to_datetime(ts[slash]).dt.strftime("%Y/%-m/%-d %-H:%M")
    zh = (form >= 0.10) & (form < 0.12)
    ts[zh] = pd.to_datetime(ts[zh]).dt.strftime("%Y年%-m月%-d日 %-H时%M分")
    bad_time = rng.random(rows) < 0.002
    ts[bad_time] = "待补录"
    cat = np.asarray(cats, dtype=object)[rng.integers(0, len(cats), rows)]
    cat[rng.random(rows) < 0.002] = "其他问题"
    reg = np.asarray(regs, dtype=object)[rng.integers(0, len(regs), rows)]
    reg[rng.random(rows) < 0.001] = ""
    pieces = np.asarray(["小区楼下", "夜间", "有商户", "施工噪音很大", "无证经营", "销售过期食品",
                         "拖欠工资三个月", "燃放烟花爆竹", "请尽快处理", "多次反映未解决",
                         "存在安全隐患", "价格不透明", "影响休息", "请有关部门核实"], dtype=object)
    templates = ["".join(rng.choice(pieces, k)) + "。" for k in rng.integers(2, 8, 2000)]
    text = np.asarray(templates, dtype=object)[rng.integers(0, len(templates), rows)]
    r = rng.random(rows)
    phones = np.char.add("1", rng.integers(3_000_000_000, 9_999_999_999, rows).astype(str))
    text[r < 0.05] = text[r < 0.05] + "联系电话" + phones[r < 0.05].astype(object)
    text[(r >= 0.05) & (r < 0.055)] += "身份证150602198805121235"
    text[(r >= 0.055) & (r < 0.06)] += "回复请发邮箱zhang@example.com"
    ids = np.char.add("GD", np.arange(rows).astype(str)).astype(object)
    dup = rng.random(rows) < 0.001
    ids[dup] = ids[np.maximum(np.flatnonzero(dup) - 1, 0)]
    frame = pd.DataFrame({
        HEADER[0]: ids, HEADER[1]: ts, HEADER[2]: cat, HEADER[3]: reg,
        HEADER[4]: np.asarray(["市场监管", "公共安全", "生态环境", ""], dtype=object)[
            rng.integers(0, 4, rows)],
        HEADER[5]: np.asarray(["电话", "微信", "APP", "网站"], dtype=object)[
            rng.integers(0, 4, rows)],
        HEADER[6]: text, HEADER[7]: "张先生", HEADER[8]: phones,
    })
    frame.to_csv(path, index=False)


# ------------------------------------------------------------------ workers (subprocesses)


def _pg_schema_url(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def _engine(url: str) -> Any:
    from sqlalchemy import create_engine

    from service.db import make_engine

    return make_engine(url) if url.startswith("sqlite") else create_engine(url)


def worker_full(csv_path: Path, url: str) -> dict[str, Any]:
    from service.db import make_sessionmaker
    from service.ingest import import_file
    from service.migrate import upgrade
    from service.store.reference import load_reference

    engine = _engine(url)
    upgrade(engine)
    sf = make_sessionmaker(engine)
    cat_file, reg_file = _reference_files()
    with sf() as s:
        load_reference(session=s, categories_file=cat_file, regions_file=reg_file)
    import contextlib
    import inspect

    # the CLI's pause of the collector: service.gcpause.paused_gc since issue 15, an
    # import_file flag (pause_gc) in issue 12, always on before it
    extra: dict[str, Any] = {"pause_gc": True} \
        if "pause_gc" in inspect.signature(import_file).parameters \
        else {}
    try:
        from service.gcpause import paused_gc
        pause: Any = paused_gc
    except ImportError:
        pause = contextlib.nullcontext
    t0, c0 = time.perf_counter(), time.process_time()
    with pause():
        summary = import_file(session_factory=sf, kind="complaints", path=csv_path,
                              source="bench", chunk_rows=CHUNK, **extra)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    engine.dispose()
    return {"seconds": seconds, "cpu": cpu, "received": summary.received,
            "inserted": summary.inserted, "duplicates": summary.duplicates,
            "rejected": summary.rejected}


def worker_floor(csv_path: Path, url: str) -> dict[str, Any]:
    engine = _engine(url)
    cols = ", ".join(f"{c} {'TEXT' if url.startswith('sqlite') else 'text'}"
                     for c in FLOOR_COLS)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS floor_complaints")
        conn.exec_driver_sql(f"CREATE TABLE floor_complaints (id {'INTEGER PRIMARY KEY' if url.startswith('sqlite') else 'bigserial PRIMARY KEY'}, {cols}, UNIQUE (source, external_id))")  # noqa: E501
    mark = "?" if url.startswith("sqlite") else "%s"
    sql = (f"INSERT INTO floor_complaints ({', '.join(FLOOR_COLS)}) VALUES "
           f"({', '.join([mark] * len(FLOOR_COLS))}) ON CONFLICT (source, external_id) "
           "DO NOTHING")
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    with engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        cur = raw.cursor()
        for chunk in pd.read_csv(csv_path, dtype=str, chunksize=CHUNK):
            n += len(chunk)
            c = chunk
            rows = zip(["bench"] * len(c), c[HEADER[0]], c[HEADER[1]], c[HEADER[1]],
                       c[HEADER[2]], c[HEADER[3]], c[HEADER[4]], c[HEADER[5]], c[HEADER[6]],
                       ["b"] * len(c), strict=True)
            cur.executemany(sql, list(rows))
        raw.commit()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    engine.dispose()
    return {"seconds": seconds, "cpu": cpu, "received": n}


def _worker(args: argparse.Namespace) -> None:
    fn = worker_full if args.worker == "full" else worker_floor
    out = fn(Path(args.csv), args.url)
    out["maxrss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


def _peak_rss_mb() -> float:
    """Peak RSS of this process: ``VmHWM`` (reset at exec, unlike ``ru_maxrss``, which a
    child inherits from the parent it was forked from), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(kind: str, csv_path: Path, url: str) -> dict[str, Any]:
    env = {**os.environ, "FOREWARN_LOG_JSON": "false"}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--csv", str(csv_path), "--url", url],
        capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _fresh_sqlite(path: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def _best_of(n: int, pair: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``pair(k)`` (a full and a floor run) ``n`` times; keep each one's best wall and
    CPU time (and the largest peak memory)."""
    runs = [pair(k) for k in range(max(n, 1))]
    best: list[dict[str, Any]] = []
    for i in (0, 1):
        rs = [r[i] for r in runs]
        b = dict(min(rs, key=lambda r: r["seconds"]))
        b["cpu"] = min(r["cpu"] for r in rs)
        b["maxrss_mb"] = max(r["maxrss_mb"] for r in rs)
        best.append(b)
        if n > 1:
            print(f"  {'full' if i == 0 else 'floor'} runs: "
                  + ", ".join(f"{r['seconds']:.1f} s wall / {r['cpu']:.1f} s cpu" for r in rs))
    return best[0], best[1]


def _pg_available() -> bool:
    try:
        from sqlalchemy import create_engine, text

        eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


def _pg_schema(action: str, schema: str) -> None:
    from sqlalchemy import create_engine

    eng = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        if action == "create":
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        else:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    eng.dispose()


def _report(backend: str, rows: int, full: dict[str, Any], floor: dict[str, Any]) -> None:
    """Wall-clock rows/s and, because the machine may be shared, rows per CPU-second of the
    importing process (user + system; for PostgreSQL the server's work is not in it)."""
    for name, r in (("full", full), ("floor", floor)):
        extra = (f"  (inserted {r['inserted']:,}, duplicates {r['duplicates']:,}, rejected "
                 f"{r['rejected']:,})" if "inserted" in r else "")
        print(f"{backend:10s} {name:5s}: {rows / r['seconds']:>9,.0f} rows/s wall "
              f"({r['seconds']:5.1f} s), {rows / r['cpu']:>9,.0f} rows/cpu-s "
              f"({r['cpu']:5.1f} s), peak RSS {r['maxrss_mb']:5.0f} MB{extra}")
    print(f"{backend:10s} full/floor = {floor['seconds'] / full['seconds']:.0%} wall, "
          f"{floor['cpu'] / full['cpu']:.0%} cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary files")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run full and floor alternately N times and keep the best of each "
                             "(a shared machine's load spikes hit single runs)")
    parser.add_argument("--worker", choices=["full", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="forewarn-bench-"))
    csv_path = tmp / "complaints.csv"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                    "import ingest; from pathlib import Path; "
                    "ingest.generate(Path(sys.argv[2]), int(sys.argv[3]))",
                    str(Path(__file__).parent), str(csv_path), str(args.rows)], check=True)
    size_mb = csv_path.stat().st_size / 1e6
    print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - t0:.1f} s"
          f"; cpu count {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    full, floor = _best_of(args.repeat, lambda k: (
        _run("full", csv_path, _fresh_sqlite(tmp / f"full{k}.db")),
        _run("floor", csv_path, _fresh_sqlite(tmp / f"floor{k}.db"))))
    _report("sqlite", args.rows, full, floor)
    if args.no_pg:
        pass
    elif not _pg_available():
        print(f"postgresql: skipped ({PG_URL} is not reachable)")
    else:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        _pg_schema("create", schema)
        try:
            full = _run("full", csv_path, _pg_schema_url(schema))
            floor = _run("floor", csv_path, _pg_schema_url(schema))
            _report("postgresql", args.rows, full, floor)
        finally:
            _pg_schema("drop", schema)
    if not args.keep:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
