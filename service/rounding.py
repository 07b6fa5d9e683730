"""Numbers as the service answers them: floats rounded to a stated precision.

Computed values carry binary float noise (``2.0999999999999996``, ``18.700000000000003``).
Every answer (the API's JSON, the materialised evaluation rendered by its worker) rounds each
float to **6 significant digits** (values of a million or more to whole numbers); integers are
untouched. Nothing the service stores or computes with is rounded — only what it answers.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["SIGNIFICANT_DIGITS", "round_number", "round_floats"]

SIGNIFICANT_DIGITS = 6


def round_number(x: float) -> float:
    """``x`` to :data:`SIGNIFICANT_DIGITS` significant digits (whole numbers from 1e6)."""
    if x == 0 or not math.isfinite(x):
        return x
    digits = SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(x)))
    return round(x, max(digits, 0))


def round_floats(value: Any) -> Any:
    """``value`` with every float inside (dicts, lists) rounded by :func:`round_number`."""
    if isinstance(value, float):
        return round_number(value)
    if isinstance(value, dict):
        return {k: round_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(v) for v in value]
    return value
