"""The OpenAPI document is complete (issue 6): every operation has a summary and a description,
every parameter a description, every response an example that validates against its schema;
and ``/docs`` renders it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # via schemathesis; no stubs
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings

_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    app = create_app(Settings(_env_file=None, database_url="sqlite://"), migrate=False)
    spec: dict[str, Any] = app.openapi()
    return spec


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in _METHODS:
                yield f"{method.upper()} {path}", op


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        node = doc["components"]["schemas"][name]
    return node


def _media_examples(doc: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """Examples of a media type object: its own, else those of its (resolved) schema."""
    if "example" in media:
        return [media["example"]]
    if "examples" in media:
        return [e["value"] for e in media["examples"].values() if "value" in e]
    schema = _resolve(doc, media.get("schema"))
    if isinstance(schema, dict):
        if "examples" in schema:
            return list(schema["examples"])
        if "example" in schema:
            return [schema["example"]]
    return []


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    root = copy.deepcopy(schema)
    root["components"] = doc.get("components", {})
    return jsonschema.Draft202012Validator(root)


def test_there_are_operations(doc: dict[str, Any]) -> None:
    assert len(list(_operations(doc))) >= 30


def test_every_operation_has_a_summary_and_a_description(doc: dict[str, Any]) -> None:
    missing = [name for name, op in _operations(doc)
               if not op.get("summary", "").strip() or not op.get("description", "").strip()]
    assert missing == []


def test_every_parameter_has_a_description(doc: dict[str, Any]) -> None:
    missing = [f"{name}: {p['in']} {p['name']}" for name, op in _operations(doc)
               for p in op.get("parameters", []) if not p.get("description", "").strip()]
    assert missing == []


def _undescribed_fields(doc: dict[str, Any], schema: Any, where: str,
                        seen: set[str]) -> Iterator[str]:
    if isinstance(schema, dict) and "$ref" in schema:
        if schema["$ref"] in seen:
            return
        seen.add(schema["$ref"])
    schema = _resolve(doc, schema)
    if not isinstance(schema, dict):
        return
    for name, prop in schema.get("properties", {}).items():
        if not (prop.get("description") or _resolve(doc, prop).get("description")):
            yield f"{where}.{name}"
        yield from _undescribed_fields(doc, prop, f"{where}.{name}", seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            yield from _undescribed_fields(doc, sub, where, seen)
    if "items" in schema:
        yield from _undescribed_fields(doc, schema["items"], f"{where}[]", seen)


def test_every_request_body_field_has_a_description(doc: dict[str, Any]) -> None:
    missing = [field for name, op in _operations(doc)
               for ctype, media in op.get("requestBody", {}).get("content", {}).items()
               for field in _undescribed_fields(doc, media.get("schema"), f"{name} {ctype}",
                                                set())]
    assert missing == []


def test_every_response_has_an_example(doc: dict[str, Any]) -> None:
    missing = []
    for name, op in _operations(doc):
        for status, response in op["responses"].items():
            assert response.get("description"), f"{name} {status}"
            content = response.get("content")
            if not content:
                missing.append(f"{name} {status}: no content")
            for ctype, media in (content or {}).items():
                if not _media_examples(doc, media):
                    missing.append(f"{name} {status} {ctype}")
    assert missing == []


def test_json_examples_validate_against_their_schemas(doc: dict[str, Any]) -> None:
    checked, invalid = 0, []
    for name, op in _operations(doc):
        for status, response in op["responses"].items():
            for ctype, media in response.get("content", {}).items():
                schema = media.get("schema")
                if not schema or "json" not in ctype:
                    continue
                validator = _validator(doc, schema)
                for example in _media_examples(doc, media):
                    checked += 1
                    invalid += [f"{name} {status}: {e.message}"
                                for e in validator.iter_errors(example)]
    assert checked >= 60
    assert invalid == []


def test_schema_examples_validate(doc: dict[str, Any]) -> None:
    invalid = []
    for name, schema in doc["components"]["schemas"].items():
        validator = _validator(doc, schema)
        for example in schema.get("examples", []):
            invalid += [f"{name}: {e.message}" for e in validator.iter_errors(example)]
    assert invalid == []


def test_error_responses_share_the_problem_examples(doc: dict[str, Any]) -> None:
    for name, op in _operations(doc):
        for status, response in op["responses"].items():
            problem = response.get("content", {}).get("application/problem+json")
            if problem is None:
                continue
            example = problem.get("example")
            assert example is not None, f"{name} {status}"
            assert str(example["status"]) == status, f"{name} {status}"


def test_docs_page_renders_the_document() -> None:
    app = create_app(Settings(_env_file=None, database_url="sqlite://"), migrate=False)
    with TestClient(app) as client:
        page = client.get("/docs")
        spec = client.get("/openapi.json")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "Forewarn"
