"""The wheel users install: typed, with its data files, and a small core."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_is_typed_carries_its_data_and_keeps_plots_and_datasets_optional(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("dspy_meta-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        archive.extractall(tmp_path / "site")
    assert "dspy_meta/py.typed" in names
    shipped = {f"dspy_meta/configs/{path.name}" for path in (ROOT / "configs").glob("*.yaml")}
    assert len(shipped) >= 5 and shipped <= names  # every config of the repository's configs/
    # Installed (the wheel's files first on the path), from a directory with no configs/: found by name.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = subprocess.run(
        [sys.executable, "-c", "import dspy_meta; from dspy_meta.experiments.config import find_config, load_config; "
         "print(dspy_meta.__file__); print(find_config('demo')); print(load_config('demo').name)"],
        cwd=elsewhere, env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, check=True, capture_output=True,
        text=True, timeout=300).stdout.split()
    assert found == [str(tmp_path / "site" / "dspy_meta" / "__init__.py"),
                     str(tmp_path / "site" / "dspy_meta" / "configs" / "demo.yaml"), "demo"]
    assert {"dspy_meta/benchmarks/data/word_sorting.json", "dspy_meta/benchmarks/data/dyck_languages.json"} <= names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [line for line in requires if "extra ==" not in line]
    assert any("dspy<3.5,>=3.4.1" in line or "dspy>=3.4.1,<3.5" in line for line in core)
    assert not any(name in line for line in core for name in ("matplotlib", "datasets", "mlflow"))
    assert any("mlflow" in line and 'extra == "mlflow"' in line for line in requires)
    assert "Classifier: Typing :: Typed" in metadata
