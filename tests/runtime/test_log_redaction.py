"""Secrets in provider error texts never reach a log record or the console during a compile (issue 30, 7)."""

import logging

import pytest

from dspy_meta.runtime.log_redaction import redacted_logs
from dspy_meta.testing.toy_task import shout_examples, shout_optimizer_responder, shout_program_responder

from ..teleprompters.conftest import compile_toy, toy_engines

SECRETS = ["sk-PLANTEDprogram0a1b2c3d", "PLANTEDuserinfo77", "AIzaPLANTEDgoogle0123456789abcdef", "PLANTEDquery99x",
           "hf_PLANTEDhuggingface0123456789", "PLANTEDbearer4455aa"]
FAILURES = [f"Incorrect API key provided: {SECRETS[0]}", f"cannot reach https://user:{SECRETS[1]}@llm.invalid/v1",
            f"key {SECRETS[2]} is not valid", f"GET https://llm.invalid/v1/chat?api_key={SECRETS[3]} failed",
            f"token {SECRETS[4]} was revoked", f"header Authorization: Bearer {SECRETS[5]} refused"]


KINDS = [RuntimeError, ValueError, KeyError]  # errors DSPy does not classify (no outage: they differ)


def _program(call):
    """Raises a provider-style error quoting a key on some words, else answers."""
    words = [e.word for e in shout_examples(14)]
    position = words.index(call.inputs["word"]) if call.inputs.get("word") in words else 0
    if position % 4 == 1:
        raise KINDS[position % 3](FAILURES[position % len(FAILURES)])
    return shout_program_responder(call, demos_help=False)


def _optimizer(call):
    if len(call.instructions) % 4 == 0:  # some proposals fail too (the inner optimizers log those)
        raise KINDS[len(call.instructions) % 3](FAILURES[len(call.instructions) % len(FAILURES)])
    return shout_optimizer_responder(call)


@pytest.mark.parametrize("display_progress", [False, True])
def test_provider_errors_quoting_keys_reach_no_log_record_and_no_console(capfd, caplog, display_progress):
    data = shout_examples(8), shout_examples(6, offset=8)
    with caplog.at_level(logging.DEBUG):
        compile_toy(toy_engines(_program, _optimizer), data, display_progress=display_progress)
    out, err = capfd.readouterr()
    shown = out + err + caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "Error for Example" in shown  # DSPy's own ERROR records were made (and reached the console)
    leaked = [secret for secret in SECRETS if secret in shown]
    assert leaked == []


def test_records_are_redacted_only_while_a_block_is_open_and_the_factory_is_restored(caplog):
    before = logging.getLogRecordFactory()
    log = logging.getLogger("tests.provider")
    with caplog.at_level(logging.INFO):
        with redacted_logs():
            with redacted_logs():  # blocks nest
                log.error("Error for Example: %s", FAILURES[0])
            try:
                raise ValueError(FAILURES[1])
            except ValueError:
                log.exception("failed")
        log.error("after: %s", SECRETS[0])
    assert logging.getLogRecordFactory() is before
    inside, traced, after = caplog.records
    assert SECRETS[0] not in inside.getMessage() and "***" in inside.getMessage()
    assert SECRETS[1] not in caplog.text.split("after:")[0]  # the traceback's text too
    assert SECRETS[0] in after.getMessage()  # outside a run nothing is changed
