"""The quickstart notebook runs top to bottom (scripted LMs), so it cannot rot: inline plots, tables as HTML,
a quiet compile cell, and its files in a folder of its own under the temporary directory."""

import os
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def _text(cell, stream="stdout") -> str:
    # A cell's stdout can arrive in several chunks (split where stderr interleaves): join them as they came.
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == stream)


def test_quickstart_runs_top_to_bottom(tmp_path, monkeypatch):
    # The kernel imports this checkout's package (not another installed copy), whatever its working directory.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path / "notebook_dir"  # the kernel's working directory, as the notebook's own folder would be
    workdir.mkdir()
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = "\n".join(_text(cell) for cell in code)
    out_dir = Path(next(line for line in outputs.splitlines() if line.startswith("outputs: ")).removeprefix("outputs: "))
    try:
        assert "validation: baseline 0.0 -> best 1.0" in outputs
        assert "test: 0.00 -> 1.00" in outputs
        assert "The task is to sort words alphabetically" in outputs  # the learned COPRO prompt
        # Files go to the notebook's own folder under the temporary directory, none next to the notebook.
        assert list(workdir.iterdir()) == []
        assert {path.name for path in out_dir.iterdir()} == {"learned_copro.json", "trajectory.png"}
        # The compile cell is quiet: one line of its own, no DSPy bars, prints or logs.
        (compile_cell,) = [cell for cell in code if "teleprompter.compile(" in cell.source]
        assert len(compile_cell.outputs) == 1 and _text(compile_cell).startswith("validation: baseline")
        assert _text(compile_cell, "stderr") == ""
        assert "Average Metric" not in "".join(_text(cell, "stderr") for cell in code)  # scoring is quiet too
        # Results are DataFrames shown as HTML tables; the plot is inline.
        data = [o.get("data", {}) for cell in code for o in cell.outputs if o.output_type in ("execute_result",
                                                                                              "display_data")]
        tables = [d["text/html"] for d in data if "<table" in d.get("text/html", "")]
        assert len(tables) >= 2 and any("prompt:copro" in table for table in tables)
        assert any("image/png" in d for d in data)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
