"""Hostile uploads against a real API server (issue 12, "Measured").

A ``uvicorn`` process serves a fresh SQLite database. Each case of the issue -- and a few more
-- is uploaded; every answer must come within 60 s, be no 5xx, write no record for a bad
file, and name its batch or limit. At the end the server must still be healthy, its peak
resident memory (``VmHWM``) under 1.5 GB, and no batch left ``queued`` or ``running``. Then
the server is killed (SIGKILL) in the middle of a background import and restarted: the batch
becomes ``failed`` ("interrupted") with nothing of it published.

The limits the server runs with are injected through the environment (``FOREWARN_IMPORTS__*``)
so that hostile files hit them in seconds on a busy machine; the 60 s bound is generous.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.db import make_engine, make_sessionmaker
from service.migrate import upgrade
from service.store.keys import create_key
from tests.ingest.conftest import REF, ROOT, ZH_HEADER, csv_bytes, gz, load_ref, zh_rows
from tests.servers import free_port

ANSWER_SECONDS = 60.0
MAX_RSS_MB = 1536
LIMITS = {
    "FOREWARN_IMPORTS__MAX_ROWS": "200000",
    "FOREWARN_IMPORTS__MAX_COLUMNS": "1000",
    "FOREWARN_IMPORTS__MAX_SECONDS": "300",
    "FOREWARN_IMPORTS__MAX_TEXT_CHARS": "20000",
    "FOREWARN_IMPORTS__BACKGROUND_ABOVE_BYTES": str(4 * 1024 * 1024),
    "FOREWARN_API__MAX_BODY_BYTES": str(96 * 1024 * 1024),
    "FOREWARN_API__RATE_LIMIT_PER_MINUTE": "100000",
}


@dataclass
class Server:
    url: str
    key: str
    db: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.key},
                            timeout=ANSWER_SECONDS)

    def records(self) -> int:
        with sqlite3.connect(self.db) as conn:
            return int(conn.execute("SELECT count(*) FROM complaints").fetchone()[0])

    def unfinished(self) -> list[str]:
        with sqlite3.connect(self.db) as conn:
            return [r[0] for r in conn.execute(
                "SELECT id FROM import_batches WHERE status IN ('queued', 'running')")]

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")


def _start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.api.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not come up within 120 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hostile")
    db = tmp / "hostile.db"
    url = f"sqlite:///{db}"
    eng = make_engine(url)
    upgrade(eng)
    sf = make_sessionmaker(eng)
    load_ref(sf)
    with sf() as s:
        key = create_key(session=s, name="hostile", scopes=["import", "read"])[1]
    eng.dispose()
    port = free_port()
    env = {**os.environ, **LIMITS, "FOREWARN_DATABASE_URL": url, "FOREWARN_LOG_JSON": "false",
           "FOREWARN_LOG_LEVEL": "WARNING", "FOREWARN_CATEGORIES_FILE":
           str(REF / "categories.yaml"), "FOREWARN_REGIONS_FILE": str(REF / "regions.yaml")}
    srv = Server(f"http://127.0.0.1:{port}", key, db, env, _start(env, port))
    yield srv
    srv.proc.kill()
    srv.proc.wait(30)


def _post(srv: Server, data: bytes, name: str, **fields: str) -> httpx.Response:
    t0 = time.monotonic()
    with srv.client() as c:
        r = c.post("/v1/complaints/import", files={"file": (name, data)},
                   data={"source": "hostile", **fields})
    assert time.monotonic() - t0 < ANSWER_SECONDS
    assert r.status_code < 500, r.text
    return r


def _outcome(srv: Server, r: httpx.Response) -> dict[str, Any]:
    """The batch of a 202, once it finished (polled; the bound is generous), else the body."""
    if r.status_code != 202:
        body: dict[str, Any] = r.json()
        return body
    deadline = time.monotonic() + 240
    with srv.client() as c:
        while time.monotonic() < deadline:
            batch: dict[str, Any] = c.get(r.headers["location"]).json()
            if batch["status"] not in ("queued", "running"):
                return batch
            time.sleep(0.5)
    raise AssertionError(f"batch {r.headers['location']} did not finish")


# ------------------------------------------------------------------ hostile files


def _xlsx_rows(n: int, cell: Callable[[int], str], *, dimension: str | None = None) -> bytes:
    """A minimal workbook written directly (fast): a header row and ``n`` rows."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", (
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxml'
            'formats-package.relationships+xml"/><Default Extension="xml" ContentType="'
            'application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application'
            '/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override '
            'PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxml'
            'formats-officedocument.spreadsheetml.worksheet+xml"/></Types>'))
        z.writestr("_rels/.rels", (
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
            'openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/'
            'workbook.xml"/></Relationships>'))
        z.writestr("xl/workbook.xml", (
            '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/'
            'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" '
            'r:id="rId1"/></sheets></workbook>'))
        z.writestr("xl/_rels/workbook.xml.rels", (
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
            'openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="'
            'worksheets/sheet1.xml"/></Relationships>'))
        with z.open("xl/worksheets/sheet1.xml", "w") as w:
            w.write(b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/'
                    b'spreadsheetml/2006/main">')
            if dimension:
                w.write(f'<dimension ref="{dimension}"/>'.encode())
            w.write(b"<sheetData>")
            head = "".join(f'<c t="inlineStr"><is><t>{h}</t></is></c>' for h in
                           ("受理时间", "问题类别", "所属地区"))
            w.write(f'<row r="1">{head}</row>'.encode())
            block = []
            for i in range(2, n + 2):
                block.append(f'<row r="{i}">{cell(i)}</row>')
                if len(block) == 10_000:
                    w.write("".join(block).encode())
                    block = []
            w.write("".join(block).encode())
            w.write(b"</sheetData></worksheet>")
    return buf.getvalue()


