"""``GET /v1/import-batches`` and ``GET /v1/forecast-runs``: newest first, filtered, and
cursor pages that neither repeat nor skip."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.store.tables import ForecastRun, ImportBatch


def test_import_batches_and_forecast_runs(api: tuple[TestClient, dict[str, str]],
                                          settings: Settings) -> None:
    client, keys = api
    h = {"X-API-Key": keys["read"]}
    t0 = dt.datetime(2027, 1, 4, 2, tzinfo=dt.UTC)
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as s:
        for i in range(7):
            s.add(ImportBatch(kind="complaints" if i % 2 else "enforcement",
                              source="12345" if i < 4 else "chicago", filename=f"f{i}.csv",
                              status="failed" if i == 3 else "completed", received=10,
                              inserted=10 - i, rejected=i, started_at=t0 + dt.timedelta(hours=i)))
        for i in range(5):
            s.add(ForecastRun(status="succeeded" if i != 2 else "failed", engine="serial",
                              horizon_days=182, requested_by="scheduler" if i % 2 else "cli",
                              created_at=t0 + dt.timedelta(days=i)))
        s.commit()
    engine.dispose()
    ids, cursor = [], None
    while True:
        url = "/v1/import-batches?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=h).json()
        ids += [b["filename"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == [f"f{i}.csv" for i in range(6, -1, -1)]  # newest first, each once
    q = client.get("/v1/import-batches?kind=complaints&source=12345", headers=h).json()
    assert [b["filename"] for b in q["items"]] == ["f3.csv", "f1.csv"]
    failed = client.get("/v1/import-batches?status=failed", headers=h).json()["items"]
    assert [b["filename"] for b in failed] == ["f3.csv"]
    rej = client.get("/v1/import-batches?with_rejections=true&since=2027-01-04T05:00:00Z",
                     headers=h).json()["items"]
    assert [b["filename"] for b in rej] == ["f6.csv", "f5.csv", "f4.csv", "f3.csv"]
    assert rej[0]["started_at"].endswith("Z") or rej[0]["started_at"].endswith("+00:00")
    with_rej = client.get("/v1/import-batches?with_rejections=true", headers=h).json()["items"]
    assert [b["filename"] for b in with_rej] == [f"f{i}.csv" for i in range(6, 0, -1)]  # not f0
    runs = client.get("/v1/forecast-runs?limit=2", headers=h).json()
    second = client.get(f"/v1/forecast-runs?limit=2&cursor={runs['next_cursor']}",
                        headers=h).json()
    days = [r["created_at"][:10] for r in runs["items"] + second["items"]]
    assert days == ["2027-01-08", "2027-01-07", "2027-01-06", "2027-01-05"]
    assert [r["status"] for r in client.get("/v1/forecast-runs?status=failed",
                                            headers=h).json()["items"]] == ["failed"]
    by_cli = client.get("/v1/forecast-runs?requested_by=cli", headers=h).json()["items"]
    assert len(by_cli) == 3
    assert client.get("/v1/forecast-runs?cursor=bogus", headers=h).status_code == 422
    assert client.get("/v1/import-batches?status=nope", headers=h).status_code == 422
