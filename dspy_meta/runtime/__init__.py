"""The runtime every meta search runs on: metered LMs, memos, thread budget, checkpoints, guarded metric."""

from dspy_meta.runtime.checks import GuardedMetric, data_hash, forward_inputs
from dspy_meta.runtime.factory import SLOT_PRIORITY, Runtime, build_runtime
from dspy_meta.runtime.memo import CallMemo
from dspy_meta.runtime.redact import is_secret_setting, redact
from dspy_meta.runtime.scoring import score_program
from dspy_meta.runtime.storage import RunStore
from dspy_meta.runtime.usage import LEVELS, LevelUsage, UsageLimits, UsageMeter

__all__ = ["GuardedMetric", "data_hash", "forward_inputs", "SLOT_PRIORITY", "Runtime", "build_runtime", "CallMemo",
           "is_secret_setting", "redact", "score_program", "RunStore", "LEVELS", "LevelUsage", "UsageLimits",
           "UsageMeter"]
