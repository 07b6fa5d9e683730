"""``forewarn serve`` as a real process: uvicorn's access log stays off (it would write the
client address and the full query string); the service's own request line carries the route
template only."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, running_server, service_env

SECRET = "13912345678"  # a phone number in a query string: personal data


@pytest.mark.slow
def test_serve_writes_no_client_address_or_query_string(tmp_path: Path) -> None:
    port = free_port()
    env = service_env(FOREWARN_DATABASE_URL=f"sqlite:///{tmp_path / 'log.db'}",
                      FOREWARN_LOG_LEVEL="DEBUG", FOREWARN_LOG_JSON="true")
    log_path = tmp_path / "serve.log"
    serve = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port",
             str(port)]
    # SIGINT: a graceful stop flushes the log
    with running_server(serve, port, env=env, cwd=tmp_path, log_path=log_path,
                        stop_signal=signal.SIGINT) as base:
        for path in (f"/healthz?phone={SECRET}", f"/v1/series?q={SECRET}",
                     f"/v1/public/peaks?region={SECRET}"):
            httpx.get(base + path, timeout=10)
    text = log_path.read_text(errors="replace")
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    served = [x for x in lines if x.get("event") == "request"]
    assert len(served) >= 3, text  # the service's own request lines were written ...
    assert {x["route"] for x in served} >= {"/healthz", "/v1/series"}
    assert SECRET not in text  # ... but no query string
    assert "127.0.0.1:" not in text.replace(f"127.0.0.1:{port}", "")  # no client address
    assert not [x for x in lines if x.get("logger") == "uvicorn.access"], text
    assert '" 200' not in text and "HTTP/1.1" not in text  # no uvicorn access line at all
