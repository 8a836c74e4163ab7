"""The command line: the read-only commands, the dry run, and showing a finished run."""

import json

import pytest

from dspy_meta import __version__
from dspy_meta.benchmarks import available_tasks
from dspy_meta.cli import main

DRY_CONFIG = """name: dry
task: {name: bigbench_word_sorting_short, kwargs: {max_words: 3, n_train: 6, n_val: 8, n_test: 10}}
lms: {program: openai/gpt-4o-mini, optimizer: openai/gpt-4o-mini, meta: openai/gpt-4o}
methods: [zero_shot_cot, meta_teleprompter]
seeds: [0, 1]
"""


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"dspy-meta {__version__}"


def test_tasks_and_methods_are_listed(capsys):
    assert main(["tasks"]) == 0
    assert capsys.readouterr().out.split() == available_tasks()
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "meta_teleprompter" in out and "gepa" in out and "mipro_v2" in out


def test_a_dry_run_checks_and_shows_the_plan_without_writing_or_calling(tmp_path, capsys):
    config = tmp_path / "dry.yaml"
    config.write_text(DRY_CONFIG)
    assert main(["run", str(config), "--dry-run", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "config dry: valid" in out and "train/val/test = 6/8/10" in out
    assert "2 methods x 2 seeds = 4" in out
    assert not (tmp_path / "out").exists()  # nothing run, nothing written
    config.write_text(DRY_CONFIG.replace("n_train: 6", "n_trian: 6"))
    assert main(["run", str(config), "--dry-run"]) == 2
    assert "n_trian" in capsys.readouterr().err


def test_show_prints_a_finished_runs_table(tmp_path, capsys):
    results = {"task": {"name": "t", "description": "d", "sizes": [1, 2, 3]}, "seeds": [0],
               "summary": {"zero_shot_cot": {"val": {"mean": 0.5, "std": 0.0}, "test": {"mean": 0.25, "std": 0.0},
                                             "wall_seconds": 1.25,
                                             "usage": {level: {"calls": 0, "input_tokens": 0, "output_tokens": 0}
                                                       for level in ("program", "optimizer", "meta")}}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert main(["show", str(tmp_path)]) == 0
    assert "| zero_shot_cot | 0.50 ± 0.00 | 0.25 ± 0.00 | 0 | 0 | 0 | 0/0 | 1.2 |" in capsys.readouterr().out
    assert main(["show", str(tmp_path / "missing")]) == 2
