"""The run's study in one process: what it holds (for workers and the dashboard), resuming from it, and
the refusals (another run's study, a worker with other inputs, a CLI worker for a Python run)."""

import json
import threading
import time

import dspy
import optuna
import pytest
from optuna.trial import TrialState

from dspy_meta import MetaStructureOptimizer, MetaTeleprompter, OptimizerSpec, StudyMismatch
from dspy_meta.cli import main as cli_main
from dspy_meta.distributed import StudyStorage, default_study_name, worker_for
from dspy_meta.distributed.queue import StudyQueue
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.scripted_lm import register_litellm_provider
from dspy_meta.testing.toy_task import Shout, shout_examples, shout_metric, shout_program_responder
from tests.distributed.conftest import run_trials
from tests.distributed.job import BUDGET, SETTINGS, STUDY, compile_toy, data, engines, outcome, storage


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The storage URL of a toy run that one process (the driver alone) finished, and what it found."""
    url = f"sqlite:///{tmp_path_factory.mktemp('study') / 'alone.db'}"
    return url, outcome(compile_toy(engines(), url=url))


def test_one_process_alone_finishes_and_the_study_shows_each_candidate(reference, finished):
    url, found = finished
    assert found == reference
    study = optuna.load_study(study_name=STUDY, storage=url)
    trials = study.get_trials()
    ran = run_trials(trials)
    assert len(ran) == len(trials) and all(len(t) == 1 for t in ran.values())
    for trial in trials:  # what optuna-dashboard lists per trial
        assert {"stage", "plan", "score", "outcome", "reason"} <= set(trial.user_attrs)
        if trial.state == TrialState.COMPLETE:
            assert trial.value == trial.user_attrs["score"]
    summary = study.user_attrs["dspy_meta_summary"]
    assert study.user_attrs["dspy_meta_finished"] is True
    assert summary["best_score"] == reference["results"]["best_score"]
    accepted = [t for t in trials if t.number in summary["accepted_trials"]]
    assert accepted and all(t.user_attrs["score"] is not None for t in accepted)


def test_a_rerun_on_the_same_storage_reads_every_candidate_back(reference, finished):
    url, _ = finished
    before = len(optuna.load_study(study_name=STUDY, storage=url).trials)
    again = engines()
    assert outcome(compile_toy(again, url=url)) == reference
    assert len(again[1].calls) == 0  # no inner optimizer ran: every candidate came from the study
    assert len(optuna.load_study(study_name=STUDY, storage=url).trials) == before


def test_the_default_study_name_follows_the_run_and_another_runs_study_is_refused(finished, tmp_path):
    names_url = f"sqlite:///{tmp_path / 'names.db'}"
    compile_toy(engines(), url=names_url, study_name=None)
    names = optuna.get_all_study_names(names_url)
    assert len(names) == 1 and names[0].startswith("dspy-meta-MetaTeleprompter-")
    assert default_study_name("MetaTeleprompter", {"seed": 0}) != default_study_name("MetaTeleprompter", {"seed": 1})
    lms = engines()
    with pytest.raises(StudyMismatch, match=r"holds a different run \(differs in \['seed'\]\)"):
        MetaTeleprompter(shout_metric, task_model=lms[0].as_lm(), prompt_model=lms[1].as_lm(),
                         meta_model=lms[2].as_lm(), storage=storage(finished[0]), study_name=STUDY,
                         **{**SETTINGS, "seed": 1}).compile(Shout(), trainset=data()[0], valset=data()[1])
    assert [len(e.calls) for e in lms] == [0, 0, 0]


def test_a_worker_with_other_data_or_lms_is_refused_by_name(finished):
    queue = StudyQueue.load(storage(finished[0]), STUDY)
    lms = engines()
    inputs = {"student": Shout(), "metric": shout_metric, "trainset": data()[0], "valset": data()[1],
              "task_model": lms[0].as_lm(), "prompt_model": lms[1].as_lm()}
    assert worker_for(queue, **inputs).serve() == 0  # the study is finished: nothing left to run
    with pytest.raises(StudyMismatch, match=r"differ from the run of study 'toy' in \['trainset'\]"):
        worker_for(queue, **{**inputs, "trainset": shout_examples(7)})
    with pytest.raises(StudyMismatch, match="program and optimizer LMs differ"):
        worker_for(queue, **{**inputs, "task_model": lms[0].as_lm(model="scripted/other")})
    with pytest.raises(StudyMismatch, match="no dspy-meta study 'nope'"):
        StudyQueue.load(storage(finished[0]), "nope")


def test_the_cli_worker_refuses_a_study_started_from_python(finished, capsys):
    assert cli_main(["worker", "--storage", finished[0], "--study", STUDY]) == 2
    assert "start its workers with the Python entry point" in capsys.readouterr().err


def test_no_credential_reaches_the_storage(tmp_path):
    secret = "sk-PLANTED-study-4c2b9e"
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    lms = []
    for level, engine in zip(("program", "optimizer", "meta"), engines(), strict=True):
        register_litellm_provider(f"scripted-study-{level}", engine)  # the real litellm path, served offline
        lms.append(dspy.LM(f"scripted-study-{level}/model", api_key=secret, cache=False,
                           api_base=f"https://user:{secret}@example.invalid/v1"))
    one_input = [OptimizerSpec.create("bootstrap_fewshot", max_bootstrapped_demos=1, max_labeled_demos=0)]
    program = MetaStructureOptimizer(shout_metric, one_input, budget=BUDGET.replace(structure_steps=0), seed=0,
                                     display_progress=False, task_model=lms[0], prompt_model=lms[1], meta_model=lms[2],
                                     storage=storage(url)).compile(Shout(), trainset=data()[0], valset=data()[1])
    assert program.meta_results_.candidates[0].score is not None  # the run went through the keyed LMs
    dump = (tmp_path / "keys.db").read_bytes()
    assert b"example.invalid" in dump and secret.encode() not in dump  # the LMs are described, their keys never
    with pytest.raises(ValueError) as refused:  # a storage URL's password stays out of errors too
        StudyStorage(f"postgresql+psycopg2://user:{secret}@127.0.0.1:1/db").open()
    assert secret not in str(refused.value) and "***" in str(refused.value)


def _studies(url: str) -> list:
    try:
        return StudyStorage(url).open().get_all_studies()
    except ValueError:  # the driver is creating the database
        return []


def test_an_experiment_run_queues_its_recipe_and_the_cli_worker_serves_it(tmp_path):
    import threading
    import time

    from dspy_meta.experiments import ExperimentConfig, run_experiment
    from dspy_meta.experiments.worker_cli import serve_experiment_studies
    from dspy_meta.testing.toy_task import aligning_meta_responder, shout_optimizer_responder

    config = ExperimentConfig.from_dict({
        "name": "queued", "task": {"name": "word_sorting_generated",
                                   "kwargs": {"max_words": 3, "n_train": 4, "n_val": 4, "n_test": 4}},
        "lms": {"program": "scripted/p", "optimizer": "scripted/o", "meta": "scripted/m"},
        "budget": {"prompt_steps": 0, "structure_steps": 0, "copro_breadth": 2, "copro_depth": 1,
                   "mipro_candidates": 2, "mipro_trials": 2},
        "methods": ["meta_structure"], "seeds": [0], "max_bootstrapped_demos": 1, "max_labeled_demos": 0})
    lms = {"program": ScriptedEngine(lambda c: shout_program_responder(c)).as_lm(),
           "optimizer": ScriptedEngine(shout_optimizer_responder).as_lm(),
           "meta": ScriptedEngine(aligning_meta_responder).as_lm()}
    url = f"sqlite:///{tmp_path / 'experiment.db'}"
    found = []
    driver = threading.Thread(target=lambda: found.append(run_experiment(
        config, output=tmp_path / "out", lms=lms,
        storage=StudyStorage(url, heartbeat_interval=1, poll_interval=0.1, evaluate_here=False))), daemon=True)
    driver.start()
    deadline = time.monotonic() + 60
    while not any(study.user_attrs.get("dspy_meta_screen") for study in _studies(url)):  # its first trial is queued
        assert time.monotonic() < deadline
        time.sleep(0.1)
    ran = serve_experiment_studies(StudyStorage(url, poll_interval=0.1), lms=lms, idle_timeout=1)
    driver.join(timeout=60)
    assert ran == 4 and found  # the three input optimizers' first runs and the closing ensemble, all by this worker
    results = found[0]
    study = optuna.load_study(study_name=optuna.get_all_study_names(url)[0], storage=url)
    recipe = study.user_attrs["dspy_meta_recipe"]
    assert recipe["method"] == "meta_structure" and recipe["config"]["lms"]["program"]["model"] == "scripted/p"
    assert json.dumps(recipe).find("api_key") < 0
    assert results["runs"][0]["method"] == "meta_structure" and study.user_attrs["dspy_meta_finished"]


def test_workers_may_reach_the_model_elsewhere_but_not_use_another_model():
    from dspy_meta.distributed.queue import model_identity

    here, there = (dspy.LM("openai/program", api_base=base, api_key="sk-PLANTED-0123456789", temperature=0.0)
                   for base in ("http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"))
    assert model_identity(here) == model_identity(there) and "sk-PLANTED" not in model_identity(here)
    assert model_identity(here) != model_identity(dspy.LM("openai/program", temperature=0.7))
    assert model_identity(here) != model_identity(dspy.LM("openai/other", temperature=0.0))


def test_an_ensemble_reuses_members_found_by_earlier_trials(tmp_path):
    """A worker loads the programs of the plans its driver knew from their trials, as a local run reuses them."""
    def ensemble_meta(call):
        members = [{"op": "optimize", "ref": "copro"}, {"op": "optimize", "ref": "bootstrap_fewshot"}]
        return {"analysis": "Vote.", "plan": json.dumps({"op": "ensemble", "members": members})}

    def run(url=None):
        lms = engines()
        lms[2] = ScriptedEngine(ensemble_meta)
        library = {"copro": OptimizerSpec.create("copro", breadth=2, depth=1),
                   "bootstrap_fewshot": OptimizerSpec.create("bootstrap_fewshot", max_bootstrapped_demos=1,
                                                             max_labeled_demos=0)}
        extra = {"storage": storage(url, evaluate_here=False), "study_name": STUDY} if url else {}
        program = MetaStructureOptimizer(shout_metric, library, budget=BUDGET, seed=0, display_progress=False,
                                         task_model=lms[0].as_lm(), prompt_model=lms[1].as_lm(),
                                         meta_model=lms[2].as_lm(), **extra).compile(
            Shout(), trainset=data()[0], valset=data()[1])
        return outcome(program)

    local, url = run(), f"sqlite:///{tmp_path / 'ensemble.db'}"
    found = []
    driver = threading.Thread(target=lambda: found.append(run(url)), daemon=True)
    driver.start()
    while driver.is_alive():  # every trial on a fresh worker: nothing memoized from an earlier trial
        try:
            queue = StudyQueue.load(storage(url), STUDY)
        except (StudyMismatch, ValueError):
            time.sleep(0.1)
            continue
        lms = engines()
        worker = worker_for(queue, student=Shout(), metric=shout_metric, trainset=data()[0], valset=data()[1],
                            task_model=lms[0].as_lm(), prompt_model=lms[1].as_lm())
        if not worker.run_one():
            time.sleep(0.1)
    assert found == [local]
    ensemble = [t for t in optuna.load_study(study_name=STUDY, storage=url).trials
                if t.user_attrs["plan"].get("op") == "ensemble"]
    assert len(ensemble) == 1 and len(ensemble[0].user_attrs["known"]) == 2
    usage = StudyQueue.result_of(ensemble[0])["usage"]
    assert usage["optimizer"]["calls"] == 0 and usage["program"]["calls"] > 0  # members reused, only scored


def test_a_stale_trial_seen_by_several_processes_at_once_is_retried_once(tmp_path):
    # SQLite ignores the row lock Optuna takes when it fails a stale trial: unserialised, every process that
    # looks at once fails the trial again and queues another copy of it.
    url = f"sqlite:///{tmp_path / 'stale.db'}"
    settings = StudyStorage(url, heartbeat_interval=1, grace_period=1, poll_interval=0.05)
    queue = StudyQueue.create(settings, "stale", {"fingerprint": {}})
    queue.enqueue({"plan_digest": "p"})
    claimed = queue.claim("doomed:1")
    assert claimed is not None
    time.sleep(2.5)  # its worker "died": no heartbeat since the claim
    lookers = [StudyQueue(settings, optuna.load_study(study_name="stale", storage=settings.open())) for _ in range(6)]
    barrier = threading.Barrier(len(lookers))

    def look(q):
        barrier.wait()
        q.fail_stale()

    threads = [threading.Thread(target=look, args=(q,)) for q in lookers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trials = queue.trials()
    assert [t.state for t in trials if t.number == claimed.number] == [TrialState.FAIL]
    copies = [t for t in trials if t.system_attrs.get("failed_trial") == claimed.number]
    assert len(copies) == 1 and copies[0].state == TrialState.WAITING


def _claim_all(url: str, out: str) -> None:
    """A process that claims waiting trials of study "claims" until none waits; writes their numbers."""
    settings = StudyStorage(url, heartbeat_interval=60, poll_interval=0.01)
    queue = StudyQueue(settings, optuna.load_study(study_name="claims", storage=settings.open()))
    claimed = []
    while (trial := queue.claim(f"claimer:{out}")) is not None:
        claimed.append(trial.number)
    with open(out, "w") as f:
        json.dump(claimed, f)


def test_processes_claiming_at_once_never_claim_the_same_trial(tmp_path):
    # Optuna's WAITING -> RUNNING update reads, then writes; on SQLite two processes could both read WAITING.
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'claims.db'}"
    settings = StudyStorage(url, heartbeat_interval=60)
    queue = StudyQueue.create(settings, "claims", {"fingerprint": {}})
    for i in range(40):
        queue.enqueue({"plan_digest": f"plan-{i}"})
    context = multiprocessing.get_context("spawn")
    outs = [str(tmp_path / f"claimed{i}.json") for i in range(4)]
    processes = [context.Process(target=_claim_all, args=(url, out)) for out in outs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    claimed = [number for out in outs for number in json.loads(open(out).read())]
    assert sorted(claimed) == list(range(40))  # each trial claimed once, by one process
