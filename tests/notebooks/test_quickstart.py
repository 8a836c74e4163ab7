"""The quickstart notebook runs top to bottom (scripted LMs), so it cannot rot."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_quickstart_runs_top_to_bottom(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    # A cell's stdout can arrive in several chunks (split where stderr interleaves): join them as they came.
    outputs = "\n".join("".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")
                        for cell in notebook.cells if cell.cell_type == "code")
    assert "validation: baseline 0.0 -> best 1.0" in outputs
    assert "test: 0.00 -> 1.00" in outputs
    assert "The task is to sort words alphabetically" in outputs  # the learned COPRO prompt
    assert (tmp_path / "learned_copro.json").exists() and (tmp_path / "trajectory.png").exists()
