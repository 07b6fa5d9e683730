"""Post-processing of the generated OpenAPI document.

FastAPI encodes the document with ``exclude_none=True``, which also drops ``null`` values from
examples: ``{"error": null}`` becomes ``{}``, and the example no longer validates against a
schema that requires ``error``. :func:`restore_example_nulls` puts ``null`` back for every
required, nullable property an example lacks (recursively, following ``$ref``), so each
example in the document is exactly what the API answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

__all__ = ["restore_example_nulls", "install_openapi"]

_REF = "#/components/schemas/"


def _resolve(doc: dict[str, Any], schema: Any) -> Any:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 50:
        ref = str(schema["$ref"])
        if not ref.startswith(_REF):
            return schema
        schema = doc.get("components", {}).get("schemas", {}).get(ref[len(_REF):])
        seen += 1
    return schema


def _nullable(doc: dict[str, Any], schema: Any) -> bool:
    schema = _resolve(doc, schema)
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_nullable(doc, s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _fill(doc: dict[str, Any], example: Any, schema: Any, depth: int = 0) -> None:
    schema = _resolve(doc, schema)
    if not isinstance(schema, dict) or depth > 30:
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, []):
            _fill(doc, example, branch, depth + 1)
    if isinstance(example, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in example and name in properties and _nullable(doc, properties[name]):
                example[name] = None
        for name, value in example.items():
            if name in properties:
                _fill(doc, value, properties[name], depth + 1)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, value in example.items():
                if name not in properties:
                    _fill(doc, value, extra, depth + 1)
    elif isinstance(example, list) and isinstance(schema.get("items"), dict):
        for item in example:
            _fill(doc, item, schema["items"], depth + 1)


def restore_example_nulls(doc: dict[str, Any]) -> dict[str, Any]:
    """Put back the ``null`` values FastAPI dropped from the examples of ``doc`` (in place).

    Covers ``examples`` of component schemas and ``example`` / ``examples`` of media types.
    """
    for schema in doc.get("components", {}).get("schemas", {}).values():
        for example in schema.get("examples", []):
            _fill(doc, example, schema)
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            bodies = [r.get("content", {}) for r in operation.get("responses", {}).values()]
            bodies.append(operation.get("requestBody", {}).get("content", {}))
            for content in bodies:
                for media in content.values():
                    schema = media.get("schema")
                    if "example" in media:
                        _fill(doc, media["example"], schema)
                    for named in media.get("examples", {}).values():
                        if isinstance(named, dict) and "value" in named:
                            _fill(doc, named["value"], schema)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the generated document with its examples' nulls back."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = restore_example_nulls(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
