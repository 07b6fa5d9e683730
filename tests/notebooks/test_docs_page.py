"""docs/notebooks.md ("use `models` from a notebook"): its Python blocks run, in order, in one
namespace, headless (Agg via the environment), and the plot block draws a figure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PAGE = ROOT / "docs" / "notebooks.md"


def test_docs_page_code_blocks_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    script = "\n\n".join(blocks) + (
        "\nimport matplotlib.pyplot as _plt\n"
        "assert _plt.get_fignums(), 'no figure drawn'\n"
        "assert len(forecast) == 56 and {'yhat', 'yhat_lower'} <= set(forecast.columns)\n"
        "assert 'f1' in set(result.summary['metric'])\n"
        "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    env.update({"PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg",
                "FOREWARN_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")
