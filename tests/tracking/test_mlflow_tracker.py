"""A meta compile's MLflow run tree, on a real sqlite tracking store: one root run per compile, one nested run
per candidate, whatever the import order and the thread count; no secret in params, tags or artifacts."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from dspy_meta import MetaPromptOptimizer, OptimizerSpec  # noqa: E402
from dspy_meta.errors import ConfigError, MetricError  # noqa: E402
from dspy_meta.programs import load_program  # noqa: E402
from dspy_meta.testing.toy_task import Shout, shout_examples  # noqa: E402
from dspy_meta.tracking.mlflow_tracker import MlflowTracker  # noqa: E402

from .helpers import SECRET, TINY, compile_meta, compile_prompt, keyed_lms, run_tree  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_ROOT_PARAMS = ("budget.", "model.", "input.", "limits.", "optimizers", "seed", "num_threads", "trainset_size",
                "valset_size")


def _artifact_texts(run_id: str) -> dict[str, str]:
    folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id))
    return {str(p.relative_to(folder)): p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.is_file()}


def _assert_one_tree(experiment_id: str, candidates: int):
    """The experiment holds one root run whose children are the candidates, and nothing else."""
    tree = run_tree(experiment_id)
    assert len(tree.roots) == 1, [r.info.run_name for r in tree.roots]
    root = tree.roots[0]
    children = tree.children_of(root)
    assert len(children) == candidates and len(tree.runs) == candidates + 1
    assert [int(c.data.tags["dspy_meta.candidate_index"]) for c in children] == list(range(candidates))
    assert root.info.status == "FINISHED" and all(c.info.status == "FINISHED" for c in children)
    return root, children


@pytest.mark.parametrize("num_threads", [1, 4])
def test_autolog_gives_one_parent_run_with_a_child_per_candidate(experiment, autolog, num_threads):
    autolog(log_compiles=True, log_evals=True)  # dspy_meta was imported first (this module's imports)
    program = compile_meta(num_threads=num_threads)
    results = program.meta_results_
    root, children = _assert_one_tree(experiment, len(results.candidates))
    assert root.info.run_name == "MetaTeleprompter"

    params = root.data.params
    assert all(key.startswith(_ROOT_PARAMS) for key in params), sorted(params)  # nothing an inner compile logged
    assert {f"budget.{name}" for name in TINY.to_dict()} <= set(params)
    assert params["budget.prompt_steps"] == "1" and params["budget.mipro_trials"] == "2"
    assert params["model.program"] == "scripted-task_model/model"
    assert params["model.optimizer"] == "scripted-prompt_model/model"
    assert params["model.meta"] == "scripted-meta_model/model"
    assert params["input.copro.kind"] == "copro" and params["input.copro.params.breadth"] == "2"
    assert params["seed"] == "0" and params["num_threads"] == str(num_threads) and params["trainset_size"] == "8"

    for record, child in zip(results.candidates, children, strict=True):
        assert all(key in ("stage", "lineage", "optimizer", "reused") or key.startswith("plan.")
                   for key in child.data.params), sorted(child.data.params)
        assert child.data.params["stage"] == record.stage
        assert child.data.params["reused"] == str(record.reused)
        assert child.data.metrics["accepted"] == float(record.accepted)
        assert child.data.metrics.get("score") == record.score
        assert child.data.metrics["usage.program.calls"] == record.usage["program"].calls
    kinds = {c.data.params["optimizer"] for c in children}
    assert {"copro", "mipro_v2", "bootstrap_fewshot"} <= kinds
    composite = next(c for c in children if c.data.params["stage"] == "structure")
    assert composite.data.params["optimizer"] == "sequence(copro, bootstrap_fewshot)"
    assert composite.data.params["plan.steps.0.params.breadth"] == "2"

    history = mlflow.MlflowClient().get_metric_history(root.info.run_id, "best_score")
    assert [m.step for m in history] == [c.index for c in results.candidates]
    assert history[-1].value == results.best_score == root.data.metrics["best_score"]
    assert root.data.metrics["baseline_score"] == results.baseline_score
    assert root.data.metrics["usage.program.calls"] == results.usage["program"].calls
    assert root.data.metrics["wall_seconds"] == results.wall_seconds > 0
    assert root.data.tags["dspy_meta.winner"] == results.winner

    artifacts = _artifact_texts(root.info.run_id)
    assert len(json.loads(artifacts["meta_results.json"])["candidates"]) == len(results.candidates)
    assert json.loads(artifacts["best_optimizer.json"]) == results.best_plan
    assert set(results.best_optimizers) == {Path(p).stem for p in artifacts if p.startswith("optimizers")}
    program_file = Path(mlflow.artifacts.download_artifacts(run_id=root.info.run_id, artifact_path="program.json"))
    loaded = load_program(program_file, Shout())
    assert loaded.answer.predict.signature.instructions == program.answer.predict.signature.instructions
    prompt_copro = _artifact_texts(next(c for c in children if c.data.params["stage"] == "prompt:copro").info.run_id)
    assert "shout" in json.loads(prompt_copro["prompts.json"])["copro"]["basic_generate_instruction"]["instructions"]
    assert json.loads(prompt_copro["plan.json"])["kind"] == "copro"

    for run in (root, *children):  # the planted key is on every LM and in their api_base URLs
        texts = [*run.data.params.values(), *run.data.tags.values(), *_artifact_texts(run.info.run_id).values()]
        assert texts and not any(SECRET in text for text in texts), run.info.run_name


def test_autolog_before_dspy_meta_is_imported_gives_the_same_tree(experiment, tracking_uri):
    client = mlflow.MlflowClient()
    second = client.create_experiment(f"{experiment}-threads4",
                                      artifact_location=client.get_experiment(experiment).artifact_location + "4")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    job = subprocess.run([sys.executable, "-m", "tests.tracking.autolog_first_job", experiment, second], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stderr[-3000:]
    counts = json.loads(job.stdout.strip().splitlines()[-1])
    for experiment_id, threads in ((experiment, "1"), (second, "4")):
        root, _ = _assert_one_tree(experiment_id, counts[threads])
        assert "budget.structure_steps" in root.data.params and "model.meta" in root.data.params


def test_use_mlflow_true_logs_without_autolog_and_nests_under_the_callers_run(experiment):
    with mlflow.start_run(run_name="outer") as outer:
        program = compile_prompt(use_mlflow=True)
        assert mlflow.active_run().info.run_id == outer.info.run_id  # the caller's run is active again
    tree = run_tree(experiment)
    assert [r.info.run_name for r in tree.roots] == ["outer"]
    (ours,) = tree.children_of(outer)
    assert ours.info.run_name == "MetaPromptOptimizer" and ours.data.params["input.copro.kind"] == "copro"
    assert len(tree.children_of(ours)) == len(program.meta_results_.candidates) == 2


def test_use_mlflow_false_and_autolog_without_log_compiles_leave_no_runs_and_no_traces(experiment, autolog):
    autolog(log_compiles=True, log_evals=True)
    compile_prompt(use_mlflow=False)
    autolog()  # autolog's defaults: traces only, compiles not logged (and no traces from inside a compile)
    compile_prompt()
    mlflow.flush_trace_async_logging()
    assert run_tree(experiment).runs == []
    assert mlflow.search_traces(locations=[experiment], return_type="list") == []
    autolog(log_traces_from_compile=True)  # traces asked for: kept, still no evaluation runs
    compile_prompt()
    mlflow.flush_trace_async_logging()
    assert run_tree(experiment).runs == []
    assert mlflow.search_traces(locations=[experiment], return_type="list")


def test_a_failing_tracking_store_never_stops_the_compile(experiment, monkeypatch, caplog):
    def broken(self, *args, **kwargs):
        raise RuntimeError(f"store unavailable at https://user:{SECRET}@tracking.invalid")

    monkeypatch.setattr(MlflowTracker, "_log", broken)
    with caplog.at_level(logging.WARNING, logger="dspy_meta.tracking"):
        program = compile_prompt(use_mlflow=True)
    assert program.meta_results_.best_score == 1.0
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("dspy_meta.tracking")]
    assert any("could not log" in w for w in warnings) and not any(SECRET in w for w in warnings)
    root, _ = _assert_one_tree(experiment, 2)  # the runs are there, without the params that failed
    assert "budget.prompt_steps" not in root.data.params


def test_a_compile_that_fails_ends_its_run_as_failed(experiment):
    def wordy_metric(example, prediction, trace=None):
        return "not a number"  # stops the run (MetricError) on the first real prediction

    teleprompter = MetaPromptOptimizer(wordy_metric, OptimizerSpec.create("copro", breadth=2, depth=1), budget=TINY,
                                       display_progress=False, use_mlflow=True, **keyed_lms())
    with pytest.raises(MetricError):
        teleprompter.compile(Shout(), trainset=shout_examples(4), valset=shout_examples(3, offset=4))
    assert [r.info.status for r in run_tree(experiment).roots] == ["FAILED"]
    assert mlflow.active_run() is None


def test_use_mlflow_true_without_mlflow_fails_before_any_call(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'dspy-meta\[mlflow\]'"):
        compile_prompt(use_mlflow=True)
    with pytest.raises(TypeError, match="use_mlflow"):
        compile_prompt(use_mlflow="yes")


def test_dspy_meta_does_not_import_mlflow():
    code = "import sys, dspy_meta, dspy_meta.tracking; print('mlflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == "False", result.stderr[-2000:]
