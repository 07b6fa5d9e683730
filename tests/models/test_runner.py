"""run_forecasts: engines agree, progress is reported, failures stay rows."""

from __future__ import annotations

import pandas as pd
import pytest

from models.runner import RunResult, run_forecasts

HORIZON = 70
PARAMS = {"n_samples": 50}


@pytest.fixture(scope="module")
def small(panel: pd.DataFrame) -> pd.DataFrame:
    keep = ["medium", "gappy", "short", "zero", "bad"]
    return panel[panel["unique_id"].isin(keep)].reset_index(drop=True)


@pytest.fixture(scope="module")
def serial(small: pd.DataFrame) -> RunResult:
    return run_forecasts(small, horizon=HORIZON, params=PARAMS, engine="serial", chunk_size=2)


def _assert_same(a: RunResult, b: RunResult) -> None:
    pd.testing.assert_frame_equal(a.output.daily, b.output.daily)
    pd.testing.assert_frame_equal(a.output.weekly_samples, b.output.weekly_samples)
    pd.testing.assert_frame_equal(a.output.flags, b.output.flags)
    pd.testing.assert_frame_equal(a.output.failures, b.output.failures)
    assert a.model_json.keys() == b.model_json.keys()


def test_empty_frame() -> None:
    empty = pd.DataFrame({"unique_id": pd.Series(dtype=str),
                          "ds": pd.Series(dtype="datetime64[ns]"), "y": pd.Series(dtype=float)})
    res = run_forecasts(empty, horizon=7, engine="serial")
    assert res.output.daily.empty and res.model_json == {}


def test_chunks_hold_whole_series_in_id_order() -> None:
    from models.runner import _chunks

    frame = pd.DataFrame({"unique_id": ["b", "b", "a", "c", "a", "d", "c"],
                          "ds": pd.date_range("2024-01-01", periods=7), "y": range(7)})
    chunks = _chunks(frame, 2)
    assert [sorted(set(c["unique_id"])) for c in chunks] == [["a", "b"], ["c", "d"]]
    assert sum(len(c) for c in chunks) == len(frame)
    a = chunks[0][chunks[0]["unique_id"] == "a"]
    assert list(a["y"]) == [2, 4]  # row order inside a series kept


def test_unknown_engine(small: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="engine"):
        run_forecasts(small, horizon=7, engine="spark")  # type: ignore[arg-type]


@pytest.mark.slow
def test_serial_result(serial: RunResult) -> None:
    out = serial.output
    assert set(out.daily["unique_id"]) == {"medium", "gappy", "short", "zero"}
    assert list(out.failures["unique_id"]) == ["bad"]
    assert set(serial.model_json) == {"medium", "gappy"}  # Prophet-fitted series only
    assert set(serial.fit_seconds) == {"medium", "gappy", "short", "zero", "bad"}
    assert [int(c) for c in out.weekly_samples.columns] == list(range(50))


@pytest.mark.slow
def test_local_engine_matches_serial(small: pd.DataFrame, serial: RunResult) -> None:
    progress: list[tuple[int, int]] = []
    local = run_forecasts(small, horizon=HORIZON, params=PARAMS, engine="local", n_jobs=2,
                          chunk_size=1, on_progress=lambda d, n: progress.append((d, n)))
    _assert_same(serial, local)
    assert len(progress) == 5 and progress[-1] == (5, 5)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


@pytest.mark.slow
def test_warm_start_through_runner(small: pd.DataFrame, serial: RunResult) -> None:
    from models.forecast import ProphetForecaster

    rebuilt = ProphetForecaster.from_json({"medium": serial.model_json["medium"]})
    init = {"medium": rebuilt.params_("medium")}
    medium = small[small["unique_id"] == "medium"]
    res = run_forecasts(medium, horizon=HORIZON, params=PARAMS, engine="serial", init=init)
    assert set(res.model_json) == {"medium"} and res.output.failures.empty


@pytest.mark.slow
def test_dask_local_cluster_matches_serial(small: pd.DataFrame, serial: RunResult) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        progress: list[tuple[int, int]] = []
        res = run_forecasts(small, horizon=HORIZON, params=PARAMS, engine="dask",
                            dask_address=cluster.scheduler_address, chunk_size=2,
                            on_progress=lambda d, n: progress.append((d, n)))
    _assert_same(serial, res)
    assert progress[-1] == (5, 5)


@pytest.mark.slow
def test_backtest_skips_the_pairs_the_caller_already_has(panel: pd.DataFrame) -> None:
    from models.runner import BacktestSpec

    frame = panel[panel["unique_id"].isin(["regular", "medium"])].reset_index(drop=True)
    o1, o2 = pd.Timestamp("2026-08-30"), pd.Timestamp("2026-09-27")
    spec = BacktestSpec(origins=(o1, o2), horizon_weeks=8, skip=frozenset({("regular", o1)}))
    res = run_forecasts(frame, horizon=28, params=PARAMS, engine="serial", backtest=spec)
    pairs = set(zip(res.backtest_weekly["unique_id"], res.backtest_weekly["cutoff"],
                    strict=True))
    assert pairs == {("regular", o2), ("medium", o1), ("medium", o2)}
    assert set(res.backtest_seconds) == {"regular", "medium"}
    weeks = res.backtest_weekly[res.backtest_weekly["cutoff"] == o2]
    assert weeks.groupby("unique_id")["week"].nunique().eq(8).all()
    assert weeks["p_spike"].between(0, 1).all()
