"""JSON numbers at the API boundary: floats rounded to a stated precision.

Computed values carry binary float noise (``2.0999999999999996``, ``18.700000000000003``).
Every JSON response of the API rounds each float to **6 significant digits** (values of a
million or more to whole numbers); integers are untouched. Nothing the service stores or
computes with is rounded — only what it answers.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service.rounding import SIGNIFICANT_DIGITS, round_floats, round_number

__all__ = ["SIGNIFICANT_DIGITS", "round_number", "round_floats", "RoundedJSONResponse",
           "dump_json"]

def dump_json(model: BaseModel) -> bytes:
    """A response model as JSON bytes, numbers rounded (for bodies cached pre-serialised)."""
    return orjson.dumps(round_floats(model.model_dump(mode="json")))


class RoundedJSONResponse(JSONResponse):
    """The app's default response class: JSON with rounded floats."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(round_floats(content))
