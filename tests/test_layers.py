"""The package's layers: each imports only from the layers below it (read from the source, not run)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dspy_meta"
# What each layer may import from the package, besides itself and `errors`.
ALLOWED = {
    "runtime": set(),
    "optimizers": {"runtime"},
    "programs": {"runtime"},
    "plans": {"runtime", "optimizers", "programs"},
    "tracking": {"runtime", "programs"},  # below search: the evaluator reports candidates to a `Tracker`
    "search": {"runtime", "optimizers", "programs", "plans", "tracking"},
    "learning": {"runtime", "optimizers", "programs", "plans"},  # bundles: specs and a plan, as data
    "distributed": {"runtime", "optimizers", "programs", "plans", "search", "tracking", "lm"},
    # lm: `make_lm`, the one LM-naming rule
    "teleprompters": {"runtime", "optimizers", "programs", "plans", "search", "distributed", "lm", "tracking",
                      "learning"},
}


def _imports(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "dspy_meta" and len(parts) > 1:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_from_below(layer):
    for path in (PACKAGE / layer).rglob("*.py"):
        wrong = _imports(path) - ALLOWED[layer] - {layer, "errors"}
        assert not wrong, f"{path.relative_to(PACKAGE)} imports {sorted(wrong)}"


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long
