"""Campaign evaluation from stored data: effects, department scorecards, chart data.

The package, by concern: ``common`` (campaign states, the weekly panel), ``placebos``,
``effects`` (one campaign), ``scorecards``, ``charts``, ``masks`` (training masks for refits),
``tables`` and ``storage`` (the materialised results: what the API reads) and ``worker`` (what
recomputes them, off the request path).

- :func:`effects.campaign_effect_report` — the effect of one campaign (DESIGN.md "Campaign effect"):
  actual weekly counts of its series over the window (from the records) against the
  counterfactual frozen at approval (``ForecastWeek.samples`` of ``approved_run_id``), with
  :func:`models.effect.campaign_effect`, **calibrated on placebo windows**; plus
  :func:`models.effect.did_effect` against the same signal and category in regions without
  a campaign in (or just before) the window.
- :func:`placebo_windows` — the placebo windows: predicted peak windows of stored runs,
  complete in the data, with their actual totals and the frozen paths' totals.
- :func:`scorecard` — per category, region or department (the category's ``sector``):
  campaigns sent, actual spike windows and those reminded of in advance, median lead time,
  estimated counts avoided with intervals (only from calibrated counterfactual or DiD ``ok``
  estimates), deliveries failed.

Why calibrate: campaigns are planned exactly where the forecast runs high, so the frozen
forecast of a campaign window is selected for being high (regression to the mean), and the
paths are too narrow at peaks. On the sample data, where no campaign happened, the raw
counterfactual reported a median "effect" of −16 % and called 7 of 43 null windows
significant. Predicted peak windows that got no campaign went through the same selection:
their actual totals against their frozen paths estimate a multiplicative bias and a
dispersion factor (:func:`models.effect.placebo_calibration`), which are applied to the
campaign's paths. With fewer than ``min_placebos`` such windows the counterfactual estimate
is shown as ``uncalibrated`` and the scorecard does not count it. Measured by
``bench/effect_service.py`` on the sample replay (true effect 0, significant at 95 %): the
calibrated counterfactual 4.2 % at p_sent 0.3 and 5.0 % at p_sent 0.6 (with fewer than 19
placebos its interval is never narrower than the largest placebo error), DiD 4.8 % / 6.0 %;
the figures and their history are in docs/benchmarks.md. Pooled effects:
:mod:`service.evaluation.pooling`.
- :func:`series_chart` — what the dashboard and ``forecast.png`` draw for one series.
- :func:`mask_sent_campaigns` — blanks the windows of campaigns already sent in a training
  frame, so a refit does not learn a campaign-induced dip as seasonality.

Weeks are ISO weeks labelled by their Monday; only complete weeks of records are counted (a
week after the last day the series' own sources cover is "not observed yet", not zero).
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module of the package that defines it
_EXPORTS = {
    "SENT_STATUSES": "common", "COMMITTED_STATUSES": "common", "GroupBy": "common",
    "EvaluationState": "common", "MIN_PLACEBOS": "common", "PLACEBO_LOOKBACK_DAYS": "common",
    "ScoreMethod": "common", "weekly_panel": "common",
    "placebo_windows": "placebos", "campaign_calibration": "placebos",
    "campaign_effect_report": "effects",
    "INTERVAL_METHOD": "scorecards", "scorecard": "scorecards",
    "series_chart": "charts",
    "mask_sent_campaigns": "masks", "sent_campaign_windows": "masks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Lazy re-exports (PEP 562): importing one module of the package (``masks``,
    ``storage`` from ``service.forecasting``) does not import the others, so the package and
    ``service.forecasting`` import each other without a cycle."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
