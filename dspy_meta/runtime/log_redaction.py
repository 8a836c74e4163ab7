"""Credentials removed from every log record made while a run works (`redacted_logs`).

An LM client's error text can quote a key or a credentialed URL, and DSPy logs it verbatim at ERROR
("Error for Example(...): <provider message>" from its parallel executor, the bootstrap's "Failed to
run or to evaluate example ..."). `quiet()` drops only records below ERROR, and with
``display_progress=True`` nothing at all, so these reached the console. While at least one block is
open, every record the process creates passes through `redact` (message, arguments merged in first,
and the formatted exception and stack), whichever logger made it and whichever handler (a console,
pytest's capture, a file added mid-run) shows it: records are cleaned where they are made, by a
record factory wrapping the one in place. When the last block closes the factory is put back (one
someone else installed meanwhile is left as they set it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dspy_meta.runtime.redact import redact

__all__ = ["redacted_logs", "redact_record"]

_formatter = logging.Formatter()


def redact_record(record: logging.LogRecord) -> None:
    """Replace credentials in `record`'s message, exception text and stack text (in place)."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 -- a bad format string: logging reports it when the record is shown
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = _formatter.formatException(record.exc_info)
        clean = redact(text)
        if clean != text:
            record.exc_text = clean  # what every formatter shows instead of formatting the exception again
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _redacting(previous):
    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        redact_record(record)
        return record
    factory.dspy_meta_previous = previous
    return factory


_lock = threading.Lock()
_users = 0
_installed = None


@contextmanager
def redacted_logs() -> Iterator[None]:
    """Redact every log record made while the block runs (see the module doc); blocks nest."""
    global _users, _installed
    with _lock:
        if _users == 0:
            _installed = _redacting(logging.getLogRecordFactory())
            logging.setLogRecordFactory(_installed)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                if logging.getLogRecordFactory() is _installed:
                    logging.setLogRecordFactory(_installed.dspy_meta_previous)
                _installed = None
