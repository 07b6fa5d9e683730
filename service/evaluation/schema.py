"""Response models of the evaluation routes (campaign effects, scorecards). The evaluation
worker (:mod:`service.evaluation.worker`) validates what it stores with them, so a stored
answer is exactly what the route used to compute per request."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Signal = Literal["complaints", "violations"]
_CID = "3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57"
_RUN = "7c4e2b9a1f3d4a6e8b0c2d4f6a8e1b3c"

_EFFECT: dict[str, Any] = {
    "window_start": "2027-02-01", "window_end": "2027-02-14", "n_weeks": 2,
    "weeks_missing": [], "actual": 214.0, "counterfactual": 298.3,
    "counterfactual_median": 295.0, "counterfactual_sd": 31.2, "dispersion": 1.1,
    "effect": -84.3, "relative_effect": -0.283, "effect_lower_80": -124.6,
    "effect_upper_80": -44.1, "effect_lower_95": -146.0, "effect_upper_95": -22.8,
    "relative_lower_80": -0.368, "relative_upper_80": -0.171, "relative_lower_95": -0.405,
    "relative_upper_95": -0.096, "p_reduced": 0.993, "n_samples": 1000, "bias_ratio": 0.97,
    "significant": True, "calibrated": True, "mde": -0.31, "campaigns_needed": 9,
}
_EFFECT_EXAMPLE: dict[str, Any] = {
    "campaign_id": _CID, "campaign_status": "sent",
    "series_id": "complaints|fireworks|150100", "signal": "complaints",
    "category": "fireworks", "region": "150100", "window_start": "2027-02-01",
    "window_end": "2027-02-14", "approved_run_id": _RUN, "evaluation": "complete",
    "reason": None, "weeks_in_window": 2, "weeks_observed": 2,
    "weeks": [{"week": "2027-02-01", "actual": 118.0, "counterfactual": 162.9,
               "lower_80": 131.0, "upper_80": 196.0},
              {"week": "2027-02-08", "actual": 96.0, "counterfactual": 135.4,
               "lower_80": 107.0, "upper_80": 165.0}],
    "calibration": {"status": "calibrated", "n_placebos": 9, "bias_ratio": 0.97,
                    "dispersion": 1.1, "raw_ratio": 0.95, "ratio_se": 0.06,
                    "shrinkage": 0.62, "min_placebos": 5, "pooled_over": "category",
                    "lead_days": 73, "reason": None},
    "counterfactual": _EFFECT, "counterfactual_raw": {**_EFFECT, "calibrated": False,
                                                      "bias_ratio": 1.0},
    "did": {"status": "ok", "treated": "150100", "window_start": "2027-02-01",
            "window_end": "2027-02-14", "controls": ["150200", "150600"],
            "similarity": {"150200": 0.91, "150600": 0.87}, "excluded": {},
            "n_pre_weeks": 52, "n_match_weeks": 8, "actual": 214.0, "counterfactual": 281.5,
            "effect": -67.5, "relative_effect": -0.24, "log_effect": -0.274,
            "effect_lower_80": -101.2, "effect_upper_80": -31.0, "effect_lower_95": -118.9,
            "effect_upper_95": -11.7, "relative_lower_80": -0.36, "relative_upper_80": -0.11,
            "relative_lower_95": -0.42, "relative_upper_95": -0.04, "p_reduced": 0.98,
            "n_placebos": 20, "placebo_rmse": 0.12, "df": 10.0, "significant": True,
            "mde": -0.31,
            "campaigns_needed": 6},
    "measurable_from": "2027-02-08", "complete_on": "2027-02-15", "reason_zh": None,
}
_GROUP: dict[str, Any] = {
    "key": "fireworks", "label": "烟花爆竹", "campaigns": 12, "campaigns_sent": 11,
    "spike_windows": 9, "spike_windows_caught": 8, "catch_rate": 0.889,
    "median_lead_days": 14.0, "campaigns_evaluated": 10, "counted_counterfactual": 7,
    "counted_did": 3, "not_counted": 1, "avoided": 512.4, "avoided_lower_80": 241.0,
    "avoided_upper_80": 790.2, "avoided_lower_95": 98.6, "avoided_upper_95": 935.1,
    "deliveries": 604, "deliveries_failed": 3,
}
_POOLED_EST: dict[str, Any] = {
    "k": 11, "df": 10.0, "relative_effect": -0.22, "relative_lower_95": -0.34,
    "relative_upper_95": -0.08, "relative_lower_80": -0.3, "relative_upper_80": -0.13,
    "tau2": 0.004, "i2": 0.12, "q": 11.4, "p_heterogeneity": 0.33, "p_value": 0.004,
    "significant": True, "mde": -0.19, "campaigns_needed": 9, "method": "DL+HKSJ"}
_POOLED: dict[str, Any] = {"counterfactual": _POOLED_EST, "did": {**_POOLED_EST, "k": 7},
                           "randomised": None, "headline": "did"}


_MDE = Field(None, description="Smallest relative reduction this estimate would have detected "
                               "with 80 % power in a two-sided 5 % test (e.g. -0.35)")
_NEEDED = Field(None, description="Campaigns like this one a pooled estimate needs to detect a "
                                  "-20 % effect with 80 % power")


class PooledEstimate(BaseModel):
    """Random-effects pooled effect (``models.pooling.pool``: DerSimonian–Laird tau²,
    Hartung–Knapp–Sidik–Jonkman interval, widened for errors shared within a season or
    through shared controls)."""

    k: int = Field(description="Campaign estimates pooled (randomised: waves)")
    df: float | None = Field(description="Degrees of freedom of the t interval")
    relative_effect: float = Field(description="Pooled relative effect (-0.2 = 20 % fewer)")
    relative_lower_95: float
    relative_upper_95: float
    relative_lower_80: float
    relative_upper_80: float
    tau2: float | None = Field(description="Between-campaign variance of the true effects "
                                           "(log scale)")
    i2: float | None = Field(description="Share of the spread that is heterogeneity")
    q: float = Field(description="Cochran's Q")
    p_heterogeneity: float | None
    p_value: float
    significant: bool
    mde: float | None = _MDE
    campaigns_needed: int | None = _NEEDED
    method: str
    waves: int | None = Field(None, description="Randomised waves (randomised only)")


class PooledGroup(BaseModel):
    counterfactual: PooledEstimate | None = Field(description="Calibrated counterfactual")
    did: PooledEstimate | None = Field(description="Difference-in-differences")
    randomised: PooledEstimate | None = Field(
        description="Stepped-wedge design estimate of randomised windows (the most credible "
                    "figure: chance alone chose who was reminded first)")
    headline: Literal["randomised", "did", "counterfactual"] | None = Field(
        description="The estimate to show first")


class PooledBlockGroup(PooledGroup):
    key: str
    label: str


class PooledBlock(BaseModel):
    by: Literal["category", "region", "department", "region_level", "year"]
    season_correlation: float = Field(description="Within-season correlation of the "
                                                  "counterfactual's errors (placebo windows)")
    groups: list[PooledBlockGroup]


class Contribution(BaseModel):
    weight: float = Field(description="Share of the group's pooled estimate")
    relative_effect: float
    relative_lower_95: float
    relative_upper_95: float
    mde: float | None = _MDE
    campaigns_needed: int | None = _NEEDED


class EffectWeek(BaseModel):
    week: dt.date = Field(description="Monday of the ISO week")
    actual: float | None = Field(description="Observed count (null: week not complete yet)")
    counterfactual: float = Field(description="Mean of the frozen forecast's sample paths "
                                              "(after calibration, when calibrated)")
    lower_80: float
    upper_80: float


class CounterfactualEffect(BaseModel):
    """Effect against the forecast frozen at approval (``models.effect.EffectEstimate``)."""

    window_start: dt.date
    window_end: dt.date
    n_weeks: int
    weeks_missing: list[dt.date]
    actual: float
    counterfactual: float
    counterfactual_median: float
    counterfactual_sd: float
    dispersion: float
    effect: float = Field(description="actual − counterfactual (negative: fewer than expected)")
    relative_effect: float | None
    effect_lower_80: float
    effect_upper_80: float
    effect_lower_95: float
    effect_upper_95: float
    relative_lower_80: float | None
    relative_upper_80: float | None
    relative_lower_95: float | None
    relative_upper_95: float | None
    p_reduced: float = Field(description="Probability the campaign reduced the count")
    n_samples: int
    bias_ratio: float = Field(1.0, description="Factor applied to the paths' totals")
    significant: bool = Field(description="The 95 % interval excludes 0")
    calibrated: bool = Field(description="Against placebo-calibrated paths; false: the frozen "
                                         "forecast as stored (uncalibrated, not counted in "
                                         "the scorecard)")
    mde: float | None = _MDE
    campaigns_needed: int | None = _NEEDED


class CalibrationOut(BaseModel):
    """Placebo calibration of the counterfactual (``models.effect.Calibration``)."""

    status: Literal["calibrated", "uncalibrated"]
    n_placebos: int = Field(description="Predicted peak windows without a campaign, complete "
                                        "in the data and before this window, one per real "
                                        "window")
    bias_ratio: float = Field(description="Multiplicative correction of the counterfactual "
                                          "(1 when uncalibrated)")
    dispersion: float = Field(description="Spread factor of the corrected paths (1 when "
                                          "uncalibrated)")
    dispersion_high: float = Field(1.0, description="Spread the upper tail needs (actual above "
                                                    "the forecast), never below dispersion")
    raw_ratio: float | None = Field(description="Sum of actual / sum of expected over the "
                                                "placebos, before shrinkage towards 1")
    ratio_se: float | None = Field(description="Standard error of log(raw_ratio)")
    shrinkage: float = Field(description="Weight of the placebos in log(bias_ratio)")
    min_placebos: int
    pooled_over: Literal["category", "signal"] | None = Field(
        description="category: placebos of the same category; signal: every category and "
                    "region pooled (too few in the category); null: no placebo")
    lead_days: int | None = Field(description="Window start − the frozen forecast's data "
                                              "cut-off")
    reason: str | None = None


class DidOut(BaseModel):
    """Difference-in-differences against similar regions without a campaign."""

    status: Literal["ok", "no_fair_control", "no_interval", "unavailable"]
    reason: str | None = None
    treated: str | None = None
    window_start: dt.date | None = None
    window_end: dt.date | None = None
    controls: list[str] = []
    similarity: dict[str, float | None] = {}
    excluded: dict[str, str | None] = {}
    n_pre_weeks: int = 0
    n_match_weeks: int = 0
    actual: float | None = None
    counterfactual: float | None = None
    effect: float | None = None
    relative_effect: float | None = None
    log_effect: float | None = None
    effect_lower_80: float | None = None
    effect_upper_80: float | None = None
    effect_lower_95: float | None = None
    effect_upper_95: float | None = None
    relative_lower_80: float | None = None
    relative_upper_80: float | None = None
    relative_lower_95: float | None = None
    relative_upper_95: float | None = None
    p_reduced: float | None = None
    n_placebos: int = 0
    placebo_rmse: float | None = None
    df: float | None = Field(None, description="Degrees of freedom of the interval's t "
                             "quantiles: non-overlapping placebo windows")
    significant: bool = False
    mde: float | None = _MDE
    campaigns_needed: int | None = _NEEDED


class EffectOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EFFECT_EXAMPLE]})
    campaign_id: str
    campaign_status: str
    series_id: str
    signal: Signal
    category: str
    region: str
    window_start: dt.date
    window_end: dt.date
    approved_run_id: str | None = Field(description="Forecast frozen at approval")
    evaluation: Literal["complete", "interim", "pending", "unavailable"] = Field(
        description="complete: every window week observed; interim: some; pending: none yet; "
                    "unavailable: no frozen counterfactual (see reason)")
    reason: str | None
    weeks_in_window: int
    weeks_observed: int
    weeks: list[EffectWeek]
    calibration: CalibrationOut | None = Field(
        description="Placebo calibration of the counterfactual (null: no frozen forecast)")
    counterfactual: CounterfactualEffect | None = Field(
        description="Calibrated estimate, or the raw one labelled calibrated=false")
    counterfactual_raw: CounterfactualEffect | None = Field(
        description="Against the frozen paths as stored (only when a calibrated estimate is "
                    "shown)")
    did: DidOut | None
    measurable_from: dt.date = Field(description="First day an interim estimate is possible "
                                                 "(the first window week complete)")
    complete_on: dt.date = Field(description="First day the whole window is observed")
    reason_zh: str | None = Field(description="The reason in Chinese (dashboard)")
    materialised: Materialised | None = Field(
        None, description="When the evaluation worker computed this answer")


class ScoreGroup(BaseModel):
    key: str
    label: str = Field(description="Chinese name of the category, region or department")
    campaigns: int = Field(description="Approved or later (not withdrawn), by send date")
    campaigns_sent: int
    spike_windows: int = Field(description="Actual spike windows starting in the period")
    spike_windows_caught: int = Field(description="…of which a reminder went out before")
    catch_rate: float | None
    median_lead_days: float | None
    campaigns_evaluated: int = Field(description="Sent, window complete, and a calibrated "
                                                 "counterfactual or a DiD with status ok")
    counted_counterfactual: int = Field(description="…counted by the calibrated counterfactual")
    counted_did: int = Field(description="…counted by the DiD (counterfactual uncalibrated)")
    not_counted: int = Field(description="Sent campaigns without an estimate to count")
    avoided: float | None = Field(description="Counterfactual − actual, summed over the "
                                              "counted campaigns (counts)")
    avoided_lower_80: float | None
    avoided_upper_80: float | None
    avoided_lower_95: float | None
    avoided_upper_95: float | None
    deliveries: int
    deliveries_failed: int = Field(description="Outbox rows dead-lettered")
    pooled: PooledGroup | None = Field(None, description="Pooled effect of the group's sent "
                                                         "campaigns (lead with this)")


class ScoredCampaign(BaseModel):
    campaign_id: str
    category: str
    region: str
    window_start: dt.date
    window_end: dt.date
    evaluation: Literal["complete", "interim", "pending", "unavailable"]
    method: Literal["counterfactual", "did", "none"] = Field(
        description="counterfactual: calibrated counterfactual; did: difference-in-differences "
                    "(status ok); none: not counted (see reason)")
    avoided: float | None
    avoided_lower_80: float | None
    avoided_upper_80: float | None
    avoided_lower_95: float | None
    avoided_upper_95: float | None
    reason: str | None
    contribution: dict[str, Contribution] | None = Field(
        None, description="This campaign's part in its group's pooled estimates, per method "
                          "(counterfactual, did)")


class Scorecard(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "group_by": "category", "signal": "complaints", "from": "2027-01-01",
        "to": "2027-03-31", "interval_method": "sum of the per-campaign bounds",
        "groups": [{**_GROUP, "pooled": _POOLED}],
        "total": {**_GROUP, "key": "total", "label": "合计", "pooled": _POOLED},
        "pooled": {"by": "category", "season_correlation": 0.3,
                   "groups": [{"key": "fireworks", "label": "烟花爆竹", **_POOLED}]},
        "campaigns": [{"campaign_id": _CID, "category": "fireworks", "region": "150100",
                       "window_start": "2027-02-01", "window_end": "2027-02-14",
                       "evaluation": "complete", "method": "counterfactual",
                       "avoided": 84.3, "avoided_lower_80": 44.1, "avoided_upper_80": 124.6,
                       "avoided_lower_95": 22.8, "avoided_upper_95": 146.0,
                       "reason": None, "contribution": {"did": {
                           "weight": 0.14, "relative_effect": -0.24,
                           "relative_lower_95": -0.42, "relative_upper_95": -0.04,
                           "mde": -0.29, "campaigns_needed": 6}}}]}]})
    group_by: Literal["category", "region", "department"]
    signal: Signal
    from_: dt.date | None = Field(None, alias="from")
    to: dt.date | None
    interval_method: str = Field(description="How the intervals of the counted campaigns are "
                                             "summed")
    groups: list[ScoreGroup]
    total: ScoreGroup
    campaigns: list[ScoredCampaign] = Field(description="Sent campaigns of the period and the "
                                                        "estimate each contributes")
    pooled: PooledBlock | None = Field(None, description="Pooled effects grouped by "
                                                         "`pooled_by`")
    materialised: Materialised | None = Field(
        None, description="When the evaluation worker computed this answer")



class Materialised(BaseModel):
    """When the served figures were computed, and whether they are being recomputed."""

    computed_at: dt.datetime | None = Field(
        description="When the evaluation worker computed these figures (null: not yet)")
    inputs_changed_at: dt.datetime | None = Field(
        description="The latest change of the evaluation's inputs (refit, dispatch, campaign "
                    "status, import, a week closing)")
    recompute_pending: bool = Field(
        description="The inputs changed after the figures were computed: the worker is "
                    "recomputing them (the figures shown are the previous ones)")
    reason: str | None = Field(None, description="What changed the inputs last")


class EvaluationPending(BaseModel):
    """202: nothing computed yet for this query; the worker was asked to compute it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "status": "pending", "retry_after": 5, "materialised": {
            "computed_at": None, "inputs_changed_at": "2027-02-20T02:00:00Z",
            "recompute_pending": True, "reason": "forecast run finished"}}]})
    status: Literal["pending"] = "pending"
    retry_after: int = Field(description="Seconds to wait before asking again")
    materialised: Materialised


EffectOut.model_rebuild()
Scorecard.model_rebuild()
