"""Import outcomes that tell the truth (issue 12 §2) and imports that cannot stall (§3), in
process: statuses, fingerprints, day/month order, encodings, unreadable files, limits, the
staging that keeps the write lock short, busy databases, interrupted batches, the CLI's exit
codes."""

from __future__ import annotations

import codecs
import gc
import gzip
import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from service.config import Settings
from service.db import make_sessionmaker
from service.errors import (
    BadRequest,
    Conflict,
    PayloadTooLarge,
    UnprocessableContent,
    UnsupportedMediaType,
)
from service.ingest import pipeline
from service.ingest.background import ImportExecutor
from service.ingest.batches import create_batch, get_batch, recover_interrupted
from service.ingest.jobs import records_job
from service.ingest.limits import Guard, ImportBusy, ImportLimits, TooSlow
from service.ingest.readers import TableReader
from service.store import owners
from service.store.base import as_utc
from service.store.tables import Complaint, ImportBatch, RejectedRow, utcnow
from tests.ingest.conftest import EN_HEADER, csv_bytes, gz, imp, load_ref, zh_rows


def _count(sf: sessionmaker[Session], model: Any = Complaint) -> int:
    with sf() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _batch(sf: sessionmaker[Session], batch_id: str) -> ImportBatch:
    with sf() as s:
        batch = s.get(ImportBatch, batch_id)
        assert batch is not None
        return batch


def _rows(dates: list[str], prefix: str = "D") -> bytes:
    return csv_bytes([["s", f"{prefix}{i}", d, "烟花爆竹", "呼市", "x"]
                      for i, d in enumerate(dates)], EN_HEADER)


# ------------------------------------------------------------------ outcomes


def test_every_row_rejected_is_a_rejected_batch(sf: sessionmaker[Session]) -> None:
    sqlite_sf = sf  # both backends
    rows = zh_rows(5)
    for r in rows:
        r[2] = "没有这类"
    summary = imp(sqlite_sf, csv_bytes(rows))
    assert (summary.status, summary.received, summary.inserted, summary.rejected) == (
        "rejected", 5, 0, 5)
    batch = _batch(sqlite_sf, summary.batch_id)
    assert batch.status == "rejected" and batch.rejected == 5
    assert _count(sqlite_sf, RejectedRow) == 5  # the reasons are kept for the download
    partial = imp(sqlite_sf, csv_bytes(zh_rows(3) + rows[:1]))
    assert (partial.status, partial.inserted, partial.rejected) == ("completed", 3, 1)


def test_header_only_file_warns(sqlite_sf: sessionmaker[Session]) -> None:
    summary = imp(sqlite_sf, csv_bytes([]))
    assert summary.status == "completed" and summary.received == 0
    assert summary.warnings and "no data rows" in summary.warnings[0]
    assert get_batch(session=sqlite_sf(), batch_id=summary.batch_id).warnings == \
        summary.warnings


def test_same_file_under_another_source_is_refused(sf: sessionmaker[Session],
                                                   tmp_path: Path) -> None:
    sqlite_sf = sf  # both backends
    path = tmp_path / "export.csv"
    path.write_bytes(csv_bytes(zh_rows(50)))
    first = imp(sqlite_sf, path, None, source="hotline")  # a path: hashed on a thread
    with pytest.raises(Conflict) as exc:
        imp(sqlite_sf, path.read_bytes(), "copy.csv", source="another")
    assert exc.value.extensions["existing_batch_id"] == first.batch_id
    assert _batch(sqlite_sf, exc.value.extensions["batch_id"]).status == "failed"
    assert _count(sqlite_sf) == 50
    # the same records in other bytes (re-exported) under another source are skipped too
    again = imp(sqlite_sf, gz(path.read_bytes()), "export.csv.gz", source="another")
    assert (again.inserted, again.duplicates) == (0, 50)
    assert any("'hotline'" in w and first.batch_id in w for w in again.warnings)
    forced = imp(sqlite_sf, path, None, source="another", force=True)
    assert forced.inserted == 50 and _count(sqlite_sf) == 100


