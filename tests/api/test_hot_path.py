"""The cached hot routes (issue 13) answer on the event loop: once a finished run's body is
cached, ``GET /v1/peaks`` and ``GET /v1/series/{id}/forecast`` take no thread-pool hop (a
plain ``def`` dependency such as the old ``get_language`` cost one per request)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pytest

from service.api.deps import KeyCache
from tests.api.conftest import Served, finish_newer_run


def test_cached_peaks_and_forecast_take_no_thread_hop(
    served: Served, monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, app, read, run_id, series = (served.client, served.app, served.read,
                                         served.run_id, served.series)
    app.state.key_cache = KeyCache(ttl=3600)  # as served (the test settings switch it off)
    paths = [("/v1/peaks", {"run_id": run_id}, {}),
             ("/v1/peaks", {"run_id": run_id}, {"Accept-Language": "zh-CN"}),
             (f"/v1/series/{series[0]}/forecast", {"run_id": run_id}, {})]
    first = [client.get(p, params=q, headers={**read, **h}) for p, q, h in paths]
    assert [r.status_code for r in first] == [200, 200, 200]
    # the one-second memos of the newest run and the evaluation generation stay fresh: a
    # machine that stalls between the two rounds must not turn a re-read into a "hop"
    app.state.latest_run_memo = (float("inf"), app.state.latest_run_memo[1])
    served_memo = app.state.evaluation_served.memo
    app.state.evaluation_served.memo = (float("inf"), *served_memo[1:])

    hops: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(getattr(func, "func", func), "__name__", "?"))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    again = [client.get(p, params=q, headers={**read, **h}) for p, q, h in paths]
    assert [r.content for r in again] == [r.content for r in first]
    assert again[1].headers["content-language"] == "zh"
    assert hops == []


def test_a_run_finished_by_the_app_shows_at_once(
    served: Served, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The newest finished run is remembered (``LATEST_RUN_TTL``); a run that ends in the
    app's executor drops the memo, so the next request serves it without waiting."""
    client, app, read, old_run, series = (served.client, served.app, served.read,
                                          served.run_id, served.series)
    assert {p["run_id"] for p in client.get("/v1/peaks", headers=read).json()["items"]} \
        == {old_run}
    app.state.latest_run_memo = (float("inf"), old_run)  # remembered for good, unless dropped
    assert client.get(f"/v1/series/{series[0]}/forecast", headers=read).json()["run_id"] \
        == old_run
    new = finish_newer_run(app, monkeypatch)
    assert {p["run_id"] for p in client.get("/v1/peaks", headers=read).json()["items"]} \
        == {new}
    assert client.get(f"/v1/series/{series[0]}/forecast", headers=read).json()["run_id"] \
        == new
