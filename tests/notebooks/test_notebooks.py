"""Execute every notebook in notebooks/ against data/samples (fails on any cell error) in a
fresh kernel with the inline backend, as JupyterLab runs them: every notebook that plots
shows its figures (image outputs), and none sets a backend itself — CI stays headless
through the environment (``MPLBACKEND``), not the notebook."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
INLINE = "module://matplotlib_inline.backend_inline"


def test_no_notebook_sets_a_backend() -> None:
    for path in NOTEBOOKS:
        code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                       if c["cell_type"] == "code")
        assert "matplotlib.use(" not in code and "%matplotlib" not in code, path.name


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPLBACKEND", INLINE)  # the kernel inherits it: inline and headless
    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert outputs
    plots = any("plt." in c.source or ".plot(" in c.source for c in nb.cells
                if c.cell_type == "code")
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    if plots:
        assert images, f"{path.name} plots but shows no figure"
