"""`dspy-meta worker` exits when the studies it serves are finished, and refuses a SQLite database that does
not exist instead of creating it empty and waiting forever (issue 30, 10)."""

import threading

from dspy_meta import cli
from dspy_meta.distributed import StudyStorage, run_worker
from dspy_meta.distributed.queue import FINISHED, StudyQueue
from dspy_meta.errors import StudyMismatch
from dspy_meta.experiments.worker_cli import serve_experiment_studies
from dspy_meta.testing.toy_task import Shout, shout_metric

from tests.distributed.job import STUDY


def _outcome(call, seconds: float = 60):
    """What `call()` returned or raised, run in a thread: a bound against a hang only (before these fixes the
    calls below never returned)."""
    found = []

    def run():
        try:
            found.append(call())
        except BaseException as exc:  # noqa: BLE001 -- reported to the test
            found.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert found, "it never returned"
    return found[0]


def test_a_worker_refuses_a_sqlite_file_that_does_not_exist_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    refused = _outcome(lambda: serve_experiment_studies(StudyStorage("sqlite:///tpyo.db")))
    assert isinstance(refused, StudyMismatch)
    assert "no database file 'tpyo.db'" in str(refused) and "a worker does not create one" in str(refused)
    refused = _outcome(lambda: run_worker("sqlite:///tpyo.db", STUDY, student=Shout(), metric=shout_metric,
                                          trainset=[]))  # the Python entry point, which waits forever for a study
    assert isinstance(refused, StudyMismatch) and "tpyo.db" in str(refused)
    assert _outcome(lambda: cli.main(["worker", "--storage", "sqlite:///tpyo.db", "--study", "toy"])) != 0
    assert "tpyo.db" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # before: an empty tpyo.db, and a worker waiting on it forever


def test_a_worker_told_to_wait_finds_the_database_its_driver_creates_meanwhile(tmp_path):
    url = f"sqlite:///{tmp_path / 'later.db'}"
    created = threading.Event()

    def driver():
        created.wait(60)
        StudyQueue.create(StudyStorage(url), STUDY, {"fingerprint": {}})

    thread = threading.Thread(target=driver)
    thread.start()
    settings = StudyStorage(url, poll_interval=0.05)
    created.set()
    assert StudyQueue.load(settings, STUDY, wait=60).name == STUDY
    thread.join()


def _experiment_study(url: str, name: str, finished: bool) -> StudyQueue:
    queue = StudyQueue.create(StudyStorage(url, recipe={"config": {}, "method": "x", "seed": 0}), name,
                              {"fingerprint": {}})
    queue.set_attr(FINISHED, finished)
    return queue


def test_a_worker_without_a_study_name_exits_once_every_experiment_study_is_finished(tmp_path):
    url = f"sqlite:///{tmp_path / 'done.db'}"
    _experiment_study(url, "a", finished=True)
    _experiment_study(url, "b", finished=True)
    StudyQueue.create(StudyStorage(url), "python-run", {"fingerprint": {}})  # no recipe: not an experiment's
    assert _outcome(lambda: serve_experiment_studies(StudyStorage(url, poll_interval=0.05))) == 0  # no idle timeout


def test_a_worker_waits_while_no_experiment_study_exists_yet(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    StudyStorage(url).open()  # the driver created the database, not its study yet
    assert serve_experiment_studies(StudyStorage(url, poll_interval=0.05), idle_timeout=0.2) == 0  # idle, then home
