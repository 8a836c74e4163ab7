"""The documentation's runnable snippets run here, on scripted LMs, so README.md and docs/ cannot drift.

Convention (also in CONTRIBUTING.md): a ```python block whose fence line directly follows a line

- ``<!-- test -->`` runs as written: with the page's earlier marked blocks, it must be complete;
- ``<!-- test: toy -->`` runs after the page's namespace got the names the docs use for "your" objects
  (`metric`, `program`, `trainset`, `valset`, `program_lm`, `optimizer_lm`, `meta_lm`), here the scripted
  shout task of ``dspy_meta.testing.toy_task`` (names an earlier block defined are kept).

A page's marked blocks run in order in one namespace, in a fresh temporary directory. Unmarked blocks are
not run: they need a real model, a server or an API key.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- test(?::\s*(?P<kind>[\w-]+))? -->[ \t]*\n", re.M)
BLOCK = re.compile(r"```python[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)
KINDS = {None, "toy"}


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def snippets(page: Path) -> list[tuple[str | None, int, str]]:
    """The marked blocks of `page`: (kind, line number of the code, code)."""
    text = page.read_text(encoding="utf-8")
    found = []
    for marker in MARKER.finditer(text):
        block = BLOCK.match(text, marker.end())
        line = text.count("\n", 0, marker.start()) + 1
        assert block, f"{page.relative_to(ROOT)}:{line}: a test marker must directly precede a ```python block"
        assert marker["kind"] in KINDS, f"{page.relative_to(ROOT)}:{line}: unknown test marker {marker['kind']!r}"
        found.append((marker["kind"], line + 2, block["code"]))
    return found


def toy_names() -> dict:
    """The docs' "your objects", scripted: the shout task of the test kit (see tests/teleprompters/conftest.py)."""
    from dspy_meta.testing import ScriptedEngine
    from dspy_meta.testing.toy_task import (
        Shout, aligning_meta_responder, shout_examples, shout_metric, shout_optimizer_responder,
        shout_program_responder,
    )

    return {
        "metric": shout_metric, "program": Shout(), "trainset": shout_examples(8),
        "valset": shout_examples(6, offset=8),
        "program_lm": ScriptedEngine(lambda call: shout_program_responder(call, demos_help=False),
                                     model="program").as_lm(),
        "optimizer_lm": ScriptedEngine(shout_optimizer_responder, model="optimizer").as_lm(),
        "meta_lm": ScriptedEngine(aligning_meta_responder, model="meta").as_lm(),
    }


RUNNABLE = [page for page in pages() if snippets(page)]


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(page.relative_to(ROOT)) for page in RUNNABLE])
def test_the_marked_snippets_of_a_page_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for kind, line, code in snippets(page):
        if kind == "toy":
            for name, value in toy_names().items():
                namespace.setdefault(name, value)
        exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)  # noqa: S102 -- our own docs


def test_the_readme_quickstart_is_a_complete_runnable_snippet():
    standalone = [code for kind, _, code in snippets(ROOT / "README.md") if kind is None]
    assert standalone and "ScriptedEngine" in standalone[0] and "MetaTeleprompter" in standalone[0]
    assert "toy" in {kind for kind, _, _ in snippets(ROOT / "README.md")}  # the drop-in snippet runs too


def test_every_docs_section_with_an_api_example_runs_at_least_one():
    runnable = {str(page.relative_to(ROOT)) for page in RUNNABLE}
    for page in ("docs/getting-started.md", "docs/concepts/inner-optimizers.md", "docs/concepts/plans.md",
                 "docs/how-to/migrate-from-miprov2.md", "docs/how-to/budgets-and-limits.md", "docs/how-to/resume.md",
                 "docs/how-to/own-task.md"):
        assert page in runnable, f"{page} has no runnable snippet"
