import threading

import dspy
import tqdm

from dspy_meta.runtime.tqdm_guard import concurrent_tqdm
from dspy_meta.testing import ScriptedEngine


def test_concurrent_evaluations_do_not_break_tqdm_and_the_registry_is_restored():
    lm = ScriptedEngine(lambda call: {"answer": "x"}).as_lm()
    devset = [dspy.Example(q=str(i), answer="x").with_inputs("q") for i in range(6)]
    errors = []

    def evaluate_many():
        try:
            with dspy.context(lm=lm):
                for _ in range(15):
                    result = dspy.Evaluate(devset=devset, metric=lambda e, p, t=None: p.answer == e.answer,
                                           num_threads=2, display_progress=False)(dspy.Predict("q -> answer"))
                    assert result.score == 100.0
        except BaseException as exc:  # noqa: BLE001 -- collected and asserted on below
            errors.append(exc)

    original_type = type(tqdm.tqdm._instances)
    with concurrent_tqdm():
        threads = [threading.Thread(target=evaluate_many) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert type(tqdm.tqdm._instances) is original_type
