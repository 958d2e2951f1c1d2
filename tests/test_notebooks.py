"""The notebooks in notebooks/: committed without outputs, and each runs top to bottom.

Each notebook is executed with nbclient in a fresh ``python3`` kernel, which jupyter_client
starts with this interpreter (``sys.executable``) when ipykernel is installed here, so no
kernel needs registering. The notebooks write everything into ``DEEPPOT_NB_OUT`` (here a
temporary folder), never into the repository. Together they take about 3 minutes on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {
    "01_plummer_paper_demo",
    "02_orbits_in_learned_potential",
    "03_gaia_like_catalog",
}


def test_the_notebooks_are_there():
    assert EXPECTED <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    """Outputs are stripped before committing: no outputs, no execution counts or timings."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert "widgets" not in nb.metadata
    for i, cell in enumerate(nb.cells):
        where = f"{path.name}, cell {i}"
        assert "execution" not in cell.metadata, f"{where}: execution timing metadata"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{where} has outputs: strip them before committing"
            assert cell.execution_count is None, f"{where} has an execution count"


# A last cell that reports which interpreter the kernel ran on.
_WHERE = "import sys\nprint('KERNEL_PREFIX=' + sys.prefix)"


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPPOT_NB_OUT", str(tmp_path))
    before = sorted(p.name for p in NOTEBOOK_DIR.iterdir())
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_WHERE))
    client = nbclient.NotebookClient(
        nb,
        timeout=600,  # per cell
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
    printed = "".join(out.get("text", "") for out in nb.cells[-1].outputs)
    assert f"KERNEL_PREFIX={sys.prefix}" in printed, (
        f"the notebook ran in another Python ({printed.strip()}), not this environment's "
        f"({sys.prefix}); check `jupyter kernelspec list` for a python3 kernel elsewhere"
    )
    assert any(tmp_path.rglob("*.png")), "the notebook wrote no figure to DEEPPOT_NB_OUT"
    assert sorted(p.name for p in NOTEBOOK_DIR.iterdir()) == before, "wrote into notebooks/"
