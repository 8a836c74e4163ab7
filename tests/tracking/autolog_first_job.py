"""`mlflow.dspy.autolog()` called before dspy_meta is imported, in a fresh interpreter (imports are cached).

Usage: python -m tests.tracking.autolog_first_job EXPERIMENT_ID_1_THREAD EXPERIMENT_ID_4_THREADS
(MLFLOW_TRACKING_URI names the store.) Prints one JSON line: the candidates each compile recorded.
"""

import json
import sys

import mlflow

mlflow.dspy.autolog(log_compiles=True, log_evals=True)

from tests.tracking.helpers import compile_meta  # noqa: E402 -- the point: dspy_meta comes after autolog()


def main(one_thread: str, four_threads: str) -> None:
    counts = {}
    for experiment_id, threads in ((one_thread, 1), (four_threads, 4)):
        mlflow.set_experiment(experiment_id=experiment_id)
        counts[threads] = len(compile_meta(keyed=False, num_threads=threads).meta_results_.candidates)
    print(json.dumps(counts))


if __name__ == "__main__":
    main(*sys.argv[1:3])
