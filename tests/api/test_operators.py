"""Operators without Python: recipients and keys through the API and the CLI.

Recipients are checked at registration (SSRF guard, e-mail syntax, known region / category /
sector; 422 with the reason); a webhook recipient's own signing secret is shown once, signs
its deliveries (verified by a real receiver with the reference ``standardwebhooks``), and
rotates with a grace period during which both secrets sign.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.app import create_app
from service.campaigns.recipients import recipient_signing_secrets
from service.channels.base import Message
from service.channels.webhook import WebhookChannel
from service.config import ChannelSettings, Settings, WebhookSettings
from service.db import make_engine, make_sessionmaker
from service.errors import PROBLEM_JSON
from tests.api.conftest import seed_keys_and_reference
from tests.dispatch.receiver import Receiver, ReceiverConfig


@pytest.fixture
def loopback(settings: Settings) -> Settings:
    """The shared settings with loopback webhooks allowed (test receivers listen there)."""
    return settings.model_copy(update={"channels": ChannelSettings(
        webhook=WebhookSettings(allow_loopback=True))})


@pytest.fixture
def ops(loopback: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    keys = seed_keys_and_reference(loopback)
    with TestClient(create_app(loopback), raise_server_exceptions=False) as client:
        yield client, keys


def _h(key: str, lang: str | None = None) -> dict[str, str]:
    return {"X-API-Key": key, **({"Accept-Language": lang} if lang else {})}


def test_recipient_registration_checks(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api  # default settings: loopback and private addresses are refused
    admin = _h(keys["admin"])
    cases = [
        ({"name": "x", "webhook_url": "http://127.0.0.1:9/h"}, "webhook_url", "loopback"),
        ({"name": "x", "webhook_url": "http://10.1.2.3/h"}, "webhook_url", "private"),
        ({"name": "x", "webhook_url": "http://169.254.169.254/latest"}, "webhook_url",
         "link-local"),
        ({"name": "x", "webhook_url": "http://[::ffff:127.0.0.1]/h"}, "webhook_url",
         "embeds 127.0.0.1"),
        ({"name": "x", "webhook_url": "ftp://8.8.8.8/h"}, "webhook_url", "http(s)"),
        ({"name": "x", "webhook_url": "http://u:p@8.8.8.8/h"}, "webhook_url", "credentials"),
        ({"name": "x", "email": "not an address"}, "email", "no spaces"),
        ({"name": "x", "email": "Duty <duty@amr.gov.cn>"}, "email", "e-mail"),
        ({"name": "x", "region": "999999"}, "region", "GET /v1/regions"),
        ({"name": "x", "categories": ["nonexistent"]}, "categories", "GET /v1/categories"),
        ({"name": "x", "sectors": ["宇宙"]}, "sectors", "known:"),
        ({"name": "x", "kind": "subscriber", "email": "a@b.cn"}, "may_contact", "may_contact"),
    ]
    for body, field, reason in cases:
        r = client.post("/v1/recipients", json=body, headers=admin)
        assert r.status_code == 422, (body, r.text)
        doc = r.json()
        assert doc["detail"].startswith(f"{field}:") or field in doc["detail"], doc
        assert reason in doc["detail"], (reason, doc["detail"])
    assert client.get("/v1/recipients", headers=admin).json()["items"] == []
    # scopes: read / approve keys may not manage recipients
    assert client.get("/v1/recipients", headers=_h(keys["approve"])).status_code == 403


def test_recipient_lifecycle_and_signing(ops: tuple[TestClient, dict[str, str]],
                                         loopback: Settings) -> None:
    client, keys = ops
    admin = _h(keys["admin"])
    r = client.post("/v1/recipients", headers=admin, json={
        "name": "呼和浩特市市场监管局", "region": "150100", "categories": ["fireworks"],
        "webhook_url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 201, r.text
    created = r.json()
    rid, secret = created["id"], created["webhook_secret"]
    assert secret.startswith("whsec_") and created["channels"] == ["webhook"]
    assert created["may_contact"] is True  # a department by default
    listed = client.get("/v1/recipients", headers=admin).json()["items"]
    assert [i["id"] for i in listed] == [rid]
    assert secret not in json.dumps(listed) and "webhook_secret" not in listed[0]
    email = client.post("/v1/recipients", headers=admin, json={
        "name": "包头市 值班邮箱", "region": "150200", "email": "duty@bt.example.gov.cn"}).json()
    assert email["webhook_secret"] is None and email["channels"] == ["email"]
    only_webhooks = client.get("/v1/recipients?channel=webhook", headers=admin).json()
    assert [i["id"] for i in only_webhooks["items"]] == [rid]
    page = client.get("/v1/recipients?limit=1", headers=admin).json()
    rest = client.get(f"/v1/recipients?limit=1&cursor={page['next_cursor']}",
                      headers=admin).json()
    assert {page["items"][0]["id"], rest["items"][0]["id"]} == {rid, email["id"]}
    # a change is checked like a registration
    bad = client.patch(f"/v1/recipients/{rid}", headers=admin,
                       json={"webhook_url": "http://169.254.169.254/x"})
    assert bad.status_code == 422 and "link-local" in bad.json()["detail"]
    for flag in ("may_contact", "active"):  # a stored flag is never null (was a 500)
        null = client.patch(f"/v1/recipients/{rid}", headers=admin, json={flag: None})
        assert null.status_code == 422 and null.headers["content-type"] == PROBLEM_JSON
        assert null.json()["field"] == flag and "not null" in null.json()["detail"]
    ok = client.patch(f"/v1/recipients/{rid}", headers=admin,
                      json={"categories": ["fireworks", "food_safety"]})
    assert ok.status_code == 200 and ok.json()["categories"] == ["fireworks", "food_safety"]

    # deliveries are signed with the recipient's own secret (real receiver, reference lib)
    engine = make_engine(loopback.database_url)
    factory = make_sessionmaker(engine)
    channel = WebhookChannel.from_settings(loopback)  # no deployment-wide secret at all
    channel.attach(partial(recipient_signing_secrets, factory))

    def deliver(receiver_secret: str, n: int) -> int:
        rec = Receiver(ReceiverConfig(secret=receiver_secret)).start()
        try:
            msg = Message(idempotency_key=f"msg_{n}", destination=rec.url, subject="s",
                          body="b", campaign_id="c", recipient_id=rid)
            try:
                return channel.send(msg).status or 0
            except Exception as exc:  # a 401 from the receiver is a DeliveryError
                return int(getattr(exc, "status", 0) or 0)
        finally:
            rec.stop()

    assert deliver(secret, 1) == 200
    rot = client.post(f"/v1/recipients/{rid}/rotate-secret", headers=admin,
                      json={"grace_hours": 24})
    assert rot.status_code == 200, rot.text
    new = rot.json()["webhook_secret"]
    assert new != secret and len(rot.json()["recipient"]["webhook_secrets"]) == 2
    until = dt.datetime.fromisoformat(rot.json()["previous_valid_until"])
    assert dt.timedelta(hours=23) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=24)
    assert deliver(secret, 2) == 200  # receiver not switched yet: the old signature verifies
    assert deliver(new, 3) == 200  # receiver switched: the new one verifies
    assert deliver("whsec_" + "QUJD" * 8, 4) == 401  # anything else does not
    # no grace: the old secret stops signing at once
    client.post(f"/v1/recipients/{rid}/rotate-secret", headers=admin, json={"grace_hours": 0})
    assert deliver(new, 5) == 401
    channel.close()
    engine.dispose()

    dis = client.post(f"/v1/recipients/{rid}/disable", headers=admin,
                      json={"reason": "endpoint retired"})
    assert dis.status_code == 200 and dis.json()["active"] is False
    assert dis.json()["disabled_at"] is not None
    active = client.get("/v1/recipients?active=true", headers=admin).json()["items"]
    assert [i["id"] for i in active] == [email["id"]]
    assert client.post("/v1/recipients/nope/disable", headers=admin).status_code == 404
    no_hook = client.post(f"/v1/recipients/{email['id']}/rotate-secret", headers=admin)
    assert no_hook.status_code == 422 and "webhook" in no_hook.json()["detail"]


def test_keys_api(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    admin = _h(keys["admin"])
    r = client.post("/v1/keys", headers=admin,
                    json={"name": "值班", "scopes": ["read", "approve"], "expires_days": 30})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["key"].startswith(f"fw_{made['prefix']}_") and made["state"] == "active"
    expires = dt.datetime.fromisoformat(made["expires_at"])
    assert dt.timedelta(days=29) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    # the new key works, and its use is recorded
    assert client.get("/v1/dashboard/whoami", headers=_h(made["key"])).status_code == 200
    listed = {k["prefix"]: k for k in client.get("/v1/keys", headers=admin).json()["items"]}
    assert listed[made["prefix"]]["last_used_at"] is not None
    assert made["key"] not in json.dumps(listed)  # never listed again
    assert listed[made["prefix"]]["created_at"].endswith("Z") or \
        listed[made["prefix"]]["created_at"].endswith("+00:00")
    bad = client.post("/v1/keys", headers=admin, json={"name": "x", "scopes": ["root"]})
    assert bad.status_code == 422
    assert client.get("/v1/keys", headers=_h(keys["approve"])).status_code == 403
    rv = client.post(f"/v1/keys/{made['prefix']}/revoke", headers=admin)
    assert rv.status_code == 200 and rv.json()["state"] == "revoked"
    assert client.get("/v1/dashboard/whoami", headers=_h(made["key"])).status_code == 401
    assert client.post("/v1/keys/zzzz/revoke", headers=admin).status_code == 404


def test_recipients_and_keys_cli(loopback: Settings, monkeypatch: pytest.MonkeyPatch,
                                 tmp_path: Path) -> None:
    from service.cli import app

    seed_keys_and_reference(loopback)
    monkeypatch.setenv("FOREWARN_DATABASE_URL", loopback.database_url)
    monkeypatch.setenv("FOREWARN_CATEGORIES_FILE", str(loopback.categories_file))
    monkeypatch.setenv("FOREWARN_REGIONS_FILE", str(loopback.regions_file))
    monkeypatch.setenv("FOREWARN_CHANNELS__WEBHOOK__ALLOW_LOOPBACK", "true")
    runner = CliRunner()
    r = runner.invoke(app, ["recipients", "add", "--name", "呼和浩特 执法系统", "--region",
                            "150100", "--category", "fireworks", "--webhook",
                            "http://127.0.0.1:9/hook"])
    assert r.exit_code == 0, r.output
    secret = next(w for w in r.stdout.split() if w.startswith("whsec_"))
    rid = r.stdout.split()[1]
    bad = runner.invoke(app, ["recipients", "add", "--name", "x", "--webhook",
                              "http://10.0.0.1/h"])
    assert bad.exit_code == 2 and "private" in bad.stderr
    listed = json.loads(runner.invoke(app, ["recipients", "list", "--json"]).stdout)
    assert [i["id"] for i in listed] == [rid] and secret not in json.dumps(listed)
    human = runner.invoke(app, ["recipients", "list"]).stdout
    assert "webhook" in human and "150100" in human and "fireworks" in human
    rot = runner.invoke(app, ["recipients", "rotate-secret", rid, "--grace-hours", "2"])
    assert rot.exit_code == 0 and "whsec_" in rot.stdout and secret not in rot.stdout
    assert runner.invoke(app, ["recipients", "disable", rid]).exit_code == 0
    assert json.loads(runner.invoke(app, ["recipients", "list", "--json"]).stdout)[0][
        "active"] is False
    assert runner.invoke(app, ["recipients", "disable", "nope"]).exit_code == 2
    # keys list: expiry, last use and the time zone of every time
    runner.invoke(app, ["keys", "create", "--name", "tmp", "--scopes", "read",
                        "--expires-days", "7"])
    out = runner.invoke(app, ["keys", "list"]).stdout
    assert "expires" in out and "last used" in out and "never" in out
    assert "UTC" in out or "+08:00" in out