def _hostile_cases() -> list[tuple[str, Callable[[], bytes], str, dict[str, str], int, str]]:
    """``(case, bytes (built when the case runs), filename, form fields, status, words in
    the answer)``."""
    def header_only() -> bytes:
        return csv_bytes([])

    def corrupt_sheet() -> bytes:
        """A workbook whose sheet's compressed data is damaged mid-way (a bad CRC or a
        broken deflate stream as the sheet is read; was a 500)."""
        data = bytearray(_xlsx_rows(5000, lambda i: f"<c><v>{i}</v></c>"))
        at = data.index(b"xl/worksheets/sheet1.xml") + 600
        data[at:at + 40] = bytes(40)
        return bytes(data)

    def rejected() -> bytes:
        return csv_bytes([[*r[:3], "火星", *r[4:]] for r in zh_rows(20, prefix="RJ")])

    def utf8() -> bytes:
        return csv_bytes(zh_rows(40, prefix="U8"))

    def late_bad() -> bytes:
        return csv_bytes(zh_rows(8000, prefix="LB")) + b"LBX,2023-01-05,\xfe,x,y,z,w,v,u\r\n"

    def ambiguous() -> bytes:
        return csv_bytes([[f"AM{i}", f"0{i % 9 + 1}/0{i % 8 + 1}/2013", "烟花爆竹", "呼市",
                           "", "", "", "", ""] for i in range(30)])

    far = '<c r="XFD1" t="inlineStr"><is><t>x</t></is></c>'
    return [
        ("header only", header_only, "empty.csv", {}, 201, "no data rows"),
        ("every row rejected", rejected, "rejected.csv", {}, 422, "every row"),
        ("toml", lambda: b'[server]\nhost = "0.0.0.0"\nport = 8000\n', "config.toml", {},
         415, "TOML"),
        ("truncated gzip", lambda: gz(utf8())[:-30], "t.csv.gz", {}, 422, "truncated"),
        ("corrupt gzip", lambda: gz(utf8())[:50] + b"\x00junk" * 100, "c.csv.gz", {}, 422,
         "corrupt"),
        ("incomplete multibyte tail", lambda: utf8() + "中".encode()[:2], "tail.csv", {}, 422,
         "middle of a UTF-8 character"),
        ("invalid UTF-8 in the sample", lambda: utf8().replace("楼下".encode(), b"\xff", 1),
         "m.csv", {}, 422, "byte offset"),
        ("a bad byte later on", late_bad, "late.csv", {}, 422, "line 8002"),
        ("ambiguous day/month", ambiguous, "dates.csv", {}, 422, "--date-order"),
        ("unknown date order", header_only, "x.csv", {"date_order": "dym"}, 400,
         "date_order"),
        ("unknown encoding", header_only, "x.csv", {"encoding": "klingon"}, 400, "encoding"),
        ("gzip bomb", lambda: gzip.compress(b"a,b\n" + b"0" * (96 * 1024 * 1024),
                                            compresslevel=9),
         "bomb.csv.gz", {}, 413, "imports.max_compression_ratio"),
        ("million-column header", lambda: (",".join(f"c{i}" for i in range(1_000_000))
                                           + "\n1\n").encode(),
         "wide.csv", {}, 413, "imports.max_columns"),
        ("XLSX with 3 million rows", lambda: _xlsx_rows(3_000_000, lambda i: "<c><v>1</v></c>"),
         "big.xlsx", {}, 413, "imports.max_rows"),
        ("XLSX of whitespace", lambda: _xlsx_rows(1_000_000, lambda i: (
            '<c t="inlineStr"><is><t xml:space="preserve">   </t></is></c>'),
            dimension="A1:XFD1048576"), "blank.xlsx", {}, 413, "imports.max_rows"),
        ("XLSX with a cell in column XFD", lambda: _xlsx_rows(10, lambda i: far),
         "far.xlsx", {}, 413, "imports.max_columns"),
        ("not an XLSX", lambda: b"PK\x03\x04" + b"\x00" * 200, "broken.xlsx", {}, 422,
         "XLSX"),
        ("XLSX whose sheet is corrupt", corrupt_sheet, "crc.xlsx", {}, 422, "XLSX"),
        ("XLSX row of 5 million empty cells", lambda: _xlsx_rows(1, lambda i: "<c/>" * 5_000_000),
         "widerow.xlsx", {}, 413, "cells (imports.max_columns)"),
        ("binary", lambda: bytes(range(256)) * 40, "blob.csv", {}, 415, "binary"),
    ]


