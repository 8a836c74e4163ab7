"""The command line: every command; runs on scripted LMs print a short summary, tables go to files."""

import json
import logging

import pytest

from dspy_meta import __version__
from dspy_meta.benchmarks import available_tasks
from dspy_meta.cli import main
from dspy_meta.experiments.config import LMConfig, shipped_configs
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import MAGIC_WORD, aligning_meta_responder, shout_optimizer_responder

DRY_CONFIG = """name: dry
task: {name: word_sorting_generated, kwargs: {max_words: 3, n_train: 6, n_val: 8, n_test: 10}}
lms: {program: openai/gpt-4o-mini, optimizer: openai/gpt-4o-mini, meta: openai/gpt-4o}
methods: [zero_shot_cot, meta_teleprompter]
seeds: [0, 1]
"""


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"dspy-meta {__version__}"


def test_tasks_says_what_loads_here_with_sizes_and_the_held_out_group(capsys):
    assert main(["tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:] if line and not line.startswith((" ", "evaluation"))}
    assert list(rows) == available_tasks()
    assert rows["word_sorting_generated"][1:4] == ["learning", "yes", "50/100/300"]
    assert rows["bbh_word_sorting"][1] == "external"
    # A task that does not load here says why, on the next line (no sdist, no Hub: every external task).
    for i, line in enumerate(lines[1:-1], start=1):
        if line.split()[2:3] == ["no"]:
            assert lines[i + 1].startswith("    needs "), line
    assert all(rows[name][2] == "yes" for name in rows if rows[name][1] != "external")
    assert lines[-1] == ("evaluation group (held out from all tuning): mmlu_high_school_psychology, "
                         "mmlu_professional_law, gym_spell_backward, gym_family_relationships")
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
    assert "| zero_shot_cot | 0.50 ± 0.00 | 0.25 ± 0.00 | - | 0 | 0 | 0 | 0/0 | 1.2 |" in capsys.readouterr().out
    assert main(["show", str(tmp_path / "missing")]) == 2


def test_configs_lists_the_shipped_configs_and_whether_each_runs_here(capsys):
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["config", "command", "task", "runs", "here"]
    rows = [line.split() for line in lines[1:] if not line.startswith(" ")]
    assert [row[0] for row in rows] == list(shipped_configs())
    assert any(row[:3] == ["demo", "run", "word_sorting_generated"] for row in rows)
    assert any(row[1] == "compare" for row in rows)
    for i, line in enumerate(lines[1:], start=1):  # a config that does not run here says what it needs, below it
        if not line.startswith(" "):
            needs = i + 1 < len(lines) and lines[i + 1].startswith("    needs ")
            assert line.split()[-1] == ("no" if needs else "yes"), line


def _sorting_program(call):
    """Program LM: sorts the list only when its instruction carries the magic word."""
    words = call.inputs.get("question", "").split("List:")[-1].split()
    return {"reasoning": "-", "answer": " ".join(sorted(words) if MAGIC_WORD in call.instructions else words)}


@pytest.fixture
def scripted_models(monkeypatch):
    """Every config's LMs become scripted ones: built in level order (program, optimizer, meta)."""
    responders = [_sorting_program, shout_optimizer_responder, aligning_meta_responder]
    built = []

    def scripted(*_args, **_kwargs):
        built.append(ScriptedEngine(responders[len(built) % 3]).as_lm())
        return built[-1]

    monkeypatch.setattr(LMConfig, "build", scripted)
    monkeypatch.setattr("dspy_meta.experiments.compare.memo_lm", scripted)
    monkeypatch.setattr("dspy_meta.cli_checks.engine_problems", lambda *_args, **_kwargs: [])  # no local engine used
    return built


RUN_CONFIG = """name: tiny
task: {name: word_sorting_generated, kwargs: {max_words: 3, n_train: 6, n_val: 8, n_test: 10}}
lms: {program: scripted/p, optimizer: scripted/o, meta: scripted/m}
budget: {prompt_steps: 1, structure_steps: 1, copro_breadth: 2, copro_depth: 1, mipro_candidates: 2, mipro_trials: 2}
methods: [zero_shot_cot, gepa, meta_teleprompter]
max_bootstrapped_demos: 1
max_labeled_demos: 0
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_run_writes_the_tables_to_files_and_prints_a_short_summary(tmp_path, capsys, caplog, scripted_models,
                                                                  verbose):
    config = tmp_path / "tiny.yaml"
    config.write_text(RUN_CONFIG)
    out_dir = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="dspy_meta"):
        assert main([*(["-v"] if verbose else []), "run", str(config), "--output", str(out_dir)]) == 0
    assert "running meta_teleprompter, seed 0" in caplog.text  # logs go through logging (stderr), not stdout
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "word_sorting_generated: train/val/test = 6/8/10; seeds [0]" and len(lines) == 6
    assert lines[2].split() == ["zero_shot_cot", *lines[2].split()[1:3], "-"]
    assert lines[3].split()[0] == "gepa" and lines[3].split()[3] == "-"
    meta = lines[4].split()
    assert meta[:3] == ["meta_teleprompter", "1.000", "1.000"] and len(meta) > 3  # and its winning optimizer
    assert lines[5].startswith(f"tables: {out_dir}/results.md") and "|" not in out  # no table on stdout
    table = (out_dir / "results.md").read_text()
    assert "| Method | Val | Test | winner |" in table and f"| meta_teleprompter | 1.00 ± 0.00 | 1.00 ± 0.00 | {meta[3]}" in table
    assert "| gepa |" in table and (out_dir / "trajectory.png").exists()
    assert "tiny: 100%" in err  # the one bar over the runs, on stderr
    if verbose:  # loud when asked: DSPy's own bars and prints, on stderr; the run's logs too
        assert "Average Metric" in err and "Bootstrapped" in err
    else:
        assert "Average Metric" not in err and "Bootstrapped" not in err


def test_demo_runs_the_shipped_config_from_any_directory(tmp_path, monkeypatch, capsys, scripted_models):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("word_sorting_generated: train/val/test = 10/20/40; seeds [0]")
    assert "LM usage while optimizing" in out and "meta_teleprompter meta" in " ".join(out.split())
    assert (tmp_path / "runs" / "demo" / "results.md").exists()
    assert main(["run", "no_such_config"]) == 2
    err = capsys.readouterr().err
    assert "'no_such_config' does not exist" in err and "shipped: " in err and "demo" in err


COMPARE_CONFIG = """name: tinycompare
task: {name: word_sorting_generated, kwargs: {max_words: 3, n_train: 6, n_val: 8, n_test: 10}}
lms: {program: scripted/p, optimizer: scripted/o, meta: scripted/m}
program_calls: 12
seeds: [1]
methods: [zero_shot_cot, bootstrap_fewshot]
settings: {demos: {max_bootstrapped_demos: 1, max_labeled_demos: 0}}
"""


def test_compare_writes_its_table_and_prints_a_short_summary(tmp_path, capsys, scripted_models):
    config = tmp_path / "tiny_compare.yaml"
    config.write_text(COMPARE_CONFIG.replace("name: tinycompare", f"name: tinycompare\nwork_dir: {tmp_path / 'work'}"))
    output = tmp_path / "results" / "tiny.json"
    assert main(["compare", str(config), "--output", str(output)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "word_sorting_generated: program-LM call cap 12; seeds [1]"
    assert lines[1].startswith("(a) equal budget") and "BELOW THE PROTOCOL" in lines[2]
    assert "test vs bootstrap_fewshot [95% CI]" in lines[3]  # the only stock optimizer: the reference
    assert [line.split()[0] for line in lines[4:6]] == ["zero_shot_cot", "bootstrap_fewshot"]
    assert "|" not in out and output.exists() and "| bootstrap_fewshot |" in output.with_suffix(".md").read_text()
    assert "Bootstrapped" not in out + err  # DSPy's prints: silenced


def test_learn_is_a_command_whose_bad_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "learn.yaml"
    bad.write_text("name: x\ntasks: [mmlu_high_school_psychology]\n")
    assert main(["learn", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dspy-meta learn: ")
