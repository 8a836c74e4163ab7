"""What `mlflow.dspy.autolog()` is set to, and keeping its per-call logging out of a meta compile.

mlflow is never imported here: autologging can only be on when the user's code has imported it, so
these functions read the modules already loaded (`sys.modules`) and do nothing otherwise.

Why the quieting: autolog's compile and evaluation logging opens runs through mlflow's fluent API,
whose active run is per thread. Inside a meta compile the inner optimizers (MIPROv2, COPRO, ...)
compile and evaluate hundreds of times, in several threads: each became a root run of its own, or
wrote its parameters and datasets into whatever run was active. While a meta compile runs, those
inner runs are suppressed (the compile's own tracker logs every candidate instead): mlflow's
autologging is paused process-wide (its public `disable_autologging`, counted so that overlapping
compiles resume it only when the last ends), and DSPy's `MlflowCallback` is taken out of the
compile's callbacks (no evaluation runs; traces are kept only when the user asked for traces from
compiles, `log_traces_from_compile=True`).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback

__all__ = ["dspy_autolog_active", "dspy_autolog_setting", "quiet_autolog"]

_FLAVOR = "dspy"
_pause_lock = threading.Lock()
_pauses = 0
_pause_stack: contextlib.ExitStack | None = None


def dspy_autolog_active() -> bool:
    """Whether `mlflow.dspy.autolog()` is on: called (without ``disable=True``) and not paused by the user's
    ``disable_autologging()`` (a pause of another meta compile's own does not count)."""
    utils = sys.modules.get("mlflow.utils.autologging_utils")
    if utils is None or utils.autologging_is_disabled(_FLAVOR):
        return False
    return _pauses > 0 or not getattr(utils, "_AUTOLOGGING_GLOBALLY_DISABLED", False)


def dspy_autolog_setting(key: str) -> Any:
    """The value of a `mlflow.dspy.autolog` option (``log_compiles``, ...) while it is on, else None."""
    if not dspy_autolog_active():
        return None
    return sys.modules["mlflow.utils.autologging_utils"].get_autologging_config(_FLAVOR, key, None)


class _TracesOnly(BaseCallback):
    """Forwards an `MlflowCallback`'s tracing hooks and drops its evaluation hooks (which open runs)."""

    def __init__(self, callback: BaseCallback):
        self._callback = callback

    def __getattribute__(self, name: str):  # every hook but the evaluation ones goes to the wrapped callback
        if name.startswith("on_") and not name.startswith("on_evaluate"):
            return getattr(object.__getattribute__(self, "_callback"), name)
        return object.__getattribute__(self, name)


@contextlib.contextmanager
def _autologging_paused() -> Iterator[None]:
    global _pauses, _pause_stack
    from mlflow.utils.autologging_utils import disable_autologging

    with _pause_lock:
        _pauses += 1
        if _pauses == 1:
            _pause_stack = contextlib.ExitStack()
            _pause_stack.enter_context(disable_autologging())
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _pause_stack is not None:
                _pause_stack.close()
                _pause_stack = None


@contextlib.contextmanager
def quiet_autolog() -> Iterator[None]:
    """The block runs without autolog's inner compile and evaluation runs (see the module doc); a no-op
    when DSPy autologging is off."""
    if not dspy_autolog_active():
        yield
        return
    callback_module = sys.modules.get("mlflow.dspy.callback")
    callback_class = getattr(callback_module, "MlflowCallback", None)
    callbacks = list(dspy.settings.get("callbacks") or [])
    if callback_class is not None:
        keep_traces = bool(dspy_autolog_setting("log_traces_from_compile"))
        callbacks = [(_TracesOnly(c) if keep_traces else None) if isinstance(c, callback_class) else c
                     for c in callbacks]
        callbacks = [c for c in callbacks if c is not None]
    pause = _autologging_paused() if dspy_autolog_setting("log_compiles") else contextlib.nullcontext()
    with pause, dspy.context(callbacks=callbacks):
        yield