CASES = _hostile_cases()


@pytest.mark.parametrize(("case", "data", "name", "fields", "status", "words"), CASES,
                         ids=[c[0] for c in CASES])
def test_hostile_upload(server: Server, case: str, data: Callable[[], bytes], name: str,
                        fields: dict[str, str], status: int, words: str) -> None:
    before = server.records()
    r = _post(server, data(), name, **fields)
    body = _outcome(server, r)
    if r.status_code == 202:  # ran in the background: the batch tells the outcome
        assert body["status"] == "failed" and words in (body["error"] or ""), body
        assert status in (413, 422, 415)
    else:
        assert r.status_code == status, r.text
        text = str(body.get("detail", "")) + " ".join(body.get("warnings", []))
        assert words in text, body
        if status in (413, 415, 422):
            assert r.headers["content-type"] == "application/problem+json"
            assert body["batch_id"]
    assert server.records() == before  # a bad file writes nothing


def test_same_file_again_is_refused(server: Server) -> None:
    data = csv_bytes(zh_rows(30, prefix="SAME"))
    first = _post(server, data, "same.csv")
    assert first.status_code == 201
    again = _post(server, data, "renamed.csv", source="another")
    assert again.status_code == 409
    assert again.json()["existing_batch_id"] == first.json()["batch_id"]
    forced = _post(server, data, "renamed.csv", source="another", force="true")
    assert forced.status_code == 201 and forced.json()["inserted"] == 30


def test_a_30_million_character_text_is_cut(server: Server) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(ZH_HEADER)
    w.writerow(["HUGE1", "2023-01-05 10:00", "烟花爆竹", "呼市", "", "", "x" * 30_000_000,
                "", ""])
    data = buf.getvalue().encode()
    r = _post(server, data, "huge.csv")
    body = _outcome(server, r)
    assert body["status"] == "completed" and body["inserted"] == 1, body
    assert any("were cut" in w for w in body["warnings"])
    with sqlite3.connect(server.db) as conn:
        length = conn.execute("SELECT length(text) FROM complaints WHERE external_id = 'HUGE1'"
                              ).fetchone()[0]
    assert 20_000 <= length < 20_100


def test_concurrent_large_imports_and_a_small_one(server: Server) -> None:
    import concurrent.futures as cf

    big = [csv_bytes(zh_rows(60_000, prefix=f"CC{k}")) for k in range(2)]
    assert all(len(b) > 4 * 1024 * 1024 for b in big)
    with cf.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(_post, server, b, f"big{k}.csv") for k, b in enumerate(big)]
        small = pool.submit(_post, server, csv_bytes(zh_rows(50, prefix="SM")), "small.csv")
        answers = [f.result() for f in futures]
        assert small.result().status_code == 201
    assert [a.status_code for a in answers] == [202, 202]
    outcomes = [_outcome(server, a) for a in answers]
    assert [(o["status"], o["inserted"]) for o in outcomes] == [("completed", 60_000)] * 2


def test_the_server_is_healthy_small_and_idle(server: Server) -> None:
    with server.client() as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
    assert server.unfinished() == []
    assert server.peak_rss_mb() < MAX_RSS_MB


def test_a_crash_mid_import_leaves_an_interrupted_batch(server: Server) -> None:
    before = server.records()
    data = csv_bytes(zh_rows(190_000, prefix="CRASH"))
    with server.client() as c:
        r = c.post("/v1/complaints/import", files={"file": ("crash.csv", data)},
                   data={"source": "hostile"}, headers={"Prefer": "respond-async"})
        assert r.status_code == 202
        url = r.headers["location"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until it is reading
            batch = c.get(url).json()
            if batch["status"] == "running" and (batch["progress"] or {}).get("rows", 0) > 0:
                break
            assert batch["status"] in ("queued", "running"), batch
            time.sleep(0.1)
        else:
            raise AssertionError("the import never showed progress")
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)
    port = int(server.url.rsplit(":", 1)[1])
    server.proc = _start(server.env, port)  # start-up marks the batch interrupted
    with server.client() as c:
        batch = c.get(url).json()
    assert batch["status"] == "failed" and "interrupted" in batch["error"], batch
    assert server.records() == before
    assert server.unfinished() == []
