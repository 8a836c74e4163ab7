"""The command line never shows a traceback for a user's mistake or a missing resource: one line on stderr
(``dspy-meta <command>: <message>``), exit status 2; ``-v`` (anywhere) adds the traceback. `--dry-run` checks
the data and the engines of every shipped config; `configs` says which run here."""

import os
import subprocess
import sys
from pathlib import Path

import dspy
import pytest

from dspy_meta.cli import _parser, main
from dspy_meta.cli_checks import config_kind
from dspy_meta.errors import BenchmarkDataError, LocalModelError, PermanentLMError, RunFailed
from dspy_meta.experiments.config import read_yaml, shipped_configs
from tests.test_cli import COMPARE_CONFIG, DRY_CONFIG, RUN_CONFIG, scripted_models  # noqa: F401 -- a fixture

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-PLANTED-cli-7f3a91c2d4"


@pytest.fixture
def no_local_extra(monkeypatch):
    """As on a machine without the `local` extra: llama_cpp does not import (this one has it installed)."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)


@pytest.fixture
def no_bigbench(monkeypatch, tmp_path):
    """As with no BIG-bench files in the cache and no tarball: the BIG-bench tasks cannot load."""
    from dspy_meta.benchmarks import sources

    monkeypatch.setattr("dspy_meta.benchmarks.tasks.bigbench_task_file",
                        _raise(sources._bigbench_unavailable(tmp_path / "cache")))


@pytest.fixture
def no_lm_call(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("a dry run called an LM")

    for name in ("forward", "aforward", "__call__"):
        monkeypatch.setattr(dspy.LM, name, refuse)


def _one_line(err: str, command: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dspy-meta {command}: "), err
    return lines[0]


@pytest.mark.parametrize("name", list(shipped_configs()))
def test_a_dry_run_of_every_shipped_config_succeeds_or_says_in_one_line_what_is_missing(
        name, capsys, no_local_extra, no_lm_call, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    command = config_kind(read_yaml(name), name)
    code = main([command, name, "--dry-run"])
    out, err = capsys.readouterr()
    assert code in (0, 2), (code, err)
    if code == 0:
        assert out.splitlines()[0].startswith(f"config {read_yaml(name)['name']}: valid") and "dry run:" in out
        assert "Traceback" not in err
    else:
        line = _one_line(err, command)
        assert "cannot run here" in line and ("does not load here" in line or "llama-cpp-python" in line)
    models = [str(lm.get("model", lm)) if isinstance(lm, dict) else lm for lm in read_yaml(name)["lms"].values()]
    if any("/" not in model for model in models):  # a local model: no engine here, so no plan
        assert code == 2 and "install the local extra (pip install 'dspy-meta[local]'" in err


def test_a_benchmark_data_error_shows_no_traceback_in_a_real_process(tmp_path):
    env = {**os.environ, "DSPY_META_CACHE": str(tmp_path / "cache"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("DSPY_META_BIGBENCH_TARBALL", None)
    done = subprocess.run([sys.executable, "-m", "dspy_meta", "run", "bbh_word_sorting", "--dry-run"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    line = _one_line(done.stderr, "run")
    assert "its task bbh_word_sorting does not load here: The BIG-bench task files" in line
    assert "DSPY_META_BIGBENCH_TARBALL" in line  # the fix, on the same line


def test_a_real_run_of_missing_data_says_so_in_one_line(tmp_path, capsys, no_bigbench, scripted_models):
    config = tmp_path / "bb.yaml"
    config.write_text(RUN_CONFIG.replace("word_sorting_generated, kwargs: {max_words: 3,",
                                         "bigbench_word_sorting_short, kwargs: {max_words: 3,"))
    assert main(["run", str(config), "--output", str(tmp_path / "out")]) == 2
    assert "The BIG-bench task files" in _one_line(capsys.readouterr().err, "run")
    assert not (tmp_path / "out").exists()


def _raise(error):
    def raising(*_args, **_kwargs):
        raise error

    return raising


def _command(name, tmp_path):
    """Arguments of `name` that reach the patched function; the patch target."""
    config = tmp_path / "tiny.yaml"
    config.write_text(RUN_CONFIG)
    compare = tmp_path / "tiny_compare.yaml"
    compare.write_text(COMPARE_CONFIG)
    return {"run": (["run", str(config)], "dspy_meta.experiments.runner.run_experiment"),
            "demo": (["demo", "--config", str(config)], "dspy_meta.experiments.runner.run_experiment"),
            "compare": (["compare", str(compare)], "dspy_meta.experiments.compare.run_comparison"),
            "worker": (["worker", "--storage", "sqlite:///x.db"],
                       "dspy_meta.experiments.worker_cli.serve_experiment_studies"),
            "tasks": (["tasks"], "dspy_meta.benchmarks.overview.task_overview"),
            "configs": (["configs"], "dspy_meta.cli_checks.readiness"),
            }[name]


ERRORS = [RunFailed("the run stopped: the program LM failed\nfinished work is in runs/x"),
          BenchmarkDataError("no such file"), LocalModelError("weights\n  pip install x"),
          PermanentLMError("program", RuntimeError(f"Incorrect API key provided: {SECRET}")),
          PermissionError(13, "Permission denied", "/proc/x")]


@pytest.mark.parametrize("command", ["run", "demo", "compare", "worker", "tasks", "configs"])
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_command_turns_the_packages_errors_and_os_errors_into_one_line(command, error, tmp_path, capsys,
                                                                            monkeypatch, scripted_models):
    argv, target = _command(command, tmp_path)
    monkeypatch.setattr(target, _raise(error))
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err, command)
    assert SECRET not in line
    if isinstance(error, RunFailed):
        assert line == f"dspy-meta {command}: the run stopped: the program LM failed finished work is in runs/x"
    if isinstance(error, OSError):
        assert line == f"dspy-meta {command}: [Errno 13] Permission denied: '/proc/x'"


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_anywhere_adds_the_traceback(where, tmp_path, capsys, monkeypatch):
    argv, target = _command("run", tmp_path)
    monkeypatch.setattr(target, _raise(RunFailed("boom")))
    assert main(["-v", *argv] if where == "before" else [*argv, "--verbose"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1] == "dspy-meta run: boom"


@pytest.mark.parametrize("argv", [["configs"], ["tasks"], ["methods"], ["show", "x"], ["run", "demo"],
                                  ["compare", "demo"], ["worker", "--storage", "s"], ["demo"]])
def test_global_flags_parse_before_and_after_the_command(argv):
    parse = _parser().parse_args
    assert parse(argv).verbose is False
    assert parse(["-v", *argv]).verbose is True and parse([*argv, "-v"]).verbose is True
    assert parse([argv[0], "--verbose", *argv[1:]]).verbose is True


def test_a_path_the_machine_refuses_is_one_line(tmp_path, capsys, scripted_models):
    config = tmp_path / "tiny.yaml"
    config.write_text(RUN_CONFIG)
    (tmp_path / "a_file").write_text("")
    assert main(["run", str(config), "--output", str(tmp_path / "a_file" / "out")]) == 2
    assert "a_file" in _one_line(capsys.readouterr().err, "run")
    if Path("/proc/self").is_dir():
        assert main(["run", str(config), "--output", "/proc/x/out"]) == 2
        assert "/proc/x" in _one_line(capsys.readouterr().err, "run")
    compare = tmp_path / "tiny_compare.yaml"
    compare.write_text(COMPARE_CONFIG.replace("name: tinycompare", f"name: tinycompare\nwork_dir: {tmp_path / 'w'}"))
    assert main(["compare", str(compare), "--output", str(tmp_path / "a_file" / "r.json")]) == 2
    assert "a_file" in _one_line(capsys.readouterr().err, "compare")


def test_a_nul_byte_in_a_path_is_one_line(tmp_path, capsys, scripted_models):
    for argv in (["run", "demo", "--dry-run", "--output", "a\0b"], ["show", "x\0y"], ["compare", "a\0b"],
                 ["worker", "--storage", "sqlite:///a\0b.db"]):
        assert main(argv) == 2
        assert "NUL byte" in _one_line(capsys.readouterr().err, argv[0])
    config = tmp_path / "tiny.yaml"  # one in the config: found only when the run makes its folder
    config.write_text(RUN_CONFIG + 'output_dir: "runs\\0x"\n')
    assert main(["run", str(config)]) == 2
    assert "NUL byte" in _one_line(capsys.readouterr().err, "run")


def test_ctrl_c_is_one_line(tmp_path, capsys, monkeypatch):
    argv, target = _command("run", tmp_path)
    monkeypatch.setattr(target, _raise(KeyboardInterrupt()))
    assert main(argv) == 130
    assert _one_line(capsys.readouterr().err, "run") == "dspy-meta run: interrupted"


def test_without_the_local_extra_dry_and_real_runs_say_so_before_any_work(capsys, no_local_extra, monkeypatch):
    monkeypatch.setattr("dspy_meta.experiments.runner.run_experiment", _raise(AssertionError("ran")))
    monkeypatch.setattr("dspy_meta.experiments.compare.run_comparison", _raise(AssertionError("ran")))
    for argv in (["run", "quick", "--dry-run"], ["run", "quick"], ["demo"],
                 ["compare", "compare_word_sorting_generated", "--dry-run"],
                 ["compare", "compare_word_sorting_generated"]):
        assert main(argv) == 2
        line = _one_line(capsys.readouterr().err, argv[0])
        assert "cannot run here: it needs llama-cpp-python, the engine of the local models qwen2.5-coder-0.5b" in line
        assert "pip install 'dspy-meta[local]'" in line and "valid" not in line


def test_a_worker_without_the_local_extra_says_so_before_serving(no_local_extra):
    from dspy_meta.distributed.queue import RECIPE
    from dspy_meta.experiments.config import load_config
    from dspy_meta.experiments.worker_cli import experiment_worker

    class Queue:
        name = "study"

        def attrs(self):
            return {RECIPE: {"config": load_config("quick").to_dict()}}

    with pytest.raises(LocalModelError, match="needs llama-cpp-python"):
        experiment_worker(Queue())


def _has_local_extra() -> bool:
    from importlib.util import find_spec

    from dspy_meta.lm.registry import LOCAL_MODELS

    packages = [p for model in LOCAL_MODELS.values() for p in model.packages]
    return find_spec("llama_cpp") is not None and all(find_spec(p.replace("-", "_")) for p in packages)


@pytest.mark.skipif(not _has_local_extra(), reason="needs the local extra (llama-cpp-python and the weights)")
def test_with_the_local_extra_a_dry_run_shows_the_engines(capsys, monkeypatch, no_lm_call):
    from dspy_meta.experiments.config import LMConfig

    monkeypatch.setattr(LMConfig, "build", lambda self: None)  # no weights assembled in a test
    assert main(["run", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "config quick: valid" in out and "engines: llama-cpp-python " in out and "note:" not in out


def _configs(capsys) -> dict[str, str]:
    """`dspy-meta configs`: per config, its row and the needs line below it ('' when it runs here)."""
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    rows = {}
    for i, line in enumerate(lines):
        if not line.startswith(" "):
            needs = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith("    needs ") else ""
            rows[line.split()[0]] = (line.split()[-1], needs)
    return rows


def test_configs_says_what_a_config_needs_to_run_here(capsys, monkeypatch, no_local_extra, no_bigbench):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rows = _configs(capsys)
    assert rows["quick"][0] == "no" and "needs llama-cpp-python" in rows["quick"][1]
    assert "pip install 'dspy-meta[local]'" in rows["quick"][1]
    assert rows["mmlu_abstract_algebra"] == ("no", "    needs OPENAI_API_KEY in the environment")
    bbh = rows["bbh_word_sorting"][1]
    assert "for its task bbh_word_sorting: the bigbench==1.0.0 sdist" in bbh and "OPENAI_API_KEY" in bbh
    assert "the Hugging Face Hub" in rows["gpqa_diamond"][1]
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "mmlu_abstract_algebra                  run      mmlu_abstract_algebra          yes" in out


@pytest.mark.skipif(not _has_local_extra(), reason="needs the local extra (llama-cpp-python and the weights)")
def test_configs_says_the_local_configs_run_here_with_the_local_extra(capsys):
    rows = _configs(capsys)
    assert rows["demo"] == ("yes", "") and rows["compare_word_sorting_generated"] == ("yes", "")


def test_a_config_given_to_the_other_command_names_the_right_one(tmp_path, capsys):
    assert main(["run", "compare_word_sorting_short", "--dry-run"]) == 2
    line = _one_line(capsys.readouterr().err, "run")
    assert "is a comparison config" in line and "use `dspy-meta compare compare_word_sorting_short`" in line
    assert "program_calls" in line and "unknown key" not in line
    compare = tmp_path / "mine.yaml"  # by its content, whatever its name
    compare.write_text(COMPARE_CONFIG)
    assert main(["run", str(compare)]) == 2
    assert f"use `dspy-meta compare {compare}`" in _one_line(capsys.readouterr().err, "run")
    for argv in (["compare", "demo"], ["compare", "quick", "--dry-run"]):
        assert main(argv) == 2
        line = _one_line(capsys.readouterr().err, "compare")
        assert f"is an experiment config (it has no program_calls), not a comparison config: use `dspy-meta run " \
               f"{argv[1]}`" in line


def test_compare_has_a_dry_run(tmp_path, capsys, monkeypatch, no_lm_call):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = tmp_path / "c.yaml"
    config.write_text(COMPARE_CONFIG.replace("scripted/p", "openai/gpt-4o-mini").replace("scripted/o", "openai/gpt-4o")
                      .replace("scripted/m", "openai/gpt-4o") + f"work_dir: {tmp_path / 'work'}\n")
    output = tmp_path / "results" / "c.json"
    assert main(["compare", str(config), "--dry-run", "--output", str(output)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "config tinycompare: valid (comparison)" and out[1].endswith("train/val/test = 6/8/10")
    assert "note: the remote LMs need OPENAI_API_KEY in the environment, not set here" in out[5]
    assert "runs: 2 methods x 1 seeds = 2 (zero_shot_cot, bootstrap_fewshot; seeds [1])" in out
    assert "program-LM call cap: 12 per optimizing run" in out and out[-1].startswith("dry run:")
    assert not output.parent.exists() and not (tmp_path / "work").exists()
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert main(["compare", str(config), "--dry-run", "--methods", "zero_shot_cot"]) == 0
    out = capsys.readouterr().out
    assert "note:" not in out and SECRET not in out and "runs: 1 methods x 1 seeds = 1" in out
    assert main(["compare", str(config), "--dry-run", "--methods", "gepa"]) == 2
    assert "--methods: ['gepa'] not in the config's methods" in _one_line(capsys.readouterr().err, "compare")


def test_a_run_dry_run_notes_a_missing_api_key_without_printing_one(tmp_path, capsys, monkeypatch):
    config = tmp_path / "dry.yaml"
    config.write_text(DRY_CONFIG)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["run", str(config), "--dry-run"]) == 0
    assert "note: the remote LMs need OPENAI_API_KEY" in capsys.readouterr().out


def test_show_of_a_file_that_is_no_results_is_one_line(tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"a": 1}')
    assert main(["show", str(tmp_path)]) == 2
    assert "is not a results file" in _one_line(capsys.readouterr().err, "show")
    (tmp_path / "results.json").write_text("{not json")
    assert main(["show", str(tmp_path)]) == 2
    _one_line(capsys.readouterr().err, "show")
    assert main(["show", str(tmp_path / "missing")]) == 2
    assert _one_line(capsys.readouterr().err, "show") == f"dspy-meta show: no results.json in {tmp_path / 'missing'}"
    (tmp_path / "c.json").write_text('{"program_calls_cap": 40}')  # a comparison's results: the table it wrote
    (tmp_path / "c.md").write_text("| method | val |\n")
    assert main(["show", str(tmp_path / "c.json")]) == 0
    assert capsys.readouterr().out.startswith("| method | val |")
