"""The knobs of the sample generator: category behaviour, seasonal drivers, enforcement
campaigns, day-type and time-of-day factors, sources; the random streams and the configuration
files. They live here and nowhere else; nothing in ``models/`` may read them."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

HERE = Path(__file__).resolve().parent
HOTLINE = "12345-hotline"
WEB = "web-portal"
ENF_SOURCE = "enforcement-platform"
WEB_PORTAL_FROM = date(2021, 3, 1)  # the web portal opened later than the hotline
WEB_SHARE = 0.05
EPOCH = date(2019, 1, 1)  # trends are anchored here so a short range sees the same levels
HOTLINE_GROWTH = 0.03  # log change per year of all hotline volumes (more people use 12345)
Array = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Knobs: category behaviour and seasonal drivers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cat:
    base: float           # complaints per million residents per day outside any season
    dispersion: float     # gamma shape of the daily noise (smaller = more over-dispersed)
    weekend: float        # factor on ordinary weekends
    holiday: float        # factor on official days off
    trend: float          # log change per year
    hours: str            # time-of-day profile
    affinity: dict[str, float]  # per-capita factor per league (default 1)
    violation_rate: float       # share of inspections that find a violation
    individuals: float          # share of enforcement against individuals (no entity id)


CATS: dict[str, Cat] = {
    "fireworks": Cat(0.10, 3.0, 1.05, 1.15, -0.04, "evening",
                     {"150100": 0.8, "150400": 1.3, "150500": 1.2, "152200": 1.1}, 0.30, 0.5),
    "migrant_wages": Cat(0.30, 4.0, 0.55, 0.35, -0.07, "office",
                         {"150100": 1.3, "150200": 1.2, "150600": 1.3, "152900": 0.7},
                         0.40, 0.0),
    "grassland_fire": Cat(0.08, 2.5, 1.10, 1.10, -0.02, "daytime",
                          {"150100": 0.5, "150200": 0.5, "150300": 0.3, "150400": 1.4,
                           "150500": 1.3, "150700": 2.4, "150900": 1.2, "152200": 2.0,
                           "152500": 3.0, "152900": 1.6}, 0.25, 0.7),
    "tourism_pricing": Cat(0.10, 2.5, 1.15, 1.30, 0.06, "daytime",
                           {"150100": 1.2, "150300": 0.6, "150400": 1.0, "150500": 0.7,
                            "150600": 1.6, "150700": 2.2, "152200": 1.3, "152500": 2.0,
                            "152900": 1.8}, 0.35, 0.1),
    "food_safety": Cat(0.55, 5.0, 0.80, 0.70, 0.01, "office",
                       {"150100": 1.2, "150200": 1.1}, 0.30, 0.05),
    "gas_safety": Cat(0.18, 4.0, 0.80, 0.75, 0.04, "office",
                      {"150100": 1.3, "150200": 1.3, "150300": 1.2, "150600": 1.1,
                       "152900": 0.8}, 0.35, 0.3),
    "illegal_fishing": Cat(0.05, 2.5, 1.35, 1.25, -0.05, "daytime",
                           {"150100": 0.9, "150200": 1.8, "150300": 2.5, "150400": 0.6,
                            "150500": 0.6, "150600": 1.2, "150700": 1.8, "150800": 3.0,
                            "150900": 0.5, "152200": 0.7, "152500": 0.4, "152900": 0.8},
                           0.45, 0.8),
    "exam_noise": Cat(0.07, 3.0, 0.90, 0.80, 0.02, "night",
                      {"150100": 1.4, "150200": 1.3, "150300": 1.1, "150600": 1.1,
                       "152500": 0.7, "152900": 0.7}, 0.40, 0.2),
    "wildlife_poaching": Cat(0.04, 2.5, 1.00, 0.90, -0.03, "daytime",
                             {"150100": 0.4, "150200": 0.5, "150300": 0.4, "150700": 2.8,
                              "152200": 2.2, "152500": 2.0, "152900": 2.4, "150400": 1.2},
                             0.30, 0.8),
    "coal_truck_overload": Cat(0.07, 3.0, 0.80, 0.60, 0.03, "daytime",
                               {"150100": 0.6, "150200": 1.4, "150300": 3.0, "150400": 0.8,
                                "150500": 1.3, "150600": 2.6, "150700": 1.0, "150800": 0.6,
                                "150900": 1.1, "152200": 0.5, "152500": 1.5, "152900": 1.6},
                               0.45, 0.3),
}


@dataclass(frozen=True)
class Season:
    """A recurring surge: offsets (days) from an anchor date give its trapezoid shape."""

    driver: str
    anchor: str                        # festival name, "naadam", or "MM-DD"
    offsets: tuple[int, int, int, int]  # start, peak start, peak end, end
    mult: tuple[float, float]          # peak multiplier range, drawn per year
    shift_sd: float = 0.0              # whole-season shift per year (weather), days
    region_shift_sd: float = 0.0       # extra shift per league, days
    jitter_sd: float = 2.0             # ramp start/end wobble per year, days


SEASONS: dict[str, tuple[Season, ...]] = {
    "fireworks": (
        Season("spring_festival", "spring_festival", (-28, -3, 1, 6), (9.0, 16.0), jitter_sd=4),
        Season("lantern_festival", "spring_festival", (11, 13, 14, 16), (5.0, 9.0), jitter_sd=0),
        Season("new_year", "12-31", (-3, 0, 0, 1), (2.0, 3.5), jitter_sd=0),
    ),
    "migrant_wages": (
        Season("pre_spring_festival", "spring_festival", (-56, -24, -5, 3), (3.0, 5.0),
               jitter_sd=5),
        Season("mid_year_settlement", "06-25", (-15, -5, 5, 15), (1.3, 1.7), shift_sd=3),
    ),
    "grassland_fire": (
        Season("spring_fire_season", "03-15", (0, 25, 60, 92), (2.5, 5.0), shift_sd=7,
               region_shift_sd=4),
        Season("qingming", "qingming", (-5, -1, 1, 4), (6.0, 11.0), jitter_sd=1),
        Season("autumn_fire_season", "09-15", (0, 20, 45, 61), (2.0, 4.0), shift_sd=7,
               region_shift_sd=4),
    ),
    "tourism_pricing": (
        Season("summer_tourism", "07-01", (-10, 10, 45, 62), (3.5, 7.0), shift_sd=5,
               region_shift_sd=3),
        Season("naadam", "naadam", (-2, 0, 3, 5), (1.8, 3.0), jitter_sd=1),
        Season("national_day", "national_day", (-3, 0, 6, 8), (3.0, 6.0), jitter_sd=0),
    ),
    "food_safety": (
        Season("summer_heat", "06-10", (0, 30, 70, 95), (1.5, 2.2), shift_sd=7,
               region_shift_sd=3),
        Season("dragon_boat", "dragon_boat", (-10, -3, 0, 2), (1.8, 2.8)),
        Season("mid_autumn", "mid_autumn", (-21, -7, 0, 3), (2.3, 3.8)),
        Season("pre_spring_festival", "spring_festival", (-24, -10, -1, 4), (1.5, 2.1)),
    ),
    "gas_safety": (
        Season("heating_season", "10-15", (-5, 50, 110, 182), (2.0, 3.2), shift_sd=5,
               region_shift_sd=3),
        Season("heating_start", "10-15", (-3, 2, 9, 16), (1.8, 3.0), shift_sd=5,
               region_shift_sd=3, jitter_sd=1),
    ),
    "illegal_fishing": (
        Season("closed_fishing_season", "04-01", (-5, 20, 80, 121), (3.5, 6.5), shift_sd=6,
               region_shift_sd=3),
    ),
    "exam_noise": (
        Season("gaokao", "06-07", (-10, -4, 2, 4), (8.0, 14.0), jitter_sd=1),
        Season("zhongkao", "06-20", (-5, -2, 1, 3), (3.0, 5.0), shift_sd=3, jitter_sd=1),
        Season("summer_nights", "06-01", (0, 30, 75, 100), (1.3, 1.7), shift_sd=7),
    ),
    "wildlife_poaching": (
        Season("winter_poaching", "12-01", (-10, 20, 65, 90), (3.0, 5.0), shift_sd=7,
               region_shift_sd=4),
        Season("spring_migration", "03-20", (0, 15, 30, 45), (1.6, 2.4), shift_sd=6),
        Season("autumn_migration", "09-25", (0, 12, 30, 45), (1.5, 2.2), shift_sd=6),
    ),
    "coal_truck_overload": (
        Season("winter_coal_demand", "10-25", (0, 40, 100, 130), (2.0, 3.2), shift_sd=7,
               region_shift_sd=3),
    ),
}

# Enforcement campaigns (专项行动): inspections multiply inside these windows.
CAMPAIGNS: dict[str, tuple[Season, ...]] = {
    "fireworks": (Season("campaign", "spring_festival", (-30, -20, 15, 18), (2.5, 3.5)),),
    "migrant_wages": (Season("campaign", "spring_festival", (-75, -65, -3, 0), (2.0, 3.0)),),
    "grassland_fire": (Season("campaign", "03-20", (0, 7, 60, 75), (1.8, 2.5)),),
    "tourism_pricing": (Season("campaign", "06-25", (0, 7, 60, 70), (1.8, 2.5)),
                        Season("campaign", "national_day", (-10, -5, 6, 8), (1.8, 2.5))),
    "food_safety": (Season("campaign", "mid_autumn", (-25, -18, 0, 2), (1.8, 2.5)),
                    Season("campaign", "spring_festival", (-30, -20, 0, 3), (1.5, 2.0))),
    "gas_safety": (Season("campaign", "10-01", (0, 10, 50, 60), (2.0, 3.0)),),
    "illegal_fishing": (Season("campaign", "04-01", (0, 5, 85, 91), (2.0, 3.0)),),
    "exam_noise": (Season("campaign", "05-25", (0, 5, 16, 18), (2.5, 3.5)),),
    "wildlife_poaching": (Season("campaign", "12-01", (0, 10, 75, 90), (1.5, 2.2)),),
    "coal_truck_overload": (Season("campaign", "11-01", (0, 10, 75, 90), (1.8, 2.5)),),
}

ONE_OFF_DRIVERS = ("media_report", "viral_post", "local_incident", "policy_change")
ONE_OFFS_PER_YEAR = 7.0
DOW_FACTOR = np.array([1.12, 1.04, 1.0, 0.98, 0.94, 1.0, 1.0])
MAKEUP_FACTOR = 0.95
HOURS: dict[str, list[float]] = {
    #        0    1    2    3    4    5    6    7    8    9   10   11
    "office": [.15, .1, .08, .08, .1, .15, .3, .8, 2.5, 4., 4., 3.5,
               #  12   13   14   15   16   17   18   19   20   21   22   23
               2., 2.8, 4., 4., 3.6, 2.5, 1.4, 1.1, 1., .8, .5, .3],
    "daytime": [.1, .08, .06, .06, .08, .2, .5, 1.2, 2.5, 3.5, 3.8, 3.5,
                2.5, 2.8, 3.5, 3.5, 3.2, 2.6, 1.8, 1.4, 1.1, .8, .4, .2],
    "evening": [1.5, .8, .3, .1, .1, .1, .2, .5, 1., 1.4, 1.5, 1.5,
                1.3, 1.4, 1.5, 1.6, 1.8, 2.2, 3.5, 4.5, 5., 4.5, 3.5, 2.5],
    "night": [.8, .4, .2, .1, .1, .2, .6, 1., 1.8, 2.2, 2.2, 2., 1.6, 1.8, 2., 2., 2.,
              1.8, 1.8, 2.2, 3., 3.8, 4., 2.5],
}
CHANNELS = ("phone", "wechat", "app", "web")
CHANNEL_P = (0.66, 0.16, 0.13, 0.05)
ACTIONS = ("warning", "correction_order", "penalty", "inspection")
ACTION_P = (0.45, 0.35, 0.15, 0.05)


# --------------------------------------------------------------------------------------------
# Random streams: one per purpose, stable across calls (crc32 of a label, never hash()).
# --------------------------------------------------------------------------------------------
def random_stream(seed: int, *labels: object) -> np.random.Generator:
    keys = [zlib.crc32(str(label).encode("utf-8")) for label in labels]
    return np.random.default_rng([seed, *keys])


# --------------------------------------------------------------------------------------------
# Configuration files
# --------------------------------------------------------------------------------------------
def load_yaml(name: str) -> dict[str, Any]:
    with (HERE / name).open(encoding="utf-8") as fh:
        loaded: dict[str, Any] = yaml.safe_load(fh)
    return loaded
