import dspy
import pytest

from dspy_meta.runtime import GuardedMetric, RunStore, build_runtime
from dspy_meta.testing import ScriptedEngine
from dspy_meta.testing.toy_task import shout_metric


def _lms():
    return {level: ScriptedEngine(lambda c: {"answer": "x"}, model=level).as_lm()
            for level in ("program", "optimizer", "meta")}


def test_the_runtime_meters_copies_whose_real_requests_the_callers_lms_record():
    lms = _lms()
    runtime = build_runtime(lms, metric=GuardedMetric(shout_metric, 1), num_threads=2)
    for level, lm in lms.items():
        assert runtime.lms[level] is not lm and type(lm) is dspy.LM
    runtime.program_lm("hello")
    runtime.program_lm("hello")  # the call memo answers a repeat
    # The caller's LM keeps its class and records each real request once, as with MIPROv2 (issue 30).
    assert runtime.usage()["program"].calls == 1 and len(lms["program"].history) == 1


def test_every_level_needs_an_lm():
    lms = _lms()
    del lms["meta"]
    with pytest.raises(ValueError, match=r"missing \['meta'\]"):
        build_runtime(lms, metric=GuardedMetric(shout_metric, 1))


def test_a_branch_counts_for_the_run_and_checkpoints_replay(tmp_path):
    store = RunStore(tmp_path)
    store.open({"run": 1})
    runtime = build_runtime(_lms(), metric=GuardedMetric(shout_metric, 1), store=store)
    branch = runtime.branch()
    answer = branch.checkpointed("k", "one", lambda: branch.optimizer_lm("hi")[0])
    assert answer == branch.optimizer_lm("hi")[0]  # the repeat comes from the call memo
    assert branch.usage()["optimizer"].calls == 1 and runtime.usage()["optimizer"].calls == 1
    fresh = build_runtime(_lms(), metric=GuardedMetric(shout_metric, 1), store=store)
    assert fresh.checkpointed("k", "one", lambda: pytest.fail("replayed work must not run again")) is not None
    assert fresh.usage()["optimizer"].calls == 1  # the replayed usage still counts
