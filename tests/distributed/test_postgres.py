"""Two worker processes against a real PostgreSQL server (`.ci/postgres_tests.sh` starts one and sets
DSPY_META_TEST_POSTGRES; run with ``-m postgres``)."""

import os

import optuna
import pytest

from tests.distributed.conftest import finish, run_trials, start, study_trials
from tests.distributed.job import STUDY
from tests.distributed.test_workers import drive_in_thread

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_url():
    url = os.environ.get("DSPY_META_TEST_POSTGRES")
    if not url:
        pytest.fail("set DSPY_META_TEST_POSTGRES to a PostgreSQL URL (.ci/postgres_tests.sh starts a server)")
    if STUDY in optuna.get_all_study_names(url):  # a server kept from an earlier run
        optuna.delete_study(study_name=STUDY, storage=url)
    return url


def test_two_workers_on_postgresql_give_the_single_process_result(reference, postgres_url, tmp_path):
    thread, found, errors = drive_in_thread(postgres_url, evaluate_here=False, num_threads=2)
    workers = [start("worker", postgres_url, "--jitter", "0.02", "--seed", str(i), log=tmp_path / f"w{i}.log")
               for i in range(2)]
    thread.join(timeout=180)
    assert not thread.is_alive() and not errors, errors
    for i, worker in enumerate(workers):
        finish(worker, tmp_path / f"w{i}.log")
    assert found == reference
    trials = study_trials(postgres_url)
    assert all(len(t) == 1 for t in run_trials(trials).values())
    assert {t.user_attrs["worker"].split(":")[1] for t in trials} <= {str(w.pid) for w in workers}  # none by the driver
