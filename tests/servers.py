"""The service as a real process for tests that need one (browser, log, hostile-input tests).

:func:`running_server` starts a command that serves HTTP on ``port``, waits until ``ready``
answers 200 (or the process exits: the test fails with its log), yields the base URL and
stops the process afterwards (``stop_signal``; SIGINT lets uvicorn flush its log). The wait
is generous because a busy CI machine may take a while to import the service.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import FIXTURES, ROOT

__all__ = ["free_port", "service_env", "running_server", "UVICORN_APP"]

START_SECONDS = 120.0
UVICORN_APP = [sys.executable, "-m", "uvicorn", "service.api.main:app", "--host", "127.0.0.1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(**settings: str) -> dict[str, str]:
    """This process's environment without its ``FOREWARN_*`` settings, the fixture reference
    data, and ``settings`` (``FOREWARN_``-prefixed names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    env.update({"PYTHONPATH": str(ROOT),
                "FOREWARN_CATEGORIES_FILE": str(FIXTURES / "categories.yaml"),
                "FOREWARN_REGIONS_FILE": str(FIXTURES / "regions.yaml")})
    env.update(settings)
    return env


@contextmanager
def running_server(argv: Sequence[str], port: int, *, env: dict[str, str], cwd: Path,
                   log_path: Path, ready: str = "/healthz",
                   stop_signal: int = signal.SIGTERM) -> Iterator[str]:
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if httpx.get(f"{base}{ready}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{argv[2] if len(argv) > 2 else argv[0]} did not start:\n"
                            + log_path.read_text(errors="replace"))
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(stop_signal)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
