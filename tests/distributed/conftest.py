import multiprocessing
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.distributed import job
from tests.distributed.job import STUDY, compile_toy, engines, outcome


@pytest.fixture(scope="session")
def reference():
    """What the toy run finds in one process, without storage."""
    return outcome(compile_toy(engines()))


# Workers and drivers are processes forked from a server that imported DSPy and Optuna once (a process
# with no threads, so forking it is safe): each starts in milliseconds instead of seconds of imports.
_PROCESSES = multiprocessing.get_context("forkserver")
_PROCESSES.set_forkserver_preload(["tests.distributed.job", "optuna.storages._rdb.storage", "sqlalchemy.orm",
                                    "alembic.migration"])


def start(role: str, url: str, *args: str, log: Path):
    """A driver or worker of the toy run in a process of its own (`tests.distributed.job`)."""
    process = _PROCESSES.Process(target=job.entry, args=([role, url, *args], str(log)), daemon=True)
    process.start()
    return process


def finish(process, log: Path, timeout: float = 120) -> None:
    process.join(timeout)
    text = log.read_text()[-3000:] if log.exists() else ""
    if process.is_alive():
        process.kill()
        raise AssertionError(f"process did not finish; its log:\n{text}")
    assert process.exitcode == 0, text


def study_trials(url: str) -> list:
    return optuna.load_study(study_name=STUDY, storage=url).get_trials(deepcopy=False)


def run_trials(trials: list) -> dict[str, list]:
    """plan digest -> the trials that ran it to the end (duplicates are never run)."""
    ran: dict[str, list] = {}
    for trial in trials:
        if "result_chunks" in trial.user_attrs and trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            ran.setdefault(trial.user_attrs["plan_digest"], []).append(trial)
    return ran
