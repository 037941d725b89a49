"""notebooks/<family>.ipynb: committed without outputs, and (slow) executed headless against the ``debug=fast`` run of
the experiment its parameters cell names (``logs/<experiment>/runs/...``; the session fixture of conftest.py). A new family's notebook is picked up by its
file name: ``notebooks/<family>.ipynb`` with a ``parameters`` cell reading ``AUDIOLAB_CHECKPOINT``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audiolab.utils.config import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_BYTES = 100_000


def _experiment_of(path: Path) -> str:
    """The experiment the notebook's parameters cell names (``logs/<experiment>/runs/...``), else the family's first."""
    family = path.stem
    names = sorted(p.stem for p in (CONF_DIR / "experiment").glob(f"{family}_*.yaml"))
    assert names, f"notebooks/{family}.ipynb: no conf/experiment/{family}_*.yaml to make a checkpoint with"
    named = re.search(r"logs/(\w+)/runs", path.read_text())
    return named.group(1) if named and named.group(1) in names else names[0]


def test_notebooks_found():
    assert {"ddsp", "codec"} <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_committed_clean(path):
    import nbformat
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes: clear the outputs"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: commit without outputs"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert params and "AUDIOLAB_CHECKPOINT" in params[0].source, f"{path.name}: no parameters cell reading AUDIOLAB_CHECKPOINT"
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "load_trained(" in source and f'family="{path.stem}"' in source, "load the model with the shared loader"
    _experiment_of(path)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_headless(path, fast_run, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    run = fast_run(_experiment_of(path))
    monkeypatch.setenv("AUDIOLAB_CHECKPOINT", str(run.out))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert str(run.out) in text, "the notebook did not report the checkpoint it loaded"
    kinds = {k for o in outputs for k in o.get("data", {})}
    assert "image/png" in kinds, "no figure"
    assert "text/html" in kinds, "no audio player"
    nbformat.write(nb, tmp_path / path.name)  # the executed copy, for a look when it fails
