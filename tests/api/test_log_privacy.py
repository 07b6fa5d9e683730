"""A realistic session leaves no phone number, ID number or API key in the logs.

Keys are created with the CLI, complaints with phone and ID numbers in the text and in
personal columns are imported through the API (a file and JSON records, some rows rejected
because a personal value sits where a category should be), then forecasts are read, campaigns
planned, created, approved and cancelled, the rejected rows exported, bad keys tried and an
internal error provoked — with JSON logging at DEBUG to a captured stream, which is then
grepped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.app import create_app
from service.cli import app as cli_app
from service.config import ApiSettings, Settings
from service.logging import configure_logging
from tests.api.conftest import seed_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PHONES = ["13912345678", "15047112233", "18604719988"]
IDS = ["150102198807071234", "15010219900101123X"]
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")
API_KEY = re.compile(r"fw_[0-9a-f]{8}_")
HEX_ID = re.compile(r"[0-9a-f]{32}")  # request, batch, run and campaign ids


def _csv() -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["工单编号", "受理时间", "问题类别", "所属地区", "投诉内容", "投诉人",
                "联系电话", "身份证号"])
    for i in range(30):
        phone, idn = PHONES[i % 3], IDS[i % 2]
        category = phone if i % 10 == 0 else "烟花爆竹"  # a personal value where it must not be
        w.writerow([f"GD{i:05d}", f"2024-0{1 + i % 6}-1{i % 9} 10:00", category, "呼和浩特市",
                    f"来电{phone}，身份证{idn}，反映楼下燃放烟花", "张三", phone, idn])
    return buf.getvalue().encode("utf-8")


def test_logs_hold_no_phone_id_number_or_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    env = {"FOREWARN_DATABASE_URL": url, "FOREWARN_LOG_JSON": "true",
           "FOREWARN_LOG_LEVEL": "DEBUG",
           "FOREWARN_CATEGORIES_FILE": str(FIXTURES / "categories.yaml"),
           "FOREWARN_REGIONS_FILE": str(FIXTURES / "regions.yaml")}
    runner = CliRunner()
    assert runner.invoke(cli_app, ["reference", "load"], env=env).exit_code == 0
    keys: dict[str, str] = {}
    cli_logs = []
    for scope in ("read", "import", "plan", "approve", "admin"):
        res = runner.invoke(cli_app, ["keys", "create", "--name", f"{scope}-bot",
                                      "--scopes", scope], env=env)
        assert res.exit_code == 0, res.output
        keys[scope] = res.stdout.strip().splitlines()[0]
        cli_logs.append(res.stderr)
    listed = runner.invoke(cli_app, ["keys", "list", "--json"], env=env)
    revoked = runner.invoke(cli_app, ["keys", "revoke", keys["read"].split("_")[1]], env=env)
    assert revoked.exit_code == 0 and keys["read"] not in listed.stdout
    res = runner.invoke(cli_app, ["keys", "create", "--name", "reader", "--scopes", "read"],
                        env=env)
    keys["read"] = res.stdout.strip().splitlines()[0]

    configure_logging("DEBUG", json=True)
    # the test client's own request log (httpx2) is not the service's; the service mutes httpx
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    settings = Settings(_env_file=None, database_url=url, log_json=True, log_level="DEBUG",
                        categories_file=FIXTURES / "categories.yaml",
                        regions_file=FIXTURES / "regions.yaml",
                        api=ApiSettings(key_cache_seconds=0),
                        channels={"file_dir": tmp_path / "outbox"})
    h = {scope: {"X-API-Key": k} for scope, k in keys.items()}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        r = client.post("/v1/complaints/import", headers=h["import"],
                        files={"file": ("投诉.csv", _csv(), "text/csv")},
                        data={"source": "12345热线"})
        assert r.status_code == 201 and r.json()["rejected"] == 3, r.text
        batch = r.json()["batch_id"]
        r = client.post("/v1/complaints/import", headers=h["import"], json={
            "source": "hotline", "records": [
                {"external_id": "J1", "received_at": "2024-02-01 09:00", "category": IDS[0],
                 "region": "150100", "text": f"call {PHONES[1]}", "phone": PHONES[1]},
                {"external_id": "J2", "received_at": "2024-02-02 09:00",
                 "category": "fireworks", "region": "150100",
                 "text": f"ID {IDS[1]} phone {PHONES[2]}", "complainant": "李四"}]})
        assert r.status_code == 201, r.text
        rejected = client.get(f"/v1/import-batches/{batch}/rejected", headers=h["read"])
        assert rejected.status_code == 200 and PHONES[0] not in rejected.text
        run_id, series = seed_run(client.app.state.sessionmaker,  # type: ignore[attr-defined]
                                  n_series=2)
        assert client.get(f"/v1/series/{series[0]}/forecast", headers=h["read"]).status_code == 200
        assert client.get("/v1/peaks", headers=h["read"]).status_code == 200
        assert client.post("/v1/campaigns/plan", headers=h["plan"], json={}).status_code == 200
        day = dt.date.today() + dt.timedelta(days=40)
        c = client.post("/v1/campaigns", headers=h["plan"], json={
            "category": "fireworks", "region": "150100", "window_start": str(day),
            "window_end": str(day + dt.timedelta(days=6)), "notes": f"tel {PHONES[0]}",
            "title": f"提示 {IDS[0]}"})
        assert c.status_code == 201, c.text
        cid = c.json()["id"]
        assert client.post(f"/v1/campaigns/{cid}/approve", headers=h["approve"],
                           json={"note": f"approved, call {PHONES[1]}"}).status_code == 200
        assert client.post(f"/v1/campaigns/{cid}/cancel", headers=h["approve"],
                           json={"reason": f"complainant {IDS[1]} withdrew"}).status_code == 200
        # personal data in query strings and paths, wrong and malformed keys
        client.get("/v1/series", params={"category": PHONES[2]}, headers=h["admin"])
        client.get(f"/v1/series/complaints|{PHONES[0]}|150100/counts", headers=h["read"])
        client.get(f"/v1/campaigns/{IDS[0]}", headers=h["read"])
        client.get("/v1/series", headers={"X-API-Key": keys["admin"][:-3] + "xyz"})
        client.get("/v1/series", headers={"X-API-Key": f"fw_{PHONES[0]}"})
        client.post("/v1/campaigns/plan", headers=h["read"], json={})
        client.post("/v1/forecast-runs", headers=h["plan"], content=f"{{{PHONES[0]}".encode())
        client.get("/metrics", headers=h["read"])

        def boom(**_: object) -> None:
            raise RuntimeError(f"row with {PHONES[2]} and {IDS[0]} broke")

        import service.api.routes.campaigns as routes

        monkeypatch.setattr(routes, "get_campaign", boom)
        assert client.get(f"/v1/campaigns/{cid}", headers=h["read"]).status_code == 500
        client.get("/readyz")

    out = capsys.readouterr()
    logs = out.err + out.out + "".join(cli_logs)
    assert '"request"' in logs and '"import_finished"' in logs  # JSON lines were captured
    assert run_id and keys["admin"] not in logs
    cleaned = HEX_ID.sub("<id>", logs)
    assert not MOBILE.findall(cleaned)
    assert not ID_NUMBER.findall(cleaned)
    assert not API_KEY.findall(cleaned) and "fw_" not in cleaned
    for secret in (*PHONES, *IDS, "张三", "李四"):
        assert secret not in logs
