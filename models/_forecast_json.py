"""JSON persistence of :class:`models.forecast.ProphetForecaster`: Prophet's own JSON of
each fitted series plus a ``forewarn`` key with the forecaster's parameters and noise
estimates (the methods ``to_json`` / ``from_json`` call these)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from models._prophet_direct import _muted
from models.count_noise import NO_NOISE, Noise

__all__ = ["dump_series", "load_series", "JSON_KEY", "JSON_VERSION"]

JSON_KEY = "forewarn"
JSON_VERSION = 2


def dump_series(model: Any, unique_id: str, params: Mapping[str, Any], noise: Noise) -> str:
    """Prophet JSON of one fitted series with the forecaster's ``params`` and the series'
    ``noise`` estimates under :data:`JSON_KEY`."""
    from prophet.serialize import model_to_dict

    with _muted():
        d = model_to_dict(model)
    d[JSON_KEY] = {"version": JSON_VERSION, "unique_id": unique_id, "params": dict(params),
                   "noise": list(noise)}
    return json.dumps(d)


def load_series(models: Mapping[str, str]
                ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Noise]]:
    """The stored forecaster parameters (of the first series that has them), the fitted
    Prophet models and the noise estimates by series, from :func:`dump_series` strings
    (plain Prophet JSON works too: no parameters, no noise)."""
    from prophet.serialize import model_from_dict

    stored: dict[str, Any] = {}
    fitted: dict[str, Any] = {}
    noise: dict[str, Noise] = {}
    for uid, text in models.items():
        d = json.loads(text)
        meta = d.pop(JSON_KEY, None)
        if meta and not stored:
            stored = dict(meta.get("params", {}))
            if int(meta.get("version", 1)) < 2:  # fitted with per-day holiday windows
                stored.setdefault("calendar_block_days", 1)
        if meta and len(meta.get("noise", ())) == len(NO_NOISE):
            a, b, c, d_, e = (float(x) for x in meta["noise"])
            noise[str(uid)] = (a, b, c, d_, e)
        with _muted():
            fitted[str(uid)] = model_from_dict(d)
    return stored, fitted, noise
