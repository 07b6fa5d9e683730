"""``/readyz`` reports the scheduler lease; ``/metrics`` adds database gauges (both backends)."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.dispatch.tables import Outbox
from service.scheduler.leadership import make_leadership
from service.store.tables import utcnow
from tests.api.conftest import seed_run


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a metric family is exposed twice"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families for s in f.samples}


def test_readyz_and_metrics_report_lease_outbox_campaigns_and_runs(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, keys = api
    state = client.app.state  # type: ignore[attr-defined]
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["scheduler"] == {"holder": None, "expires_at": None,
                                               "alive": False}

    run_id, _ = seed_run(state.sessionmaker, n_series=3)
    # the leadership this backend uses (PostgreSQL: the advisory lock, which ``alive`` asks)
    leader = make_leadership(state.engine, holder="node-a:1:abc", lease_seconds=30,
                             advisory_lock_key=state.settings.scheduler.advisory_lock_key)
    try:
        assert leader.try_acquire()
        now = utcnow()
        with state.sessionmaker() as s:
            for i, (status, due) in enumerate([("pending", now - dt.timedelta(seconds=120)),
                                               ("retrying", now + dt.timedelta(hours=1)),
                                               ("delivered", now), ("dead", now)]):
                s.add(Outbox(idempotency_key=f"msg_{i}", campaign_id="c1", channel="file",
                             recipient_id=f"r{i}", destination="public", status=status,
                             next_attempt_at=due))
            s.commit()
        day = dt.date.today() + dt.timedelta(days=60)
        r = client.post("/v1/campaigns", headers={"X-API-Key": keys["plan"]},
                        json={"category": "fireworks", "region": "150100", "window_start": str(day),
                              "window_end": str(day + dt.timedelta(days=13))})
        assert r.status_code == 201, r.text

        ready = client.get("/readyz").json()
        assert ready["status"] == "ready"
        lease = ready["checks"]["scheduler"]
        assert lease["holder"] == "node-a:1:abc" and lease["alive"] is True
        assert dt.datetime.fromisoformat(lease["expires_at"]) > now

        r = client.get("/metrics", headers={"X-API-Key": keys["read"]})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        m = _samples(r.text)
        assert m[("forewarn_db_up", ())] == 1
        assert m[("forewarn_scheduler_leader", (("holder", "node-a:1:abc"),))] == 1
        assert m[("forewarn_scheduler_lease_expires_timestamp_seconds", ())] > now.timestamp()
        assert m[("forewarn_outbox_depth", ())] == 2
        assert 110 <= m[("forewarn_outbox_lag_seconds", ())] < 600
        assert m[("forewarn_outbox_rows", (("status", "delivered"),))] == 1
        assert m[("forewarn_outbox_rows", (("status", "dead"),))] == 1
        assert m[("forewarn_outbox_rows", (("status", "cancelled"),))] == 0
        assert m[("forewarn_campaigns", (("status", "draft"),))] == 1
        assert m[("forewarn_forecast_runs_stored", (("status", "succeeded"),))] == 1
        assert m[("forewarn_latest_run_peaks", ())] == 6
        # process-wide counters and histograms come along in the same exposition
        assert any(name == "forewarn_http_requests_total" for name, _ in m)
        assert ("forewarn_peaks_found_total", ()) in m
        assert any(name == "forewarn_series_fit_seconds_count" for name, _ in m)
        assert run_id
    finally:
        leader.release()
    assert client.get("/readyz").json()["checks"]["scheduler"]["alive"] is False


def test_many_apps_in_one_process_do_not_clash(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    from service.api.app import create_app

    client, keys = api
    settings = client.app.state.settings  # type: ignore[attr-defined]
    for _ in range(2):
        with TestClient(create_app(settings)) as other:
            r = other.get("/metrics", headers={"X-API-Key": keys["admin"]})
            assert r.status_code == 200 and "forewarn_outbox_depth 0.0" in r.text
