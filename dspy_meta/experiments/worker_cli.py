"""``dspy-meta worker``: serve the studies of meta runs started from an experiment config.

Such a run's study holds its recipe (the config, the method and the seed; a config never holds a
credential), so a worker rebuilds the task, its data, the student, the metric and the LMs from it, taking
API keys from its own environment. A study started from a bare Python ``compile`` holds no recipe: its
workers are Python processes that call `dspy_meta.distributed.run_worker` with the driver's objects.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dspy_meta.distributed.queue import FINISHED, RECIPE, StudyQueue, study_storage
from dspy_meta.distributed.worker import TrialWorker, worker_for
from dspy_meta.errors import StudyMismatch
from dspy_meta.experiments.config import ExperimentConfig

logger = logging.getLogger(__name__)

__all__ = ["experiment_worker", "serve_experiment_studies"]


def experiment_worker(queue: StudyQueue, *, lms: dict | None = None, num_threads: int | None = None) -> TrialWorker:
    """A worker of a study started by the experiment runner (`lms` replaces the config's, e.g. in tests)."""
    recipe = queue.attrs().get(RECIPE)
    if recipe is None:
        raise StudyMismatch(f"study {queue.name!r} was started from a Python compile, not from an experiment "
                            "config: start its workers with the Python entry point "
                            "dspy_meta.distributed.run_worker(storage, study_name, student=..., metric=..., "
                            "trainset=..., valset=..., task_model=..., prompt_model=...)")
    config = ExperimentConfig.from_dict(recipe["config"], source=f"study {queue.name!r}")
    if lms is None:
        from dspy_meta.cli_checks import preflight

        preflight(config, load_task=False)  # a missing local engine: one error now, not one per trial
    task = config.task.load()
    lms = lms or {level: lm_config.build() for level, lm_config in config.lms.items()}
    return worker_for(queue, student=task.make_program(), metric=task.metric, trainset=task.train, valset=task.val,
                      task_model=lms["program"], prompt_model=lms["optimizer"],
                      num_threads=num_threads or config.num_threads)


def serve_experiment_studies(storage: Any, study_name: str | None = None, *, lms: dict | None = None,
                             num_threads: int | None = None, idle_timeout: float | None = None) -> int:
    """Run waiting trials of one study (until it is finished) or, without a name, of every unfinished
    experiment study in `storage` (until all of them are finished, or none had work for `idle_timeout`
    seconds); how many ran here. A storage with no experiment study yet is waited on (its driver may be
    starting); a SQLite file that does not exist is refused (`StudyStorage.open_existing`)."""
    settings = study_storage(storage)
    if study_name is not None:
        queue = StudyQueue.load(settings, study_name, wait=idle_timeout)
        return experiment_worker(queue, lms=lms, num_threads=num_threads).serve(idle_timeout=idle_timeout)
    workers: dict[str, TrialWorker] = {}
    ran, idle_since = 0, time.monotonic()
    opened = settings.open_existing(idle_timeout)
    while idle_timeout is None or time.monotonic() - idle_since <= idle_timeout:
        busy = False
        studies = [study for study in opened.get_all_studies() if RECIPE in study.user_attrs]
        unfinished = [study for study in studies if not study.user_attrs.get(FINISHED)]
        if studies and not unfinished:
            logger.info("worker: every experiment study in %s is finished (%d candidate(s) run here)", settings.shown,
                        ran)
            return ran
        for study in unfinished:
            if study.study_name not in workers:
                queue = StudyQueue.load(settings, study.study_name)
                workers[study.study_name] = experiment_worker(queue, lms=lms, num_threads=num_threads)
            while workers[study.study_name].run_one():
                ran, busy = ran + 1, True
        if busy:
            idle_since = time.monotonic()
        else:
            time.sleep(settings.poll_interval)
    logger.warning("worker: no waiting trial in any unfinished study for %.0f s; stopping (%d run here)",
                   idle_timeout, ran)
    return ran
