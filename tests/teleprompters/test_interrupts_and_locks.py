"""Ctrl-C with several threads, in a separate process and in-process, and two processes on one run_dir."""

import _thread
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import shout_program_responder

from .conftest import compile_toy, toy_engines

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _job(run_dir, out, threads=4, delay=0.01):
    return [sys.executable, "-m", "tests.teleprompters.resume_job", str(run_dir), str(out), str(threads), str(delay)]


def _failed_checkpoints(run_dir: Path) -> list[str]:
    return [p.name for p in (run_dir / "candidates").glob("*.json")
            if json.loads(p.read_text())["reason"].startswith("run failed")]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    subprocess.run(_job(folder / "run", folder / "clean.json"), cwd=ROOT, env=ENV, check=True, timeout=600)
    return json.loads((folder / "clean.json").read_text())


def _same_result(results: dict) -> dict:
    """A run's results without the split of usage between candidates, which may differ between runs with
    threads when two branches need the same LM answer at once (totals are exact; README, Performance)."""
    return {**results, "candidates": [{k: v for k, v in c.items() if k != "usage"} for c in results["candidates"]]}


def _wait_for(predicate, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def test_sigint_with_threads_checkpoints_no_failure_and_resumes_to_the_uninterrupted_result(tmp_path, clean_run):
    run_dir = tmp_path / "run"
    job = subprocess.Popen(_job(run_dir, tmp_path / "never.json", delay=0.03), cwd=ROOT, env=ENV,
                           stderr=subprocess.PIPE)
    assert _wait_for(lambda: len(list((run_dir / "candidates").glob("*.json"))) >= 2)
    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=300)
    assert job.returncode != 0 and not (tmp_path / "never.json").exists()
    assert b"KeyboardInterrupt" in stderr
    assert _failed_checkpoints(run_dir) == []  # nothing that did not fail is recorded as failed
    subprocess.run(_job(run_dir, tmp_path / "resumed.json"), cwd=ROOT, env=ENV, check=True, timeout=600)
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert _same_result(resumed["results"]) == _same_result(clean_run["results"])
    assert resumed["instructions"] == clean_run["instructions"]


def test_two_processes_on_one_run_dir_do_the_work_once(tmp_path, clean_run):
    run_dir = tmp_path / "run"
    jobs = [subprocess.Popen(_job(run_dir, tmp_path / f"out{i}.json"), cwd=ROOT, env=ENV) for i in range(2)]
    for job in jobs:
        assert job.wait(600) == 0
    outs = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]
    assert all(_same_result(out["results"]) == _same_result(clean_run["results"]) for out in outs)
    # the second waited for the first, then replayed its checkpoints: no LM call at all
    assert sorted(sum(out["calls"]) for out in outs)[0] == 0
    assert sorted(sum(out["calls"]) for out in outs)[1] == sum(clean_run["calls"])


def test_in_process_interrupt_stops_every_branch_at_its_next_lm_call(tmp_path, shout_data):
    def slow(call):
        time.sleep(0.05)
        return shout_program_responder(call, demos_help=False)

    clean = compile_toy(toy_engines(slow), shout_data, num_threads=4, run_dir=str(tmp_path / "clean")).meta_results_
    run_dir = tmp_path / "run"
    engines = toy_engines(slow)

    def interrupt_after_two_candidates():
        if _wait_for(lambda: len(list((run_dir / "candidates").glob("*.json"))) >= 1, 120):
            _thread.interrupt_main()

    threading.Thread(target=interrupt_after_two_candidates, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        compile_toy(engines, shout_data, num_threads=4, run_dir=str(run_dir))
    calls = [len(e.calls) for e in engines]
    time.sleep(3.0)  # a branch still at work would keep calling the LMs
    assert [len(e.calls) for e in engines] == calls, f"calls went on after the interrupt: {calls}"
    assert _failed_checkpoints(run_dir) == []
    resumed = compile_toy(toy_engines(slow), shout_data, num_threads=4, run_dir=str(run_dir)).meta_results_
    assert _same_result(resumed.to_dict()) == _same_result(clean.to_dict())


def test_a_call_that_never_returns_times_out_instead_of_hanging(shout_data):
    release = threading.Event()
    hung_word = shout_data[1][0].word

    def hangs_on_one_word(call):
        if call.inputs.get("word") == hung_word:
            release.wait(600)
        return shout_program_responder(call, demos_help=False)

    engines = toy_engines(hangs_on_one_word)
    engines[0] = ScriptedEngine(hangs_on_one_word)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(
        compile_toy(engines, shout_data, call_timeout=0.5).meta_results_), daemon=True)
    worker.start()
    worker.join(300)
    release.set()
    assert not worker.is_alive() and outcome, "compile hung on an LM call that never returns"
    assert outcome[0].baseline_score is not None


def test_a_meta_call_that_never_returns_is_a_rejected_proposal(shout_data):
    from dspy_meta.testing.toy_task import aligning_meta_responder

    release, seen = threading.Event(), []

    def hangs_first(call):
        seen.append(call)
        if len(seen) == 1:
            release.wait(600)
        return aligning_meta_responder(call)

    engines = toy_engines()
    engines[2] = ScriptedEngine(hangs_first)
    try:
        results = compile_toy(engines, shout_data, call_timeout=0.5).meta_results_
    finally:
        release.set()
    assert any("LMCallTimeout" in c.reason for c in results.candidates if c.plan is None)
    assert results.best_score == 1.0
