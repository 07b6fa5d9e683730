"""REST endpoints of ingestion: uploads, JSON bodies, limits, auth, batches, rejected CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import ApiSettings, Settings
from service.errors import PROBLEM_JSON
from service.store.keys import create_key
from tests.ingest.conftest import csv_bytes, gz, load_ref, zh_rows

LIMIT = 20_000


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'api.db'}",
                        api=ApiSettings(max_body_bytes=LIMIT), log_json=False)
    app = create_app(settings)
    sf = app.state.sessionmaker
    load_ref(sf)
    keys = {}
    with sf() as s:
        for name, scopes in (("importer", ["import", "read"]), ("reader", ["read"]),
                             ("import_only", ["import"])):
            keys[name] = create_key(session=s, name=name, scopes=scopes)[1]
    with TestClient(app) as client:
        yield client, keys


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def test_upload_file_then_read_batch(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    rows = zh_rows(30)
    rows[3][2] = "=1+1"  # unknown category that a spreadsheet would evaluate
    rows[4][3] = "@SUM(A1)"
    r = client.post("/v1/complaints/import", headers=_h(keys["importer"]),
                    files={"file": ("投诉.csv", csv_bytes(rows, encoding="gb18030"), "text/csv")},
                    data={"source": "hotline", "register_new": "false",
                          "mapping": json.dumps({"text": "投诉内容"})})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["received"], body["inserted"], body["rejected"]) == (30, 28, 2)
    assert r.headers["location"] == f"/v1/import-batches/{body['batch_id']}"
    assert body["encoding"] == "gb18030" and body["filename"] == "投诉.csv"

    got = client.get(r.headers["location"], headers=_h(keys["reader"]))
    assert got.status_code == 200
    assert got.json()["status"] == "completed" and got.json()["inserted"] == 28
    assert [e["row"] for e in got.json()["errors"]] == [4, 5]

    rej = client.get(f"{r.headers['location']}/rejected", headers=_h(keys["reader"]))
    assert rej.status_code == 200 and rej.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(rej.content.decode("utf-8-sig"))))
    assert table[0][:4] == ["row", "field", "problem", "detail"]
    assert "投诉人" not in table[0] and "联系电话" not in table[0]  # personal columns dropped
    header = table[0]
    first = dict(zip(header, table[1], strict=True))
    second = dict(zip(header, table[2], strict=True))
    assert first["row"] == "4" and first["problem"] == "unknown_category"
    assert first["问题类别"] == "'=1+1" and second["所属地区"] == "'@SUM(A1)"
    assert first["detail"].startswith("'=1+1") or first["detail"].startswith("'")


def test_json_body_import(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    records = [{"external_id": "J1", "received_at": "2023-01-05T10:00:00+08:00",
                "category": "food_safety", "region": "包头市", "text": "电话13912345678"},
               {"external_id": "J2", "received_at": "nope", "category": "food_safety",
                "region": "包头市"}]
    r = client.post("/v1/complaints/import", headers=_h(keys["import_only"]),
                    json={"records": records, "source": "app"})
    assert r.status_code == 201, r.text
    assert (r.json()["inserted"], r.json()["rejected"]) == (1, 1)
    assert r.json()["errors"][0]["problem"] == "unparseable_timestamp"
    enf = client.post("/v1/enforcement-actions/import", headers=_h(keys["importer"]),
                      json={"records": [{"external_id": "E1", "occurred_at": "2023-01-05",
                                         "category": "燃气", "region": "150100",
                                         "action": "警告", "violation_found": "是"}],
                            "source": "platform"})
    assert enf.status_code == 201 and enf.json()["kind"] == "enforcement"
    assert enf.json()["inserted"] == 1
    lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
    nd = client.post("/v1/complaints/import?source=app", content=lines,
                     headers={**_h(keys["importer"]), "Content-Type": "application/x-ndjson"})
    assert nd.status_code == 201, nd.text
    assert (nd.json()["duplicates"], nd.json()["rejected"], nd.json()["format"]) == (
        1, 1, "jsonl")


def test_too_large_uploads_get_413(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    big = csv_bytes(zh_rows(400))
    assert len(big) > LIMIT
    r = client.post("/v1/complaints/import", headers=_h(keys["importer"]),
                    files={"file": ("big.csv", big, "text/csv")})
    assert r.status_code == 413
    assert r.headers["content-type"] == PROBLEM_JSON

    def stream() -> Iterator[bytes]:  # no Content-Length: the streamed bytes are counted
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    r = client.post("/v1/complaints/import",
                    headers={**_h(keys["importer"]), "Content-Type": "application/json"},
                    content=stream())
    assert r.status_code == 413, r.text
    assert "exceeds" in r.json()["detail"]


def test_unsupported_and_unparseable_uploads(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    h = _h(keys["importer"])
    r = client.post("/v1/complaints/import", headers={**h, "Content-Type": "text/plain"},
                    content=b"hello")
    assert r.status_code == 415 and r.headers["content-type"] == PROBLEM_JSON
    r = client.post("/v1/complaints/import", headers=h,
                    files={"file": ("scan.pdf", b"%PDF-1.7 ...", "application/pdf")})
    assert r.status_code == 415
    r = client.post("/v1/complaints/import", headers=h,
                    files={"file": ("a.csv", "日期,内容\n2023-01-01,x\n".encode(), "text/csv")},
                    data={"source": "s"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON
    problem = r.json()
    assert "received_at" in problem["detail"] or "category" in problem["detail"]
    assert problem["headers"] == ["日期", "内容"]
    r = client.post("/v1/complaints/import", headers=h,
                    files={"file": ("a.csv", b"a,b\n", "text/csv")}, data={"mapping": "{bad"})
    assert r.status_code == 400
    r = client.post("/v1/complaints/import", headers=h, json={"rows": []})
    assert r.status_code == 400
    r = client.post("/v1/complaints/import", headers=h, data={"source": "x"},
                    files={"other": ("a.csv", b"a\n", "text/csv")})
    assert r.status_code == 400


HOSTILE = [  # (what, request, status, words of the detail); each was a 500 or worse
    ("a JSON array nested 9,000 deep (ijson.items' memory grew with its square: 24 GB for "
     "100,000 levels, the server was killed)",
     {"files": {"file": ("d.json", b"[" * 9000 + b"]" * 9000, "application/json")}},
     422, "nested deeper than 32 levels"),
    ("JSON Lines nested past the parser's recursion limit",
     {"content": b"[" * 2000 + b"]" * 2000 + b"\n",
      "headers": {"Content-Type": "application/x-ndjson"}},
     422, "every row of the file was rejected"),
    ("a CSV whose quote is never closed",
     {"files": {"file": ("q.csv", b'received_at,category,region\n"2026-11-01,fireworks,1\n',
                         "text/csv")}},
     422, "the CSV cannot be parsed"),
    ("a codec that is not a text encoding",
     {"files": {"file": ("ok.csv", b"received_at,category,region\n", "text/csv")},
      "data": {"encoding": "rot13"}},
     400, "unknown text encoding 'rot13'"),
]


@pytest.mark.parametrize(("what", "request_kw", "status", "words"), HOSTILE,
                         ids=[h[0].split(" (")[0] for h in HOSTILE])
def test_hostile_uploads_get_a_problem_not_a_crash(
        api: tuple[TestClient, dict[str, str]], what: str, request_kw: dict[str, Any],
        status: int, words: str) -> None:
    client, keys = api
    kw = {**request_kw, "headers": {**_h(keys["importer"]), **request_kw.get("headers", {})}}
    kw.setdefault("data", {})["source"] = "fuzz"
    for path in ("/v1/complaints/import", "/v1/enforcement-actions/import"):
        r = client.post(path, **kw)
        assert r.status_code == status, (what, r.text)
        assert r.headers["content-type"] == PROBLEM_JSON and words in r.json()["detail"], what


def test_auth_on_every_endpoint(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    payload = {"records": [], "source": "s"}
    for path in ("/v1/complaints/import", "/v1/enforcement-actions/import"):
        assert client.post(path, json=payload).status_code == 401
        assert client.post(path, json=payload, headers=_h("fw_bad_key")).status_code == 401
        denied = client.post(path, json=payload, headers=_h(keys["reader"]))
        assert denied.status_code == 403 and denied.headers["content-type"] == PROBLEM_JSON
    ok = client.post("/v1/complaints/import", json=payload, headers=_h(keys["importer"]))
    assert ok.status_code == 201
    url = ok.headers["location"]
    for path in (url, f"{url}/rejected"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=_h(keys["import_only"])).status_code == 403
        assert client.get(path, headers=_h(keys["reader"])).status_code == 200
    missing = client.get("/v1/import-batches/nope/rejected", headers=_h(keys["reader"]))
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM_JSON


def test_openapi_documents_import_problems(api: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = api
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/complaints/import"]["post"]
    for code in ("201", "400", "401", "403", "413", "415", "422"):
        assert code in op["responses"], code
    assert set(op["requestBody"]["content"]) == {"multipart/form-data", "application/json",
                                                 "application/x-ndjson"}
    rejected = spec["paths"]["/v1/import-batches/{batch_id}/rejected"]["get"]
    assert "text/csv" in rejected["responses"]["200"]["content"]
    assert "404" in spec["paths"]["/v1/import-batches/{batch_id}"]["get"]["responses"]


def test_api_imports_never_pause_the_collector(api: tuple[TestClient, dict[str, str]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    def refuse() -> None:
        raise AssertionError("gc.disable() inside the API server")

    monkeypatch.setattr(gc, "disable", refuse)
    client, keys = api
    r = client.post("/v1/complaints/import", headers=_h(keys["importer"]),
                    files={"file": ("a.csv", csv_bytes(zh_rows(20)), "text/csv")},
                    data={"source": "s"})
    assert r.status_code == 201, r.text


def test_outcomes_over_the_api(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    h = _h(keys["importer"])
    rows = zh_rows(4, prefix="RJ")
    for row in rows:
        row[3] = "火星"
    r = client.post("/v1/complaints/import", headers=h, data={"source": "s"},
                    files={"file": ("bad.csv", csv_bytes(rows), "text/csv")})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON
    problem = r.json()
    assert problem["rejected"] == 4 and problem["row_errors"][0]["problem"] == "unknown_region"
    batch = client.get(f"/v1/import-batches/{problem['batch_id']}", headers=h).json()
    assert batch["status"] == "rejected" and batch["rejected"] == 4
    empty = client.post("/v1/complaints/import", headers=h, data={"source": "s"},
                        files={"file": ("empty.csv", csv_bytes([]), "text/csv")})
    assert empty.status_code == 201 and "no data rows" in empty.json()["warnings"][0]
    broken = client.post("/v1/complaints/import", headers=h, data={"source": "s"},
                         files={"file": ("t.csv.gz", gz(csv_bytes(zh_rows(50)))[:-20],
                                         "application/gzip")})
    assert broken.status_code == 422 and broken.json()["batch_id"]
    failed = client.get(f"/v1/import-batches/{broken.json()['batch_id']}", headers=h).json()
    assert failed["status"] == "failed" and "truncated" in failed["error"]


def test_background_import_over_the_api(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    h = _h(keys["importer"])
    r = client.post("/v1/complaints/import", headers={**h, "Prefer": "respond-async"},
                    data={"source": "bg"},
                    files={"file": ("bg.csv", csv_bytes(zh_rows(40, prefix="BG")), "text/csv")})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"  # as accepted, however fast the worker is
    client.app.state.import_executor.wait(120)  # type: ignore[attr-defined]
    batch = client.get(r.headers["location"], headers=h).json()
    assert (batch["status"], batch["inserted"], batch["progress"]) == ("completed", 40, None)
    again = client.post("/v1/complaints/import", headers={**h, "Prefer": "respond-async"},
                        data={"source": "other"},
                        files={"file": ("bg.csv", csv_bytes(zh_rows(40, prefix="BG")),
                                        "text/csv")})
    assert again.status_code == 409  # refused at once, before queueing
    assert again.json()["existing_batch_id"] == batch["batch_id"]
