"""Start-up time of the ``forewarn`` command line, as whole processes.

Each command runs ``--runs`` times as a fresh process (wall clock from ``fork`` to exit) on a
migrated SQLite database with one key and no records. Measured in the same run:

* the floor: ``python -c pass`` (an interpreter that imports nothing);
* the old start-up: the same commands with the ``service`` package of ``--base`` (default:
  the merge base with ``main``), extracted with ``git archive`` to a temporary folder;
* the new start-up: this working tree.

Prints the median and the fastest run of each, and new ÷ old. Issue 13 §6 asks for < 0.5 s
for ``--help`` and simple commands. Run: ``.venv/bin/python bench/cli_startup.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS: list[list[str]] = [
    ["--help"],
    ["keys", "--help"],
    ["db", "current"],
    ["keys", "list"],
    ["series", "list", "--json"],
    ["campaigns", "list"],
]


def _old_tree(base: str, into: Path) -> Path:
    """``service/`` and ``models/`` of commit ``base`` under ``into``."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", base, "service", "models"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def _time(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
        out.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n"
                             f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--base", default=None, help="old commit (default: merge base with main)")
    args = ap.parse_args()
    base = args.base or subprocess.run(
        ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], check=True,
        capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old_root = _old_tree(base, tmp / "old")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
        env.update({"FOREWARN_DATABASE_URL": f"sqlite:///{tmp / 'cli.db'}",
                    "PYTHONDONTWRITEBYTECODE": "1"})
        new_env = {**env, "PYTHONPATH": str(ROOT)}
        old_env = {**env, "PYTHONPATH": str(old_root)}
        cli = [sys.executable, "-m", "service.cli"]
        # the database (migrated by the old code: both read it) and one key
        subprocess.run([*cli, "db", "upgrade"], env=old_env, cwd=tmp, check=True,
                       capture_output=True)
        subprocess.run([*cli, "keys", "create", "--name", "bench", "--scopes", "read"],
                       env=new_env, cwd=tmp, check=True, capture_output=True)
        # byte-code of both trees compiled once (PYTHONDONTWRITEBYTECODE would otherwise
        # make every run recompile the extracted old tree and any edited module), then the
        # page cache warmed
        for tree in (old_root, ROOT):
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "service"),
                            str(tree / "models")], check=True, capture_output=True)
        for e in (old_env, new_env):
            subprocess.run([*cli, "--help"], env=e, cwd=tmp, capture_output=True)
        floor = _time([sys.executable, "-c", "pass"], env, tmp, args.runs)
        print(f"CLI start-up, whole processes, {args.runs} runs each (median / fastest, s); "
              f"old = {base[:10]}")
        print(f"{'floor: python -c pass':<34} {statistics.median(floor):6.3f} / "
              f"{min(floor):6.3f}")
        print(f"{'command':<34} {'old':>15} {'new':>15} {'new/old':>8}")
        for cmd in COMMANDS:
            old = _time([*cli, *cmd], old_env, tmp, args.runs)
            new = _time([*cli, *cmd], new_env, tmp, args.runs)
            ratio = statistics.median(new) / statistics.median(old)
            print(f"{'forewarn ' + ' '.join(cmd):<34} {statistics.median(old):6.3f} / "
                  f"{min(old):5.3f} {statistics.median(new):6.3f} / {min(new):5.3f} "
                  f"{ratio:8.2f}")
        load = os.getloadavg()
        print(f"load average during the run: {load[0]:.1f} (on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
