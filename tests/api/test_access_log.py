"""``forewarn serve`` as a real process: uvicorn's access log stays off (it would write the
client address and the full query string); the service's own request line carries the route
template only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import FIXTURES, ROOT

SECRET = "13912345678"  # a phone number in a query string: personal data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_writes_no_client_address_or_query_string(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    env.update({"PYTHONPATH": str(ROOT),
                "FOREWARN_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
                "FOREWARN_LOG_LEVEL": "DEBUG", "FOREWARN_LOG_JSON": "true",
                "FOREWARN_CATEGORIES_FILE": str(FIXTURES / "categories.yaml"),
                "FOREWARN_REGIONS_FILE": str(FIXTURES / "regions.yaml")})
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--host",
                                 "127.0.0.1", "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("serve did not start:\n" + log_path.read_text(errors="replace"))
            time.sleep(0.2)
        for path in (f"/healthz?phone={SECRET}", f"/v1/series?q={SECRET}",
                     f"/v1/public/peaks?region={SECRET}"):
            httpx.get(base + path, timeout=10)
    finally:
        proc.send_signal(signal.SIGINT)  # a graceful stop flushes the log
        proc.wait(20)
    text = log_path.read_text(errors="replace")
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    served = [x for x in lines if x.get("event") == "request"]
    assert len(served) >= 3, text  # the service's own request lines were written ...
    assert {x["route"] for x in served} >= {"/healthz", "/v1/series"}
    assert SECRET not in text  # ... but no query string
    assert "127.0.0.1:" not in text.replace(f"127.0.0.1:{port}", "")  # no client address
    assert not [x for x in lines if x.get("logger") == "uvicorn.access"], text
    assert '" 200' not in text and "HTTP/1.1" not in text  # no uvicorn access line at all
