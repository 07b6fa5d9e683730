"""A real webhook receiver on loopback for tests and the benchmark.

It verifies every request with the reference ``standardwebhooks`` package, logs
``(webhook-id, status)`` and answers 2xx unless told to fail: ``fail_first`` refusals per id
(then success), ``always_fail`` ids, a random ``fail_rate`` or a ``delay``. ``GET /_log``
returns the log as JSON, so a receiver in another process can be inspected.

Run standalone: ``python tests/dispatch/receiver.py --port 8765 --secret whsec_… --fail-rate 0.2``.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

__all__ = ["Receiver", "ReceiverConfig", "Entry"]


@dataclass
class Entry:
    key: str
    status: int
    verified: bool
    body: bytes = b""


@dataclass
class ReceiverConfig:
    secret: str | None = None
    fail_first: int = 0
    always_fail: set[str] = field(default_factory=set)
    fail_rate: float = 0.0
    delay: float = 0.0
    status: int = 200
    seed: int = 1
    keep_bodies: bool = True
    hold_after: int | None = None  # requests after this many wait until release()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


class Receiver:
    """Start with :meth:`start`; ``entries`` is the request log."""

    def __init__(self, config: ReceiverConfig | None = None, port: int = 0) -> None:
        self.config = config or ReceiverConfig()
        self.entries: list[Entry] = []
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._rng = random.Random(self.config.seed)
        self._verifier = Webhook(self.config.secret) if self.config.secret else None
        self._arrived = 0
        self._held = 0
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return

            def do_GET(self) -> None:
                with receiver._lock:
                    doc = [{"key": e.key, "status": e.status, "verified": e.verified}
                           for e in receiver.entries]
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver._decide(self.headers, body)
                payload = b"ok" if status < 300 else b"try later"
                self.send_response(status)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = _Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread: threading.Thread | None = None

    def _decide(self, headers: Any, body: bytes) -> int:
        cfg = self.config
        if cfg.hold_after is not None:
            with self._lock:
                self._arrived += 1
                hold = self._arrived > cfg.hold_after
                self._held += hold
            if hold:  # a request in flight for as long as the test needs one
                self._release.wait()
        key = headers.get("webhook-id", "")
        verified = False
        if self._verifier is not None:
            try:
                self._verifier.verify(body, {k.lower(): v for k, v in headers.items()})
                verified = True
            except Exception:
                verified = False
        if cfg.delay:
            time.sleep(cfg.delay)
        with self._lock:
            n = self._seen.get(key, 0)
            self._seen[key] = n + 1
            if self._verifier is not None and not verified:
                status = 401
            elif key in cfg.always_fail or n < cfg.fail_first:
                status = 503
            elif cfg.fail_rate and self._rng.random() < cfg.fail_rate:
                status = 500
            else:
                status = cfg.status
            self.entries.append(Entry(key, status, verified,
                                      body if cfg.keep_bodies else b""))
        return status

    def held(self) -> int:
        """Requests that arrived after ``hold_after`` (waiting, or released since)."""
        with self._lock:
            return self._held

    def release(self) -> None:
        """Let the held requests (and every later one) through."""
        self._release.set()

    def acked(self) -> list[str]:
        with self._lock:
            return [e.key for e in self.entries if 200 <= e.status < 300]

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--secret")
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    r = Receiver(ReceiverConfig(secret=args.secret, fail_rate=args.fail_rate, delay=args.delay,
                                seed=args.seed, keep_bodies=False), port=args.port)
    print(r.port, flush=True)  # noqa: T201
    r.server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
