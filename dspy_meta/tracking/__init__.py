"""Tracking a meta compile's run tree (MLflow, when installed and turned on); see `Tracker`.

`open_tracker(use_mlflow)` picks the tracker: ``True`` logs to MLflow (which must be installed),
``False`` never does, ``None`` follows ``mlflow.dspy.autolog(log_compiles=True)``. `quiet_autolog`
keeps autolog's own per-call runs out of the compile whatever the choice.
"""

from __future__ import annotations

from dspy_meta.tracking.autolog import dspy_autolog_active, dspy_autolog_setting, quiet_autolog
from dspy_meta.tracking.base import NullTracker, Tracker

__all__ = ["Tracker", "NullTracker", "open_tracker", "quiet_autolog", "dspy_autolog_active", "dspy_autolog_setting"]


def open_tracker(use_mlflow: bool | None) -> Tracker:
    """The tracker for one compile (mlflow is imported only when it will be used)."""
    if use_mlflow is not None and not isinstance(use_mlflow, bool):
        raise TypeError(f"use_mlflow must be True, False or None, got {use_mlflow!r}")
    if use_mlflow is False or (use_mlflow is None and not dspy_autolog_setting("log_compiles")):
        return NullTracker()
    from dspy_meta.tracking.mlflow_tracker import MlflowTracker, import_mlflow

    import_mlflow()  # use_mlflow=True without mlflow installed: ConfigError now, before any LM call
    return MlflowTracker()
