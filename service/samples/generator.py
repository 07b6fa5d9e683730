"""Deterministic synthetic sample data for Inner Mongolia (complaints and enforcement).

``generate(out_dir, seed=...)`` writes the sample set described in ``data/samples/README.md``:
``regions.yaml``, ``categories.yaml``, ``complaints.csv.gz``, ``enforcement.csv.gz``,
``planted_events.csv``, ``planted_gaps.csv``, ``truth_spikes.csv``, ``dirty_complaints.csv``
and ``dirty_complaints.expected.json``. Same arguments give byte-identical files.

How the counts are made (the knobs live in :mod:`service.samples.knobs` and nowhere else;
nothing in ``models/`` may read them): per series (category x league) and day, the expected count is

    base rate x population x category-region affinity x trend x season x day-type x latent

where *season* = 1 + sum of planted surges (lunar festivals from ``holidays``, weather-driven
seasons shifted and resized at random every year, one-off surges no calendar predicts), the
*day type* distinguishes workdays (incl. 调休 working weekends), weekends and official days off,
and *latent* is a weekly log-AR(1) wander. Counts are gamma-Poisson (negative binomial), then
data gaps (a league missing for 1-3 weeks, hotline outages) are cut out.
"""

from __future__ import annotations

import gzip
import io
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from models.peaks import actual_spike_windows
from models.series import to_weekly
from service.samples.dirty import dirty_complaints
from service.samples.knobs import CATS, HERE
from service.samples.planting import assign_driver
from service.samples.records import (
    COMPLAINT_COLUMNS,
    ENFORCEMENT_COLUMNS,
    complaint_records,
    enforcement_records,
)
from service.samples.simulation import Simulation, simulate

__all__ = [
    "expected_counts",
    "DEFAULT_SEED",
    "DEFAULT_START",
    "DEFAULT_END",
    "COMPLAINT_COLUMNS",
    "ENFORCEMENT_COLUMNS",
    "PLANTED_COLUMNS",
    "TRUTH_COLUMNS",
    "GAP_COLUMNS",
    "generate",
]

DEFAULT_SEED = 20201118
DEFAULT_START = date(2019, 1, 1)
DEFAULT_END = date(2026, 10, 31)

PLANTED_COLUMNS = ["unique_id", "driver", "start", "end", "one_off", "multiplier"]
TRUTH_COLUMNS = ["unique_id", "start", "end", "peak_week", "peak_count", "threshold", "driver",
                 "planted", "one_off"]
GAP_COLUMNS = ["region", "source", "start", "end", "kind"]


def _gzip_csv(frame: pd.DataFrame) -> bytes:
    raw = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def generate(
    out_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    start: date = DEFAULT_START,
    end: date = DEFAULT_END,
    scale: float = 1.0,
) -> dict[str, object]:
    """Write the synthetic sample set to ``out_dir``; same arguments give identical bytes.

    Parameters
    ----------
    out_dir : directory to write into (created if missing).
    seed : master seed; every random stream derives from it and a fixed label.
    start, end : first and last day of records (inclusive, Asia/Shanghai local dates).
    scale : multiplies every expected count (1.0 keeps the committed volumes).

    Returns
    -------
    dict with ``files`` (name -> bytes written), ``rows`` (name -> data rows), ``series``,
    ``planted_events``, ``one_off_events``, ``truth_windows``, ``truth_planted``,
    ``truth_one_off``, ``gaps`` and the arguments.

    Files: ``complaints.csv.gz`` (``source, external_id, received_at, category, region, sector,
    channel, text``), ``enforcement.csv.gz`` (``source, external_id, occurred_at, category,
    region, action, violation_found, entity_id, sector``), ``planted_events.csv`` (``unique_id,
    driver, start, end, one_off, multiplier``), ``planted_gaps.csv`` (``region, source, start,
    end, kind``), ``truth_spikes.csv`` (``unique_id, start, end, peak_week, peak_count,
    threshold, driver, planted, one_off``), ``regions.yaml``, ``categories.yaml``,
    ``dirty_complaints.csv`` (GB18030) and ``dirty_complaints.expected.json``.
    """
    if end < start:
        raise ValueError("end must not be before start")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sim = simulate(seed, start, end, scale)

    complaints = complaint_records(seed, start, end, sim)
    enforcement = enforcement_records(sim, seed=seed, start=start, end=end, scale=scale)
    truth = _truth(sim)
    planted = _planted_frame(sim)
    gap_frame = _gap_frame(sim)
    dirty_bytes, expected = dirty_complaints()
    tables = {"complaints.csv.gz": complaints, "enforcement.csv.gz": enforcement,
              "planted_events.csv": planted, "planted_gaps.csv": gap_frame,
              "truth_spikes.csv": truth}
    files = _file_bytes(tables, dirty_bytes, expected)
    for name, data in files.items():
        _write(out_dir / name, data)
    return {
        "files": {name: len(data) for name, data in files.items()},
        "rows": {**{name: len(frame) for name, frame in tables.items()},
                 "dirty_complaints.csv": len(expected)},
        "series": sim.n_s,
        "planted_events": len(planted),
        "one_off_events": int(planted["one_off"].sum()),
        "truth_windows": len(truth),
        "truth_planted": int(truth["planted"].sum()),
        "truth_one_off": int(truth["one_off"].sum()),
        "gaps": len(gap_frame),
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "scale": scale,
    }