def test_another_source_publishing_the_same_records_meanwhile_is_caught(
        sf: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two imports of the same records under different sources, the second publishing after
    the first had read and checked its file but before it published: the first skips them
    in its own publishing transaction (it used to store every record a second time)."""
    data = csv_bytes(zh_rows(30))
    real = pipeline._closing_warnings
    other: list[Any] = []
    nested = threading.Event()

    def the_other_source_publishes_now(*args: Any, **kw: Any) -> None:
        real(*args, **kw)  # the first check: nothing stored yet
        if not nested.is_set():  # the other import runs the plain way
            nested.set()
            other.append(imp(sf, gz(data), "hotline.csv.gz", source="hotline"))

    monkeypatch.setattr(pipeline, "_closing_warnings", the_other_source_publishes_now)
    first = imp(sf, data, "portal.csv", source="portal")
    assert other[0].inserted == 30
    assert (first.inserted, first.duplicates) == (0, 30)
    assert any("'hotline'" in w and other[0].batch_id in w for w in first.warnings)
    assert _count(sf) == 30


# ------------------------------------------------------------------ day/month order


def test_a_day_above_12_settles_the_order(sqlite_sf: sessionmaker[Session]) -> None:
    summary = imp(sqlite_sf, _rows(["01/02/2013", "25/03/2013 14:00", "05/04/2013"]))
    assert summary.rejected == 0
    with sqlite_sf() as s:
        days = dict(s.execute(select(Complaint.external_id, Complaint.day)).all())
    assert [str(days[k]) for k in ("D0", "D1", "D2")] == ["2013-02-01", "2013-03-25",
                                                          "2013-04-05"]
    assert any("day/month/year" in w and "25/03/2013" in w for w in summary.warnings)
    us = imp(sqlite_sf, _rows(["01/02/2014", "03/25/2014 02:03:00 PM"], "U"))
    with sqlite_sf() as s:
        got = s.scalars(select(Complaint.day).where(Complaint.batch_id == us.batch_id))
        assert sorted(str(d) for d in got) == ["2014-01-02", "2014-03-25"]


def test_all_ambiguous_dates_are_refused_with_advice(sqlite_sf: sessionmaker[Session]) -> None:
    data = _rows(["01/02/2013", "03/04/2013", "11/12/2013"])
    with pytest.raises(UnprocessableContent) as exc:
        imp(sqlite_sf, data)
    assert "--date-order dmy" in exc.value.detail and "--date-order mdy" in exc.value.detail
    assert _batch(sqlite_sf, exc.value.extensions["batch_id"]).status == "failed"
    ok = imp(sqlite_sf, data, date_order="dmy")
    assert ok.inserted == 3
    with sqlite_sf() as s:
        assert str(s.scalar(select(Complaint.day).where(Complaint.external_id == "D0"))) \
            == "2013-02-01"
    with pytest.raises(BadRequest):
        imp(sqlite_sf, data, date_order="dym", force=True)


def test_mixed_orders_are_refused_and_a_given_order_rejects_the_others(
        sqlite_sf: sessionmaker[Session]) -> None:
    data = _rows(["25/01/2013", "01/25/2013", "2013-01-05"])
    with pytest.raises(UnprocessableContent, match="mix day-first"):
        imp(sqlite_sf, data)
    summary = imp(sqlite_sf, data, date_order="mdy")
    assert (summary.inserted, summary.rejected) == (2, 1)
    assert summary.errors[0].row == 1 and "month/day/year" in summary.errors[0].detail
    ymd = imp(sqlite_sf, data, date_order="ymd", force=True, source="other")
    assert ymd.rejected == 2  # year-last dates are not accepted at all


# ------------------------------------------------------------------ encodings and files


def test_confident_encodings_only(sqlite_sf: sessionmaker[Session]) -> None:
    trad = ["工單編號", "受理時間", "問題類別", "所屬地區", "投訴內容"]
    text = "樓下有人燃放煙花，請儘快處理。"
    big5 = csv_bytes([["B1", "2023-01-05", "fireworks", "150100", text]], trad,
                     encoding="big5")
    summary = imp(sqlite_sf, big5, mapping=dict(zip(
        ["external_id", "received_at", "category", "region", "text"], trad, strict=True)))
    assert summary.encoding == "big5" and summary.inserted == 1
    utf16 = codecs.BOM_UTF16_LE + csv_bytes(zh_rows(2)).decode().encode("utf-16-le")
    assert imp(sqlite_sf, utf16).encoding == "utf-16"
    latin = "id,received_at,category,region,text\n1,2023-01-01,fireworks,150100,café\n"
    with pytest.raises(UnprocessableContent) as exc:
        imp(sqlite_sf, latin.encode("latin-1"))
    assert "line 2" in exc.value.detail and "byte offset" in exc.value.detail
    assert "--encoding" in exc.value.detail
    ok = imp(sqlite_sf, latin.encode("latin-1"), encoding="latin-1")
    assert ok.inserted == 1
    with pytest.raises(BadRequest):
        imp(sqlite_sf, latin.encode(), encoding="klingon")


def test_mostly_utf8_with_one_bad_byte_is_not_guessed(sqlite_sf: sessionmaker[Session]) -> None:
    data = csv_bytes(zh_rows(3))
    bad = data.replace("楼下".encode(), b"\xff\xfe", 1)
    with pytest.raises(UnprocessableContent) as exc:
        imp(sqlite_sf, bad)
    assert "line 2" in exc.value.detail and "0xFF" in exc.value.detail
    assert _count(sqlite_sf) == 0


def test_a_later_bad_byte_names_its_line(sqlite_sf: sessionmaker[Session]) -> None:
    data = csv_bytes(zh_rows(6000))  # larger than the 256 KB sample
    assert len(data) > 300_000
    bad = data + b"GDX,2023-01-05 10:00,\xff,x,y,z,w,v,u\r\n"
    with pytest.raises(UnprocessableContent) as exc:
        imp(sqlite_sf, bad, chunk_rows=1000)
    assert "line 6002" in exc.value.detail and "position 0" not in exc.value.detail
    assert _count(sqlite_sf) == 0  # chunks already staged were not published


@pytest.mark.parametrize(("data", "name", "error", "words"), [
    (b'[server]\nhost = "0.0.0.0"\nport = 8000\n', "config.toml", UnsupportedMediaType,
     "TOML"),
    (b'[server]\nhost = "0.0.0.0"\nport = 8000\n', "upload", UnsupportedMediaType, "TOML"),
    (b'[server]\nhost = "0.0.0.0"\n', "x.json", UnsupportedMediaType, "TOML"),
    (gz(csv_bytes(zh_rows(300)))[:-40], "f.csv.gz", UnprocessableContent, "truncated"),
    (gz(csv_bytes(zh_rows(300)))[:60] + b"\x00junk" * 200, "f.csv.gz", UnprocessableContent,
     "corrupt"),
    (csv_bytes(zh_rows(3)) + "中".encode()[:2], "f.csv", UnprocessableContent,
     "middle of a UTF-8 character"),
    (gz(csv_bytes(zh_rows(3)) + "中".encode()[:2]), "f.csv.gz", UnprocessableContent,
     "middle of a UTF-8 character"),
    (b"<?xml version='1.0'?><rows/>", "data.xml", UnsupportedMediaType, "XML"),
    (b"BZh91AY&SY" + b"\x00" * 50, "data.csv.bz2", UnsupportedMediaType, "gzip"),
])
def test_unreadable_files_get_one_clear_problem(sqlite_sf: sessionmaker[Session], data: bytes,
                                                name: str, error: type[Exception],
                                                words: str) -> None:
    with pytest.raises(error) as exc:
        imp(sqlite_sf, data, name)
    detail = exc.value.detail  # type: ignore[attr-defined]
    assert words in detail and "Traceback" not in detail
    assert exc.value.extensions["batch_id"]  # type: ignore[attr-defined]
    assert _count(sqlite_sf) == 0


# ------------------------------------------------------------------ limits


@pytest.mark.parametrize(("limits", "data", "name", "limit"), [
    (ImportLimits(max_rows=100), csv_bytes(zh_rows(250)), "f.csv", "imports.max_rows"),
    (ImportLimits(max_columns=50), (",".join(f"c{i}" for i in range(5000)) + "\n").encode(),
     "f.csv", "imports.max_columns"),
    (ImportLimits(max_bytes=100_000), gz(csv_bytes(zh_rows(3000))), "f.csv.gz",
     "imports.max_bytes"),
    (ImportLimits(max_line_bytes=10_000), csv_bytes(zh_rows(3))[:-2] + b"x" * 20_000 + b"\n",
     "f.csv", "imports.max_line_bytes"),
])
def test_limits_refuse_early_naming_the_setting(sqlite_sf: sessionmaker[Session],
                                               limits: ImportLimits, data: bytes, name: str,
                                               limit: str) -> None:
    with pytest.raises(PayloadTooLarge) as exc:
        imp(sqlite_sf, data, name, limits=limits, chunk_rows=50)
    assert exc.value.extensions["limit"] == limit and limit in exc.value.detail
    assert _count(sqlite_sf) == 0 and _count(sqlite_sf, RejectedRow) == 0


def test_gzip_bomb_is_refused_by_ratio_without_spooling(sqlite_sf: sessionmaker[Session]) -> None:
    bomb = gzip.compress(b"a,b\n" + b"0" * (80 * 1024 * 1024), compresslevel=9)
    with pytest.raises(PayloadTooLarge) as exc:
        imp(sqlite_sf, bomb, "bomb.csv.gz")
    assert exc.value.extensions["limit"] == "imports.max_compression_ratio"


def test_wall_time_limit_with_an_injected_clock(sqlite_sf: sessionmaker[Session]) -> None:
    ticks = itertools.count(step=40.0)
    with pytest.raises(TooSlow) as exc:
        imp(sqlite_sf, csv_bytes(zh_rows(200)), chunk_rows=20,
             limits=ImportLimits(max_seconds=100), clock=lambda: float(next(ticks)))
    assert exc.value.status == 422 and exc.value.extensions["limit"] == "imports.max_seconds"
    assert _count(sqlite_sf) == 0


def test_long_texts_are_cut_with_a_marker(sqlite_sf: sessionmaker[Session]) -> None:
    rows = zh_rows(2)
    rows[0][6] = "很长的投诉" * 400 + "电话13912345678" + "尾" * 50
    summary = imp(sqlite_sf, csv_bytes(rows), limits=ImportLimits(max_text_chars=2005))
    assert summary.inserted == 2 and any("were cut" in w for w in summary.warnings)
    with sqlite_sf() as s:
        text = s.scalar(select(Complaint.text).where(Complaint.external_id == rows[0][0]))
    assert text is not None and text.endswith("字]") and len(text) < 2100
    assert "1391234" not in text and "139" not in text[-40:]  # no part of a number at the cut


# ------------------------------------------------------------------ staging and the lock


def _short_timeout_factory(url: str, seconds: float) -> sessionmaker[Session]:
    eng = create_engine(url, connect_args={"timeout": seconds})

    @event.listens_for(eng, "connect")
    def _pragmas(conn: Any, _record: Any) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")

    return make_sessionmaker(eng)


def test_a_long_import_does_not_hold_the_write_lock(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    from service.db import make_engine
    from service.migrate import upgrade

    upgrade(make_engine(url))
    slow = _short_timeout_factory(url, 30)
    fast = _short_timeout_factory(url, 0.5)
    load_ref(slow)
    staged, release = threading.Event(), threading.Event()
    original = pipeline._SqliteStage.write

    def write(self: Any, payload: Any, rejected: Any) -> None:
        original(self, payload, rejected)
        if self.batch_id == holder["id"]:
            staged.set()
            assert release.wait(60)

    holder: dict[str, Any] = {"id": None}
    real_create = create_batch

    def create(*a: Any, **kw: Any) -> Any:
        ref = real_create(*a, **kw)
        if holder["id"] is None:
            holder["id"] = ref.id
        return ref

    monkeypatch.setattr(pipeline._SqliteStage, "write", write)
    monkeypatch.setattr("service.ingest.pipeline.create_batch", create)
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.update(
        long=imp(slow, csv_bytes(zh_rows(400)), chunk_rows=100)))
    t.start()
    try:
        assert staged.wait(60)
        # while the long import is between chunks, another import publishes at once
        other = imp(fast, csv_bytes(zh_rows(5, prefix="OT")), source="other")
        assert other.inserted == 5
        assert _count(fast) == 5  # the long import's staged rows are not visible
    finally:
        release.set()
        t.join(60)
    assert out["long"].inserted == 400 and _count(fast) == 405


def test_a_locked_database_is_a_503_not_a_500(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    from service.db import make_engine
    from service.migrate import upgrade

    upgrade(make_engine(url))
    sf = _short_timeout_factory(url, 0.3)
    load_ref(sf)
    blocker = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(ImportBusy) as exc:
            imp(sf, csv_bytes(zh_rows(10)))
        assert exc.value.status == 503 and exc.value.headers["Retry-After"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert _count(sf) == 0
    assert imp(sf, csv_bytes(zh_rows(10)), force=True).inserted == 10


# ------------------------------------------------------------------ interrupted batches


def test_batches_of_dead_processes_become_interrupted(sqlite_sf: sessionmaker[Session]) -> None:
    host = owners.HOST
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    with sqlite_sf() as s:
        s.add_all([
            ImportBatch(id="a" * 32, kind="complaints", status="running",
                        owner=f"{host}:{dead_pid}:x", heartbeat_at=utcnow()),
            ImportBatch(id="b" * 32, kind="complaints", status="running",
                        owner=f"{host}:{os.getpid()}:{owners.PROCESS_TOKEN}",
                        heartbeat_at=utcnow()),
            ImportBatch(id="c" * 32, kind="complaints", status="queued",
                        owner="elsewhere:1:y",
                        heartbeat_at=utcnow() - pd.Timedelta(hours=2)),
            ImportBatch(id="d" * 32, kind="complaints", status="running",
                        owner="elsewhere:1:y", heartbeat_at=utcnow()),
            ImportBatch(id="e" * 32, kind="complaints", status="queued",  # waits its turn
                        owner=f"{host}:{os.getpid()}:{owners.PROCESS_TOKEN}",
                        heartbeat_at=utcnow() - pd.Timedelta(hours=2)),
        ])
        s.commit()
    dead = recover_interrupted(sqlite_sf, stale_after_seconds=600)
    assert sorted(dead) == ["a" * 32, "c" * 32]
    assert "interrupted" in (_batch(sqlite_sf, "a" * 32).error or "")
    assert _batch(sqlite_sf, "b" * 32).status == "running"  # ours, alive
    assert _batch(sqlite_sf, "d" * 32).status == "running"  # another host, recent
    assert _batch(sqlite_sf, "e" * 32).status == "queued"  # its process is alive


def test_a_running_import_keeps_this_processs_queued_batches_alive(
        sqlite_sf: sessionmaker[Session]) -> None:
    """Batches queued behind a long import have no beat of their own; the running one's beat
    is theirs too, so another host's recovery does not take them for a dead process's."""
    from service.ingest.batches import _Heartbeat

    mine = owners.process_owner()
    long_ago = utcnow() - pd.Timedelta(hours=2)
    with sqlite_sf() as s:
        s.add_all([
            ImportBatch(id="r" * 32, kind="complaints", status="running", owner=mine,
                        heartbeat_at=long_ago),
            ImportBatch(id="q" * 32, kind="complaints", status="queued", owner=mine,
                        heartbeat_at=long_ago),
            ImportBatch(id="o" * 32, kind="complaints", status="queued",
                        owner="elsewhere:1:y", heartbeat_at=long_ago),
        ])
        s.commit()
    _Heartbeat(sqlite_sf, "r" * 32).beat({"rows": 10, "bytes_read": 100}, force=True)

    def fresh(batch_id: str) -> bool:
        beat = as_utc(_batch(sqlite_sf, batch_id).heartbeat_at)
        return beat is not None and beat > utcnow() - pd.Timedelta(minutes=1)

    assert [fresh(b * 32) for b in "rqo"] == [True, True, False]  # the other host's: not ours


def test_shutdown_waits_for_the_running_import_to_record_its_interruption(
        sqlite_sf: sessionmaker[Session]) -> None:
    """The app's shutdown returns only once the running background import stopped at its next
    chunk and marked its batch failed, so the engine is disposed after the import's last
    session (the import used to finish its cleanup after shutdown had returned)."""
    records = [{"external_id": f"S{i}", "received_at": "2023-01-05T10:00:00",
                "category": "烟花爆竹", "region": "呼市", "content": "x"} for i in range(10)]
    job = records_job(kind="complaints", records=records, source="app", chunk_rows=2)
    first_chunk_read = threading.Event()
    inner = job.opener

    def opener(guard: Guard) -> TableReader:
        reader = inner(guard)
        chunks = reader.chunks()

        def gen() -> Iterator[Any]:
            yield next(chunks)
            first_chunk_read.set()
            assert job.cancel is not None and job.cancel.wait(30)  # held until the shutdown
            yield from chunks  # the next chunk meets the cancelled guard

        return TableReader(reader.format, reader.encoding, reader.headers, gen(), [])

    job.opener = opener
    executor = ImportExecutor(sqlite_sf, Settings(_env_file=None))
    executor.reserve()
    batch = pipeline.queue_import(sqlite_sf, job)
    executor.submit(batch, job)
    assert first_chunk_read.wait(30)
    executor.shutdown(timeout=30)
    stopped = _batch(sqlite_sf, batch.id)
    assert stopped.status == "failed" and "interrupted" in (stopped.error or "")
    assert _count(sqlite_sf) == 0  # nothing of it was published


def test_publishing_a_batch_marked_interrupted_is_refused(
        sqlite_sf: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    original = pipeline._SqliteStage.drop_duplicates_of_other_sources

    def meanwhile(self: Any) -> Any:
        with sqlite_sf() as s:  # another process decided this batch was dead
            s.execute(update(ImportBatch).where(ImportBatch.id == self.batch_id)
                      .values(status="failed"))
            s.commit()
        return original(self)

    monkeypatch.setattr(pipeline._SqliteStage, "drop_duplicates_of_other_sources", meanwhile)
    with pytest.raises(ImportBusy, match="interrupted"):
        imp(sqlite_sf, csv_bytes(zh_rows(10)))
    assert _count(sqlite_sf) == 0


# ------------------------------------------------------------------ the CLI


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FOREWARN_DATABASE_URL", url)
    monkeypatch.setenv("FOREWARN_LOG_JSON", "false")
    monkeypatch.setenv("FOREWARN_CATEGORIES_FILE", str(Path(__file__).parent / "fixtures" /
                                                       "categories.yaml"))
    monkeypatch.setenv("FOREWARN_REGIONS_FILE", str(Path(__file__).parent / "fixtures" /
                                                    "regions.yaml"))
    from service.cli import app

    assert CliRunner().invoke(app, ["reference", "load"]).exit_code == 0
    yield tmp_path


@pytest.mark.parametrize(("data", "name", "words"), [
    (gz(csv_bytes(zh_rows(300)))[:-40], "t.csv.gz", "truncated"),
    (csv_bytes(zh_rows(3)) + "中".encode()[:2], "tail.csv", "middle of a UTF-8 character"),
    (b'[tool]\nname = "x"\n', "pyproject.toml", "TOML"),
])
def test_cli_failures_are_one_line_and_exit_2(cli_env: Path, data: bytes, name: str,
                                              words: str) -> None:
    from service.cli import app

    f = cli_env / name
    f.write_bytes(data)
    r = CliRunner().invoke(app, ["import", "complaints", str(f), "--source", "s"])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
    assert "(batch " in lines[0]
    assert "Traceback" not in r.output and "Aborted" not in r.output


def test_cli_outcomes(cli_env: Path) -> None:
    from service.cli import app

    runner = CliRunner()
    bad = cli_env / "bad.csv"
    rows = zh_rows(3)
    for row in rows:
        row[3] = "火星"
    bad.write_bytes(csv_bytes(rows))
    r = runner.invoke(app, ["import", "complaints", str(bad), "--source", "s"])
    assert r.exit_code == 1 and "every row of the file was rejected" in r.stderr
    assert "data row 1: region: unknown_region" in r.stdout
    empty = cli_env / "empty.csv"
    empty.write_bytes(csv_bytes([]))
    r = runner.invoke(app, ["import", "complaints", str(empty), "--source", "s"])
    assert r.exit_code == 0 and "warning: the file has a header but no data rows" in r.stderr
    good = cli_env / "good.csv"
    good.write_bytes(csv_bytes(zh_rows(4)))
    assert runner.invoke(app, ["import", "complaints", str(good), "--source", "s"]) \
        .exit_code == 0
    r = runner.invoke(app, ["import", "complaints", str(good), "--source", "t"])
    assert r.exit_code == 2 and "already imported" in r.stderr and "--force" in r.stderr
    r = runner.invoke(app, ["import", "complaints", str(good), "--source", "t", "--force"])
    assert r.exit_code == 0 and "inserted 4" in r.stdout
    dates = cli_env / "dates.csv"
    dates.write_bytes(_rows(["01/02/2013", "03/04/2013"]))
    r = runner.invoke(app, ["import", "complaints", str(dates)])
    assert r.exit_code == 2 and "--date-order" in r.stderr
    r = runner.invoke(app, ["import", "complaints", str(dates), "--date-order", "dmy"])
    assert r.exit_code == 0, r.output
    assert gc.isenabled()  # the CLI's pause of the collector ended with the import
