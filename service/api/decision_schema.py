"""The ``decision`` object shown with every peak, campaign and run: the threshold a forecast
run used for a category, why, and the backtest evidence behind it
(service.forecasting.decisions)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.forecasting.decisions import public_decision, public_decisions

__all__ = ["DecisionPublic", "DECISION_EXAMPLE", "decision_of", "decisions_of"]

DECISION_EXAMPLE: dict[str, Any] = {
    "category": "fireworks", "threshold": 0.25, "objective": "f_beta", "basis": "category",
    "beta": 1.0, "cost_loss": None, "max_campaign_weeks": 6,
    "origins": ["2024-06-30", "2024-12-29"], "n_series": 24, "n_windows": 31,
    "n_campaigns": 38, "recall": 0.71, "precision": 0.58, "f1": 0.638, "f_beta": 0.638,
    "in_time": 0.55, "open_factor": 2.0, "opens_at": 0.4,
    "explanation": "Warns when P(spike) ≥ 0.25 (the threshold that maximised F1). On 2 "
                   "backtest(s) before the cut-off (2024-06-30 … 2024-12-29) it caught 71 % "
                   "of the spike windows and 58 % of its campaigns met a real spike. A window "
                   "opens only where P reaches 0.40 (open factor 2, learned on the same "
                   "backtests) and then holds every week with P ≥ 0.25."}


class DecisionPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DECISION_EXAMPLE]})
    category: str
    threshold: float = Field(description="Decision threshold: weeks whose P(spike) is at "
                             "least this form the predicted windows")
    objective: Literal["f_beta", "cost_loss", "pinned"] = Field(
        description="`f_beta`: the value that maximised campaign-level F-beta on the backtest; "
                    "`cost_loss`: reminder_cost ÷ miss_cost of the category; `pinned`: "
                    "FOREWARN_FORECAST__P_MIN")
    basis: Literal["category", "pooled", "cost_loss", "default", "pinned"] = Field(
        description="`category`: learned on this category's backtest windows; `pooled`: too "
                    "few of them, learned over all categories; `default`: no backtest "
                    "possible (too little history), 0.5")
    beta: float | None = Field(description="β of F-beta (categories.yaml, default 1)")
    cost_loss: float | None = Field(description="reminder_cost ÷ miss_cost, when set")
    max_campaign_weeks: int | None = Field(description="Longest campaign window (weeks)")
    origins: list[dt.date] = Field(description="Cut-offs of the backtests (all before the "
                                               "run's cut-off)")
    n_series: int | None = Field(None, description="Series of the category in the run")
    n_windows: int | None = Field(None, description="Actual spike windows in the backtest")
    n_campaigns: int | None = Field(None, description="Campaign windows the threshold gave "
                                                      "in the backtest")
    recall: float | None = Field(None, description="Backtest share of spike windows caught "
                                 "at least lead days ahead")
    precision: float | None = Field(None, description="Backtest share of campaign windows "
                                    "that met a real spike")
    f1: float | None = None
    f_beta: float | None = None
    in_time: float | None = Field(None, description="Backtest share of spike windows whose "
                                  "campaign's onset was not after the spike's start")
    open_factor: float | None = Field(None, description="Hysteresis: a predicted window "
                                      "opens only where P(spike) reaches the probability "
                                      "whose odds are this factor times the odds of "
                                      "`threshold`, and then holds every week at or above "
                                      "`threshold`; 1 = every run of weeks is a window; "
                                      "learned with the threshold (null: runs before it was)")
    opens_at: float | None = Field(None, description="The P(spike) a predicted window must "
                                   "reach to open (from `threshold` and `open_factor`; equal "
                                   "to `threshold` when the factor is 1 or null)")
    explanation: str = Field(description="The decision in plain words (Chinese when "
                                         "Accept-Language prefers zh)")


def decision_of(document: Mapping[str, Any] | None, category: str,
                language: str) -> DecisionPublic | None:
    d = public_decision(document, category, language=language)
    return None if d is None else DecisionPublic.model_validate(d)


def decisions_of(document: Mapping[str, Any] | None, language: str) -> list[DecisionPublic]:
    return [DecisionPublic.model_validate(d)
            for d in public_decisions(document, language=language)]