def _file_bytes(tables: dict[str, pd.DataFrame], dirty_bytes: bytes,
                expected: list[dict[str, object]]) -> dict[str, bytes]:
    """The bytes of every file of the sample set, in the order they are written."""
    return {
        "regions.yaml": (HERE / "regions.yaml").read_bytes(),
        "categories.yaml": (HERE / "categories.yaml").read_bytes(),
        "complaints.csv.gz": _gzip_csv(tables["complaints.csv.gz"]),
        "enforcement.csv.gz": _gzip_csv(tables["enforcement.csv.gz"]),
        "planted_events.csv": _csv(tables["planted_events.csv"]),
        "planted_gaps.csv": _csv(tables["planted_gaps.csv"]),
        "truth_spikes.csv": _csv(tables["truth_spikes.csv"]),
        "dirty_complaints.csv": dirty_bytes,
        "dirty_complaints.expected.json": (json.dumps(expected, ensure_ascii=False, indent=1)
                                           + "\n").encode("utf-8"),
    }


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode()

def _truth(sim: Simulation) -> pd.DataFrame:
    """The spike windows of the drawn counts, each named after the planted surge that explains
    it best (``truth_spikes.csv``)."""
    daily = pd.DataFrame({
        "unique_id": np.repeat(np.array(sim.uids), sim.n_d),
        "ds": np.tile(sim.days.to_numpy(), sim.n_s),
        "y": sim.counts.reshape(-1).astype(float),
    })
    windows = actual_spike_windows(to_weekly(daily))
    truth = assign_driver(windows, sim.events)
    for col in ("start", "end", "peak_week"):
        truth[col] = pd.to_datetime(truth[col]).dt.strftime("%Y-%m-%d")
    return truth[TRUTH_COLUMNS]


def _planted_frame(sim: Simulation) -> pd.DataFrame:
    """The planted surges (``planted_events.csv``)."""
    planted = pd.DataFrame([{
        "unique_id": ev.unique_id, "driver": ev.driver, "start": ev.start.isoformat(),
        "end": ev.end.isoformat(), "one_off": ev.one_off, "multiplier": ev.multiplier,
    } for ev in sim.events], columns=PLANTED_COLUMNS)
    planted = planted.sort_values(["unique_id", "start", "driver"], kind="stable")
    return planted


def _gap_frame(sim: Simulation) -> pd.DataFrame:
    """The data gaps cut out of the counts (``planted_gaps.csv``)."""
    gap_frame = pd.DataFrame([{"region": g[0], "source": g[1], "start": g[2].isoformat(),
                               "end": g[3].isoformat(), "kind": g[4]} for g in sim.gaps],
                             columns=GAP_COLUMNS)
    return gap_frame


def expected_counts(
    *, seed: int = DEFAULT_SEED, start: date = DEFAULT_START, end: date = DEFAULT_END,
    scale: float = 1.0, surprises: bool = True,
) -> pd.DataFrame:
    """The generator's own expected daily complaint counts, for an *oracle* upper bound.

    Returns a long frame ``unique_id, ds, mu, dispersion``: ``mu`` is the expected count of
    the day after gaps (everything the counts are drawn from, including the latent weekly
    wander no forecaster can know), ``dispersion`` the gamma shape of the daily noise, so
    ``Poisson(mu * Gamma(dispersion, 1 / dispersion))`` has exactly the distribution of the
    committed counts. Used by ``bench/accuracy.py --models oracle`` to show what the spike
    targets allow on this data; nothing in ``models/`` or the service may read it.

    ``surprises=False`` leaves out what no seasonal forecaster can know in advance: the
    one-off surges and the latent weekly wander. What remains (trend, day types, gaps and the
    seasonal surges as they were planted that year, with their random shifts and sizes) is the
    expectation of a *seasonal* oracle: a bound for a forecaster that knows the seasons
    perfectly but cannot foresee surprises.
    """
    sim = simulate(seed, start, end, scale)
    mu = sim.mu_all if surprises else sim.mu_seasonal
    disp = np.repeat([CATS[c].dispersion for c in sim.cat_codes], sim.n_r)
    return pd.DataFrame({
        "unique_id": np.repeat(np.array(sim.uids), sim.n_d),
        "ds": np.tile(sim.days.to_numpy(), sim.n_s),
        "mu": (mu * sim.keep).reshape(-1),
        "dispersion": np.repeat(disp, sim.n_d),
    })
