"""Property-based fuzzing of the app's own OpenAPI document with schemathesis 4.x.

Every operation gets at most ``MAX_EXAMPLES`` generated requests (in-process ASGI transport,
an admin key, a temporary SQLite database holding the sample reference data, a finished
forecast run, imported records and a campaign). Each response must not be a 5xx and must match
the document: a documented status code, the documented content type (problem+json for errors,
``text/csv``, ``text/calendar``, Prometheus text) and the documented schema and headers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.app import create_app
from service.config import ApiSettings, Settings
from tests.api.conftest import seed_keys_and_reference, seed_run
from tests.conftest import SAMPLES

MAX_EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


class _NoFits:
    """Stands in for the app's RunExecutor: accepts runs and never fits them."""

    def submit(self, run_id: str) -> None:
        pass

    def shutdown(self) -> None:
        pass


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[object, str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    s = Settings(_env_file=None, database_url=f"sqlite:///{tmp / 'fuzz.db'}",
                 categories_file=SAMPLES / "categories.yaml",
                 regions_file=SAMPLES / "regions.yaml", log_json=False,
                 api=ApiSettings(rate_limit_per_minute=0),
                 channels={"file_dir": tmp / "outbox"})
    keys = seed_keys_and_reference(s)
    app = create_app(s)
    app.state.run_executor = _NoFits()  # the contract is under test here, not the fitting
    # no lifespan here: schemathesis starts the app's lifespan once and keeps it to the end
    client = TestClient(app)
    admin = {"X-API-Key": keys["admin"]}
    run_id, series = seed_run(app.state.sessionmaker, n_series=6)
    records = [{"external_id": f"F{i}", "received_at": f"2024-0{1 + i % 5}-1{i % 9} 09:00",
                "category": "fireworks", "region": "150100"} for i in range(20)]
    r = client.post("/v1/complaints/import", json={"records": records, "source": "fuzz"},
                    headers=admin)
    assert r.status_code == 201
    day = dt.date.today() + dt.timedelta(days=60)
    c = client.post("/v1/campaigns", headers=admin, json={
        "category": "fireworks", "region": "150100", "window_start": str(day),
        "window_end": str(day + dt.timedelta(days=13))})
    assert c.status_code == 201
    # ids that exist, so the operations on one entity also reach their happy path
    known = {"series_id": series[0], "run_id": run_id, "campaign_id": c.json()["id"],
             "batch_id": r.json()["batch_id"]}
    yield app, keys["admin"], known


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app: tuple[object, str, dict[str, str]]) -> schemathesis.BaseSchema:
    app, _, _ = fuzz_app
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _labels() -> list[str]:
    doc = create_app(Settings(_env_file=None, database_url="sqlite://"), migrate=False).openapi()
    return [f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item]


# schemathesis' own pytest plugin (``from_fixture``) does not run under pytest 9.2; hypothesis
# drives each operation's strategy instead, one pytest test per operation.
@pytest.mark.slow  # about 30 s for all operations on 2 cores
@pytest.mark.parametrize("label", _labels())
def test_operation_conforms_to_the_openapi(label: str, fuzz_schema: schemathesis.BaseSchema,
                                           fuzz_app: tuple[object, str, dict[str, str]]
                                           ) -> None:
    _, key, known = fuzz_app
    operation = fuzz_schema.find_operation_by_label(label)
    assert operation is not None, label
    strategies = [operation.as_strategy(GenerationMode.POSITIVE),
                  operation.as_strategy(GenerationMode.NEGATIVE)]
    params = {p: known[p] for p in re.findall(r"\{(\w+)\}", label) if p in known}
    if params:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE,
                                                path_parameters=params))

    @given(case=st.one_of(*strategies))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers={"X-API-Key": key}, checks=CHECKS)

    run()
