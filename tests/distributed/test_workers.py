"""Distributed runs on SQLite storage with worker processes: any number of workers, a worker killed
mid-candidate, a driver killed and restarted, two drivers on one study."""

import json
import os
import signal
import threading
import time

from optuna.trial import TrialState

from tests.distributed.conftest import finish, run_trials, start, study_trials
from tests.distributed.job import compile_toy, engines, outcome


def drive_in_thread(url: str, **kwargs):
    """The toy run's driver in a thread of this process (workers elsewhere run its candidates)."""
    found, errors = {}, []

    def drive():
        try:
            found.update(outcome(compile_toy(engines(), url=url, **kwargs)))
        except BaseException as exc:  # noqa: BLE001 -- reported by the test
            errors.append(exc)

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    return thread, found, errors


def test_one_two_and_four_workers_give_the_single_process_result(reference, tmp_path):
    runs = {}
    for n in (1, 2, 4):  # all at once: their start-up overlaps
        url = f"sqlite:///{tmp_path / f'n{n}.db'}"
        workers = [start("worker", url, "--jitter", "0.02", "--seed", str(i), log=tmp_path / f"n{n}-w{i}.log")
                   for i in range(n)]
        # Two threads: the prompt searches' candidates are queued side by side, so workers finish out of order.
        runs[n] = (url, workers, *drive_in_thread(url, evaluate_here=False, num_threads=2))
    for n, (url, workers, thread, found, errors) in runs.items():
        thread.join(timeout=180)
        assert not thread.is_alive() and not errors, errors
        for i, worker in enumerate(workers):
            finish(worker, tmp_path / f"n{n}-w{i}.log")  # the finished study sends workers home
        assert found == reference, n
        trials = study_trials(url)
        ran = run_trials(trials)
        assert all(len(t) == 1 for t in ran.values())  # no candidate ran twice
        assert {t.user_attrs["worker"].split(":")[1] for t in trials if t.user_attrs.get("worker")} <= \
            {str(w.pid) for w in workers}  # the driver ran none of them itself
        if n == 4:
            assert len({t.user_attrs["worker"] for t in trials}) >= 2  # the work was spread
    scored = [c for c in reference["results"]["candidates"] if c["score"] is not None]
    assert scored and any(c["accepted"] for c in scored)


def test_a_worker_killed_mid_candidate_is_replaced_and_its_candidate_finished_elsewhere(reference, tmp_path):
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    thread, found, errors = drive_in_thread(url, evaluate_here=False)
    block = tmp_path / "mid-candidate"
    doomed = start("worker", url, "--block-file", str(block), log=tmp_path / "doomed.log")
    deadline = time.monotonic() + 60
    while not block.exists():
        assert time.monotonic() < deadline and doomed.is_alive(), (tmp_path / "doomed.log").read_text()[-2000:]
        time.sleep(0.1)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join()
    rescuer = start("worker", url, log=tmp_path / "rescuer.log")
    thread.join(timeout=120)
    assert not thread.is_alive() and not errors, errors
    finish(rescuer, tmp_path / "rescuer.log")
    assert found == reference
    trials = study_trials(url)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["worker"].endswith(f":{doomed.pid}")
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retried) == 1 and retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retried[0].user_attrs["worker"].endswith(f":{rescuer.pid}")
    assert retried[0].user_attrs["plan_digest"] == failed[0].user_attrs["plan_digest"]


def test_a_driver_killed_and_restarted_resumes_from_the_study(reference, tmp_path):
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    out, block = tmp_path / "out.json", tmp_path / "three-done"
    # It runs the candidates itself (it is the only process) and hangs once it finished its third: killed there,
    # whatever the machine's speed (polling the study instead raced a driver that sometimes finished them all).
    first = start("driver", url, str(out), "--block-after", "3", "--block-file", str(block), log=tmp_path / "first.log")
    deadline = time.monotonic() + 120  # a bound against a hang only
    while not block.exists():
        assert time.monotonic() < deadline and first.is_alive(), (tmp_path / "first.log").read_text()[-2000:]
        time.sleep(0.1)
    os.kill(first.pid, signal.SIGKILL)
    first.join()
    done_before = set(run_trials(study_trials(url)))
    assert len(done_before) == 3
    second = start("driver", url, str(out), log=tmp_path / "second.log")
    finish(second, tmp_path / "second.log")
    assert json.loads(out.read_text()) == reference
    ran = run_trials(study_trials(url))
    assert done_before < set(ran) and all(len(t) == 1 for t in ran.values())  # nothing finished ran again


def test_two_drivers_on_one_study_run_each_candidate_once(reference, tmp_path):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    drivers = [start("driver", url, str(tmp_path / f"out{i}.json"), log=tmp_path / f"driver{i}.log") for i in (0, 1)]
    for i, driver in enumerate(drivers):
        finish(driver, tmp_path / f"driver{i}.log")
    for i in (0, 1):
        assert json.loads((tmp_path / f"out{i}.json").read_text()) == reference
    trials = study_trials(url)
    ran = run_trials(trials)
    assert ran and all(len(t) == 1 for t in ran.values())
    planned = {c["plan"] and json.dumps(c["plan"], sort_keys=True) for c in reference["results"]["candidates"]
               if c["plan"] is not None and not c["reused"]}
    assert len(ran) == len(planned)
