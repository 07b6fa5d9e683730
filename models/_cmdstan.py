"""Talking to Prophet's compiled Stan model: a direct optimiser call and a faster JSON writer.

:func:`optimize` runs Prophet's own compiled model (``prophet/stan_model/prophet_model.bin``,
shipped with the wheel) as CmdStan's ``optimize`` method, the way Prophet's
``CmdStanPyBackend.fit`` does through cmdstanpy, without cmdstanpy's per-call overhead (run
directory bookkeeping, argument validation, line-by-line console capture, CSV scanner): data
and inits are written with ``orjson``, the console is discarded, the one result row is parsed
with numpy. Same binary, same algorithm (LBFGS; Newton below 100 observations as Prophet
does), same defaults (``iter=10000`` and CmdStan's tolerances), so the same optimum.

:func:`fast_cmdstan_json` patches cmdstanpy's JSON writer (``stanio.write_stan_json`` walks
every float in Python: about a quarter of a cmdstanpy fit, FIELD-NOTES) with
:func:`write_stan_json_fast`, scoped to a block; used by the ``fit_path="prophet"`` path.
orjson writes the same shortest round-trip float text, so the forecasts are identical
(tested); anything orjson cannot encode exactly (NaN/inf -> null, unusual types) goes to the
original writer.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = ["fast_cmdstan_json", "write_stan_json_fast", "optimize", "model_exe",
           "StanError"]

_LOCK = threading.Lock()
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_STATE: dict[str, Any] = {"depth": 0}  # nesting count of the patch (threads may overlap)


class StanError(RuntimeError):
    """CmdStan's optimiser exited with an error (message = the tail of its console output)."""


def write_stan_json_fast(path: str, data: Mapping[str, Any]) -> None:
    """Write ``data`` as CmdStan JSON with orjson; fall back to stanio when not exact."""
    from stanio import write_stan_json

    payload = _dumps(data)
    if not payload:
        write_stan_json(path, data)
        return
    with open(path, "wb") as fd:
        fd.write(payload)


def _dumps(data: Mapping[str, Any]) -> bytes:
    """orjson bytes of ``data`` (numpy arrays made C-contiguous), or b"" when not exact."""
    clean: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, bool | np.bool_):
            v = int(v)
        elif isinstance(v, np.ndarray) and not v.flags["C_CONTIGUOUS"]:
            v = np.ascontiguousarray(v)
        clean[k] = v
    try:
        payload = orjson.dumps(clean, option=_OPTIONS)
    except TypeError:
        return b""
    return b"" if b"null" in payload else payload


@contextlib.contextmanager
def fast_cmdstan_json() -> Iterator[None]:
    """Use :func:`write_stan_json_fast` for cmdstanpy's data/init files inside the block."""
    try:
        from cmdstanpy.utils import filesystem
    except ImportError:  # pragma: no cover - cmdstanpy layout changed; keep the slow path
        yield
        return
    with _LOCK:
        if _STATE["depth"] == 0:
            _STATE["original"] = filesystem.write_stan_json  # type: ignore[attr-defined]
            filesystem.write_stan_json = write_stan_json_fast  # type: ignore[attr-defined]
        _STATE["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0:
                filesystem.write_stan_json = _STATE.pop("original")  # type: ignore[attr-defined]


@lru_cache(maxsize=1)
def model_exe() -> Path:
    """Path of Prophet's compiled Stan model (``prophet_model.bin`` in the prophet wheel)."""
    import importlib.resources

    exe = Path(str(importlib.resources.files("prophet") / "stan_model" / "prophet_model.bin"))
    if not exe.exists():  # pragma: no cover - prophet built without the bundled model
        raise FileNotFoundError(f"Prophet's compiled Stan model is missing: {exe}")
    return exe


@lru_cache(maxsize=1)
def _workdir() -> str:
    """One scratch directory per process (files are overwritten call after call; removed
    when the process exits)."""
    path = tempfile.mkdtemp(prefix="forewarn-stan-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def optimize(
    data: Mapping[str, Any],
    init: Mapping[str, Any],
    *,
    algorithm: str | None = None,
    iter: int = 10_000,
    options: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """MAP estimate of Prophet's Stan model for one data set.

    Parameters
    ----------
    data : Prophet's Stan data (``T, S, K, tau, trend_indicator, y, t, cap, t_change, X,
        sigmas, s_a, s_m``); numpy arrays are fine.
    init : initial values (``k, m, delta, beta, sigma_obs``).
    algorithm : ``"lbfgs"``, ``"bfgs"`` or ``"newton"``; default as Prophet: Newton when
        ``T < 100``, LBFGS otherwise.
    iter : maximum iterations (Prophet: 10,000).
    options : more CmdStan optimiser arguments (``{"tol_rel_grad": 1e8}`` etc.); CmdStan's
        defaults otherwise.

    Returns
    -------
    dict of ``(1, n)`` arrays keyed by Stan parameter (``k, m, delta, sigma_obs, beta,
    trend``), as ``CmdStanPyBackend.fit`` returns them.

    Raises
    ------
    StanError
        When CmdStan exits with an error.
    """
    if algorithm is None:
        algorithm = "newton" if int(data["T"]) < 100 else "lbfgs"
    work = _workdir()
    tag = f"{os.getpid()}-{threading.get_ident()}"
    files = {k: os.path.join(work, f"{k}-{tag}.{ext}")
             for k, ext in (("data", "json"), ("init", "json"), ("out", "csv"))}
    for key, payload in (("data", data), ("init", init)):
        raw = _dumps(payload)
        if not raw:
            raise ValueError(f"Stan {key} holds values JSON cannot carry (NaN/inf)")
        with open(files[key], "wb") as fd:
            fd.write(raw)
    cmd = [str(model_exe()), "method=optimize", f"algorithm={algorithm.lower()}"]
    cmd += [f"{k}={v}" for k, v in (options or {}).items()]
    cmd += [f"iter={int(iter)}", "data", f"file={files['data']}", f"init={files['init']}",
            "output", f"file={files['out']}", "refresh=0"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = proc.stdout.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise StanError(f"CmdStan optimize failed ({proc.returncode}): {' | '.join(tail)}")
    with open(files["out"], encoding="ascii") as fd:
        rows = [line for line in fd if line and not line.startswith("#")]
    header = rows[0].strip().split(",")
    values = np.array(rows[-1].strip().split(","), dtype=float)
    return _to_params(header, values)


def _to_params(header: list[str], values: np.ndarray) -> dict[str, np.ndarray]:
    """Group CmdStan's flat ``name.i`` columns into ``(1, n)`` arrays (``lp__`` dropped)."""
    out: dict[str, list[float]] = {}
    for name, value in zip(header, values, strict=True):
        base = name.split(".", 1)[0]
        if base.endswith("__"):
            continue
        out.setdefault(base, []).append(float(value))
    return {k: np.asarray(v, dtype=float).reshape(1, -1) for k, v in out.items()}
