"""Channels: SSRF guard, Standard Webhooks signing against the reference verifier, webhook
limits (redirects, timeouts, response cap), e-mail through a real SMTP server, file lines."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from service.channels import Message, PermanentDeliveryError, load_channels
from service.channels.base import DeliveryError
from service.channels.email import EmailChannel, message_id
from service.channels.file import FileChannel
from service.channels.netguard import AddressRefused, check_address, resolve_vetted
from service.channels.webhook import WebhookChannel, sign
from service.config import Settings
from tests.dispatch.conftest import SECRET, SECRET_2, free_port

REFUSED = [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"), ("100.64.0.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("2002:7f00:1::", "loopback"), ("2002:a9fe:a9fe::1", "link-local"),
    ("2002:c0a8:101::", "private"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1
    ("64:ff9b::7f00:1", "loopback"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_ssrf_guard_refuses_internal_addresses(address: str, why: str) -> None:
    with pytest.raises(AddressRefused, match=why):
        check_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "2002:808:808::"])
def test_ssrf_guard_accepts_public_addresses(address: str) -> None:
    assert str(check_address(address)) == address


def test_loopback_only_when_allowed() -> None:
    assert str(check_address("127.0.0.1", allow_loopback=True)) == "127.0.0.1"
    assert str(check_address("2002:7f00:1::", allow_loopback=True)) == "2002:7f00:1::"
    with pytest.raises(AddressRefused, match="private"):
        check_address("10.0.0.1", allow_loopback=True)


def test_a_name_passes_only_if_every_answer_passes() -> None:
    def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(AddressRefused, match="private"):
        resolve_vetted("example.org", 443, resolver=mixed)
    assert str(resolve_vetted("example.org", 443,
                              resolver=lambda h, p: ["93.184.216.34"])) == "93.184.216.34"


def test_webhook_checks_at_registration_and_again_at_send_time() -> None:
    answers = {"hooks.example.org": ["93.184.216.34"]}
    ch = WebhookChannel(secrets=[SECRET], resolver=lambda h, p: answers[h])
    assert ch.validate("https://hooks.example.org/x") == "https://hooks.example.org/x"
    with pytest.raises(PermanentDeliveryError, match="loopback"):
        ch.validate("http://127.0.0.1:9/x")
    with pytest.raises(PermanentDeliveryError, match="credentials"):
        ch.validate("https://user:pw@hooks.example.org/x")
    answers["hooks.example.org"] = ["127.0.0.1"]  # DNS rebinding after registration
    msg = Message(idempotency_key="msg_1", destination="https://hooks.example.org/x",
                  subject="s", body="b")
    with pytest.raises(PermanentDeliveryError, match="loopback"):
        ch.send(msg)
    ch.close()


def _message(key: str, url: str) -> Message:
    return Message(idempotency_key=key, destination=url, subject="执法事项提示：草原防火",
                   body="清明节前后严禁野外用火。", campaign_id="c1", recipient_id="r1",
                   data={"region": "150100"})


def test_reference_verifier_accepts_signatures_and_rotation(receiver_factory: Any) -> None:
    rec = receiver_factory(secret=SECRET_2)  # the receiver already moved to the new secret
    ch = WebhookChannel(secrets=[SECRET, SECRET_2], allow_loopback=True)
    receipt = ch.send(_message("msg_rot", rec.url))
    ch.close()
    assert receipt.status == 200
    [entry] = rec.entries
    assert entry.verified and entry.key == "msg_rot"
    doc = json.loads(entry.body)
    assert doc["subject"] == "执法事项提示：草原防火" and doc["id"] == "msg_rot"


def test_reference_verifier_rejects_tampering_and_stale_timestamps() -> None:
    body = b'{"subject":"\xe6\x8f\x90\xe7\xa4\xba"}'
    now = int(time.time())
    keys = [__import__("base64").b64decode(SECRET.removeprefix("whsec_"))]
    wh = Webhook(SECRET)
    good = {"webhook-id": "msg_x", "webhook-timestamp": str(now),
            "webhook-signature": sign(keys, "msg_x", now, body)}
    assert wh.verify(body, good) == {"subject": "提示"}
    with pytest.raises(WebhookVerificationError):
        wh.verify(body.replace(b"}", b',"x":1}'), good)
    with pytest.raises(WebhookVerificationError):
        wh.verify(body, {**good, "webhook-id": "msg_other"})
    stale = now - 600
    with pytest.raises(WebhookVerificationError):
        wh.verify(body, {"webhook-id": "msg_x", "webhook-timestamp": str(stale),
                         "webhook-signature": sign(keys, "msg_x", stale, body)})


class _Misbehaving(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[str] = []
    release = threading.Event()  # /slow answers only once the test has seen the timeout
    huge_done = threading.Event()  # /huge stopped writing (the client hung up, or all sent)
    huge_chunks = 0

    def log_message(self, *_a: Any) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.hits.append(self.path)
        if self.path == "/redirect":
            self.send_response(307)
            self.send_header("location", "/target")
            self.send_header("content-length", "0")
            self.end_headers()
        elif self.path == "/slow":
            self.release.wait(60)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("content-length", str(50 * 1024 * 1024))
            self.end_headers()
            try:
                chunk = b"x" * 65536
                for _ in range(800):
                    self.wfile.write(chunk)
                    type(self).huge_chunks += 1
            except OSError:
                pass
            finally:
                self.huge_done.set()
        else:
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()


@pytest.fixture
def misbehaving() -> Iterator[str]:
    _Misbehaving.hits = []
    _Misbehaving.release, _Misbehaving.huge_done = threading.Event(), threading.Event()
    _Misbehaving.huge_chunks = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Misbehaving.release.set()
    server.shutdown()
    server.server_close()


def test_webhook_limits_redirects_timeouts_and_response_size(misbehaving: str) -> None:
    """No wall-time bounds: the slow endpoint answers only after the test saw the timeout,
    and the huge one counts what it managed to write before the client hung up."""
    patient = WebhookChannel(secrets=[SECRET], allow_loopback=True, read_timeout=30,
                             max_response_bytes=64 * 1024)
    impatient = WebhookChannel(secrets=[SECRET], allow_loopback=True, read_timeout=0.5)
    try:
        with pytest.raises(DeliveryError, match="redirects are not followed"):
            patient.send(_message("k1", misbehaving + "/redirect"))
        assert "/target" not in _Misbehaving.hits
        with pytest.raises(DeliveryError, match="timeout"):  # the server is still holding
            impatient.send(_message("k2", misbehaving + "/slow"))
        assert not _Misbehaving.release.is_set()
        _Misbehaving.release.set()
        assert patient.send(_message("k3", misbehaving + "/huge")).status == 200
        assert _Misbehaving.huge_done.wait(60)
        assert _Misbehaving.huge_chunks < 800  # hung up long before the 50 MB were sent
    finally:
        patient.close()
        impatient.close()


def test_webhook_without_secret_is_a_permanent_failure() -> None:
    ch = WebhookChannel(secrets=[], allow_loopback=True)
    with pytest.raises(PermanentDeliveryError, match="secret"):
        ch.send(_message("k", "http://127.0.0.1:9/x"))


def test_email_through_real_smtp_server_keeps_chinese() -> None:
    from aiosmtpd.controller import Controller

    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope.original_content or envelope.content)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, ready_timeout=60)
    controller.start()
    try:
        ch = EmailChannel(host="127.0.0.1", port=port, security="none",
                          sender="提醒 <forewarn@example.cn>", domain="forewarn.test")
        msg = Message(idempotency_key="msg_mail_1", destination="dept@example.cn",
                      subject="执法事项提示：春节前烟花爆竹安全",
                      body="各经营单位：\n请依法经营烟花爆竹。\n", campaign_id="c9")
        ch.send(msg)
        ch.send(msg)  # a retry carries the same Message-ID
    finally:
        controller.stop()
    assert len(received) == 2
    parsed = [email.message_from_bytes(raw, policy=email.policy.default) for raw in received]
    m = parsed[0]
    assert m["Subject"] == "执法事项提示：春节前烟花爆竹安全"
    assert m.get_content() == "各经营单位：\n请依法经营烟花爆竹。\n"
    assert m["Message-ID"] == message_id("msg_mail_1", "forewarn.test") == parsed[1]["Message-ID"]
    assert m["X-Forewarn-Idempotency-Key"] == "msg_mail_1"


def test_email_refuses_bad_addresses_and_missing_server() -> None:
    ch = EmailChannel(host=None)
    with pytest.raises(PermanentDeliveryError):
        ch.validate("not-an-address")
    with pytest.raises(PermanentDeliveryError, match="SMTP"):
        ch.send(Message(idempotency_key="k", destination="a@b.cn", subject="s", body="b"))


def test_file_channel_appends_json_lines(tmp_path: Path) -> None:
    ch = FileChannel(folder=tmp_path / "out")
    threads = [threading.Thread(target=ch.send, args=(Message(
        idempotency_key=f"k{i}", destination="public", subject="提示", body="正文" * 200),))
        for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (tmp_path / "out" / "public.jsonl").read_text(encoding="utf-8").splitlines()
    docs = [json.loads(line) for line in lines]
    assert sorted(d["idempotency_key"] for d in docs) == sorted(f"k{i}" for i in range(20))
    assert docs[0]["subject"] == "提示"
    with pytest.raises(PermanentDeliveryError):
        ch.validate("../etc/passwd")


def test_registry_builds_enabled_channels(tmp_path: Path) -> None:
    s = Settings(_env_file=None)
    chans = load_channels(s)
    assert set(chans) == {"file", "webhook", "email"}
    assert isinstance(chans["file"], FileChannel)
    with pytest.raises(ValueError, match="unknown channel"):
        load_channels(s, ["pigeon"])
    for c in chans.values():
        c.close()
