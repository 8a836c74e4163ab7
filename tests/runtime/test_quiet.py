"""Quiet runs: DSPy's bars, prints and logs are silenced inside `quiet()`, only there, and restored after."""

import logging
import sys
import threading

import dspy
import pytest
import tqdm
from dspy.teleprompt.utils import print_full_program
from dspy.utils.parallelizer import ParallelExecutor

from dspy_meta.runtime.checks import forward_inputs
from dspy_meta.runtime.quiet import in_quiet_context, quiet
from dspy_meta.testing.toy_task import Shout, shout_examples

from ..teleprompters.conftest import compile_toy, toy_engines


def _hooks_state():
    dspy_handlers = logging.getLogger("dspy").handlers + logging.getLogger().handlers
    return sys.stdout, tqdm.std.tqdm.__dict__["__init__"], [list(h.filters) for h in dspy_handlers]


@pytest.mark.parametrize("num_threads", [None, 2])
def test_a_compile_with_display_progress_false_writes_nothing_and_true_shows_dspys_output(capfd, num_threads):
    data = shout_examples(8), shout_examples(6, offset=8)
    before = _hooks_state()
    quiet_program = compile_toy(toy_engines(), data, display_progress=False, num_threads=num_threads)
    quiet_out, quiet_err = capfd.readouterr()
    assert _hooks_state() == before  # stdout, tqdm and the log handlers are as they were
    loud_program = compile_toy(toy_engines(), data, display_progress=True, num_threads=num_threads)
    loud_out, loud_err = capfd.readouterr()
    assert (quiet_out, quiet_err) == ("", "")  # measured: 0 bytes of 4.5 kB stdout, 0 of ~9 kB stderr
    assert "Average Metric" in loud_out and "Bootstrapped" in loud_out and len(loud_out) > 1000
    assert "MetaTeleprompter" in loud_err  # the meta search's own bar (stderr)
    def outcome(program):  # with threads, only the split of usage between candidates may differ
        return [(c.stage, c.score, c.accepted) for c in program.meta_results_.candidates]
    assert outcome(quiet_program) == outcome(loud_program)  # the same work either way


def test_only_output_in_a_quiet_context_is_dropped(capfd):
    program = dspy.Predict("question -> answer")
    marked, unmarked = {}, {}

    def elsewhere():  # a thread of the user's, not started from the quiet block
        print_full_program(program)
        with tqdm.tqdm(total=1) as bar:
            unmarked["bar_disabled"] = bar.disable
        unmarked["quiet"] = in_quiet_context()
        logging.getLogger("dspy.elsewhere").warning("a warning from DSPy elsewhere")

    with quiet():
        print_full_program(program)  # DSPy's print: dropped
        print("a print in the quiet block")  # dropped too (which code printed is not asked)
        with tqdm.tqdm(total=1) as bar:  # DSPy's Evaluate bars: disabled
            marked["bar_disabled"] = bar.disable
        logging.getLogger("dspy.inside").warning("a warning from DSPy inside")  # below ERROR: dropped
        logging.getLogger("dspy.inside").error("an error from DSPy inside")  # kept
        marked["worker"] = ParallelExecutor(num_threads=2, disable_progress_bar=True).execute(
            lambda _: in_quiet_context(), [0, 1])
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    out, err = capfd.readouterr()
    assert out.count("Predictor 0") == 1 and "a print in the quiet block" not in out  # the one from elsewhere
    assert marked["bar_disabled"] and not unmarked["bar_disabled"] and not unmarked["quiet"]
    assert marked["worker"] == [True, True]  # DSPy's worker threads inherit the quiet context
    assert "a warning from DSPy inside" not in err and "an error from DSPy inside" in err
    assert "a warning from DSPy elsewhere" in err
    print_full_program(program)  # after the block: DSPy prints again
    assert "Predictor 0" in capfd.readouterr().out


@pytest.mark.parametrize("stop", [RuntimeError, KeyboardInterrupt])
def test_everything_is_restored_after_an_exception_or_an_interrupt(stop):
    before = _hooks_state()
    with pytest.raises(stop):
        with quiet():
            with quiet():  # nested blocks share one set of hooks
                assert sys.stdout is not before[0] and in_quiet_context()
                raise stop()
    assert _hooks_state() == before and not in_quiet_context()


def test_quiet_false_changes_nothing():
    before = _hooks_state()
    with quiet(False):
        assert _hooks_state() == before and not in_quiet_context()


def test_reading_the_programs_inputs_does_not_trigger_dspys_forward_warning(capfd):
    assert forward_inputs(Shout()) == {"word"}
    assert "discouraged" not in capfd.readouterr().err
