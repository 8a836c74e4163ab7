"""Distributed meta search: a run's candidates queue in an Optuna study and any process runs them.

``MetaTeleprompter(..., storage="postgresql+psycopg2://...")`` puts each candidate into the run's study;
`run_worker` (or ``dspy-meta worker`` for experiment configs) runs them on other processes and machines.
"""

from dspy_meta.distributed.queue import StudyStorage, default_study_name
from dspy_meta.distributed.runner import StudyRunner
from dspy_meta.distributed.worker import run_worker, worker_for

__all__ = ["StudyStorage", "StudyRunner", "run_worker", "worker_for", "default_study_name"]
