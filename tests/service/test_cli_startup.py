"""CLI start-up stays light: ``--help`` loads no database, data or rich-text library, and a
command on a current database does not load Alembic (issue 13 §6; timings: bench/cli_startup.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from service.migrate import alembic_config, script_heads
from tests.conftest import ROOT

HEAVY = ("sqlalchemy", "pandas", "numpy", "rich", "structlog", "alembic", "pydantic_settings",
         "prophet", "fastapi")


def _modules_after(argv: list[str], tmp_path: Path) -> set[str]:
    """The top-level packages loaded by ``forewarn ARGV`` (run in a fresh interpreter)."""
    code = ("import sys, runpy\n"
            f"sys.argv = ['forewarn', *{argv!r}]\n"
            "try:\n    runpy.run_module('service.cli', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "sys.stderr.write('\\n' + __import__('json').dumps(sorted({m.split('.')[0] "
            "for m in sys.modules})))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    env.update({"PYTHONPATH": str(ROOT),
                "FOREWARN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"})
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_help_loads_no_heavy_module(tmp_path: Path) -> None:
    for argv in (["--help"], ["keys", "--help"], ["campaigns", "--help"]):
        loaded = _modules_after(argv, tmp_path)
        assert "typer" in loaded
        assert not loaded & set(HEAVY), (argv, sorted(loaded & set(HEAVY)))


def test_command_on_current_database_skips_alembic(tmp_path: Path) -> None:
    first = _modules_after(["db", "upgrade"], tmp_path)  # migrates: needs Alembic
    assert "alembic" in first
    again = _modules_after(["keys", "list"], tmp_path)
    assert "sqlalchemy" in again
    assert "alembic" not in again and "pandas" not in again
    # listing series and campaigns needs no data library (issue 16: numpy, pandas and scipy
    # load on first use, e.g. when a randomised wave is drawn)
    for argv in (["series", "list", "--json"], ["campaigns", "list"]):
        loaded = _modules_after(argv, tmp_path)
        assert "sqlalchemy" in loaded
        assert not loaded & {"numpy", "pandas", "scipy", "alembic"}, (argv, loaded)


def test_script_heads_read_as_text_match_alembic() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script_heads() == frozenset(script.get_heads())
