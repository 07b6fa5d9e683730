"""Calendar features for the direct Prophet path, built once per batch and cached per process:
holiday indicators (:func:`models.calendar.holiday_features`) and ``is_workday`` over a
contiguous day range, the Prophet ``holidays`` frame that rebuilds exactly the kept columns,
and the mapping between feature names and Prophet's ``<holiday>_delim_<offset>`` keys."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from models import calendar

__all__ = []

#: The working-day regressor (0/1) next to the holiday columns.
_WORKDAY = "is_workday"


@dataclass(frozen=True)
class _Calendar:
    """Calendar features over a contiguous day range (built once per batch)."""

    start: np.datetime64
    names: list[str]  # feature names ``<holiday><offset>`` (models.calendar.feature_name)
    values: np.ndarray  # (days, len(names)) 0/1 holiday indicators
    workday: np.ndarray  # (days,) 0/1

    @classmethod
    def build(cls, start: pd.Timestamp, end: pd.Timestamp, include_local: bool,
              block_days: int) -> _Calendar:
        """Cached per process (a worker builds the batch calendar once, not per chunk)."""
        return _build_calendar(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize(),
                               bool(include_local), int(block_days))

    @classmethod
    def _build(cls, start: pd.Timestamp, end: pd.Timestamp, include_local: bool,
               block_days: int) -> _Calendar:
        feats = calendar.holiday_features(start, end, include_local=include_local,
                                          block_days=block_days)
        work = calendar.day_table(start, end)["is_workday"].to_numpy(dtype=float)
        return cls(np.datetime64(pd.Timestamp(start).date(), "D"), list(feats.columns),
                   feats.to_numpy(dtype=float), work)

    @property
    def end(self) -> np.datetime64:
        return self.start + np.timedelta64(len(self.workday) - 1, "D")

    def rows(self, ds: np.ndarray) -> np.ndarray:
        pos = (ds.astype("datetime64[D]") - self.start).astype(np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= len(self.workday)):
            raise ValueError("days outside the calendar range")
        return pos

    def column(self, name: str, pos: np.ndarray) -> np.ndarray:
        """Values of feature ``name`` (or ``is_workday``) on day positions ``pos``; 0 for a
        feature without an occurrence in this range."""
        if name == _WORKDAY:
            return np.asarray(self.workday[pos], dtype=float)
        try:
            j = self.names.index(name)
        except ValueError:
            return np.zeros(len(pos))
        return np.asarray(self.values[pos, j], dtype=float)

    def holidays(self, keep: np.ndarray) -> pd.DataFrame:
        """Prophet ``holidays`` frame whose features are exactly the columns ``keep``: one row
        per occurrence, ``ds`` = the base day and ``lower_window = upper_window = offset``, so
        Prophet's own loop (``m.predict``) rebuilds the same ``<holiday>_delim_<offset>``
        columns; rows cover the whole calendar range (history and the days ahead)."""
        col, day = np.nonzero(self.values[:, keep].T)
        split = [_split_feature(self.names[j]) for j in keep]
        offsets = np.array([o for _, o in split], dtype=np.int64)[col]
        base = self.start + (day - offsets).astype("timedelta64[D]")
        return pd.DataFrame({
            "holiday": np.array([h for h, _ in split], dtype=object)[col],
            "ds": base.astype("datetime64[ns]"),
            "lower_window": offsets, "upper_window": offsets})


@lru_cache(maxsize=16)
def _build_calendar(start: pd.Timestamp, end: pd.Timestamp, include_local: bool,
                    block_days: int) -> _Calendar:
    cal = _Calendar._build(start, end, include_local, block_days)
    cal.values.flags.writeable = False  # shared between calls: read-only
    cal.workday.flags.writeable = False
    return cal


def _split_feature(name: str) -> tuple[str, int]:
    """``"pre_spring_festival-20"`` -> ``("pre_spring_festival", -20)``."""
    i = max(name.rfind("+"), name.rfind("-"))
    return name[:i], int(name[i:])


def _holiday_features_of(frame: pd.DataFrame | None) -> list[str]:
    """Feature names (:func:`models.calendar.feature_name`) of the columns Prophet builds from
    a holidays ``frame``, in Prophet's column order (sorted ``<holiday>_delim_<offset>``)."""
    if frame is None or not len(frame):
        return []
    lw = frame["lower_window"].to_numpy(dtype=np.int64)
    uw = frame["upper_window"].to_numpy(dtype=np.int64)
    pairs = {(str(h), int(o)) for h, a, b in zip(frame["holiday"], lw, uw, strict=True)
             for o in range(a, b + 1)}
    ordered = sorted(pairs, key=lambda p: f"{p[0]}_delim_{'+' if p[1] >= 0 else '-'}{abs(p[1])}")
    return [calendar.feature_name(h, o) for h, o in ordered]


def _prophet_key(name: str) -> str:
    holiday, offset = _split_feature(name)
    return f"{holiday}_delim_{'+' if offset >= 0 else '-'}{abs(offset)}"


def _calendar_for(dates: pd.DatetimeIndex, cache: dict[pd.Timestamp, _Calendar],
                  include_local: bool, block_days: int) -> _Calendar:
    """Calendar covering ``dates`` (cached per first day: every series of a batch usually
    shares its future days)."""
    key = pd.Timestamp(dates[0])
    cal = cache.get(key)
    end = pd.Timestamp(dates[-1])
    if cal is None or len(cal.workday) < (end - key).days + 1:
        cal = _Calendar.build(key, end, include_local, block_days)
        cache[key] = cal
    return cal
