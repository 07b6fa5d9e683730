"""The cached hot routes (issue 13) answer on the event loop: once a finished run's body is
cached, ``GET /v1/peaks`` and ``GET /v1/series/{id}/forecast`` take no thread-pool hop (a
plain ``def`` dependency such as the old ``get_language`` cost one per request)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from service.api.deps import KeyCache
from tests.api.conftest import seed_run


def test_cached_peaks_and_forecast_take_no_thread_hop(
    api: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, keys = api
    app: Any = client.app
    app.state.key_cache = KeyCache(ttl=3600)  # as served (the test settings switch it off)
    run_id, series = seed_run(app.state.sessionmaker)
    read = {"X-API-Key": keys["read"]}
    paths = [("/v1/peaks", {"run_id": run_id}, {}),
             ("/v1/peaks", {"run_id": run_id}, {"Accept-Language": "zh-CN"}),
             (f"/v1/series/{series[0]}/forecast", {"run_id": run_id}, {})]
    first = [client.get(p, params=q, headers={**read, **h}) for p, q, h in paths]
    assert [r.status_code for r in first] == [200, 200, 200]

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
