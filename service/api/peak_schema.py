"""The one declaration of a predicted peak's public fields.

``PeakPublic`` (``/v1/forecast-runs/{id}/peaks``) and the campaign's ``peak``
(``PeakOut``) derive from these bases; only the fields each adds are declared there.
Field order in the JSON follows the bases from the last to the first (Pydantic collects
fields along the reversed MRO): key, then place (category, region), then window.
The planner's structural ``service.campaigns.planning.PeakLike`` stays a Protocol, since
ORM rows and test fakes must fit it.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PeakKey", "PeakPlace", "PeakWindow"]


class PeakKey(BaseModel):
    """Which peak: its id, forecast run, series and signal."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    run_id: str
    series_id: str
    signal: str


class PeakPlace(PeakKey):
    """A peak key with the category and region of its series."""

    category: str
    region: str


class PeakWindow(BaseModel):
    """The predicted window of a peak, its size and where it stands in a split window."""

    model_config = ConfigDict(from_attributes=True)
    start: dt.date
    end: dt.date
    peak_week: dt.date
    expected_count: float = Field(description="Expected count over the window")
    expected_excess: float = Field(description="Expected count above the threshold")
    max_probability: float = Field(description="Highest weekly P(spike) in the window")
    threshold: float = Field(description="Spike threshold T of the series")
    onset: dt.date | None = Field(None, description="Monday of the expected onset week, from "
                                  "the sample paths (on or before `start`); reminders are "
                                  "sent lead days before it")
    p_min: float | None = Field(None, description="Decision threshold the run used for the "
                                "category (see `decision`)")
    window_start: dt.date | None = Field(None, description="First day of the whole predicted "
                                         "window this campaign window belongs to")
    window_end: dt.date | None = Field(None, description="Last day of the whole predicted "
                                       "window")
    part: int | None = Field(None, description="Position of this campaign window in the "
                             "predicted window (1-based)")
    parts: int | None = Field(None, description="Campaign windows the predicted window was "
                              "split into (longer than the category's max_campaign_weeks)")
