"""MIPROv2's dataset summary, asked with replaceable prompts, and computed once per search.

The summary is what MIPROv2's proposer knows of the data: observations gathered over batches
of training examples, then summarised. It needs only the trainset, so a search with threads to
spare computes it ahead (`DatasetSummary.start`) while MIPROv2 bootstraps demos.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable

from dspy.propose import dataset_summary_generator as _summary
from dspy.propose.utils import strip_prefix

from dspy_meta.errors import DspyMetaError
from dspy_meta.optimizers.base import lm_scope
from dspy_meta.optimizers.capped import DESCRIPTION_TOKENS, CappedPredict
from dspy_meta.optimizers.prompts import PromptSet
from dspy_meta.runtime.redact import redact

logger = logging.getLogger(__name__)

__all__ = ["DatasetSummary", "summarize_dataset", "DESCRIBE_DATASET", "DESCRIBE_DATASET_MORE",
           "SUMMARIZE_OBSERVATIONS"]

DESCRIBE_DATASET = "dataset_descriptor"
DESCRIBE_DATASET_MORE = "dataset_descriptor_with_prior_observations"
SUMMARIZE_OBSERVATIONS = "observation_summarizer"

_MAX_SUMMARY_BATCHES = 10
_MAX_COMPLETE_ANSWERS = 5


class _SummaryCancelled(DspyMetaError, Exception):
    """The search ended before the summary was needed: its background calls stop."""


def summarize_dataset(trainset, batch_size: int, prompt_model, prompts: PromptSet,
                      stop: Callable[[], bool] = lambda: False) -> str:
    """MIPROv2's dataset summary, asked with the given prompts.

    Observations are gathered over batches of `batch_size` examples (at most ten
    batches; stop after five "COMPLETE" answers) and summarised in one last call.
    `stop()` is asked before each call; when it says so, the summary is abandoned.
    """
    describe = CappedPredict(prompts[DESCRIBE_DATASET].apply(_summary.DatasetDescriptor), DESCRIPTION_TOKENS,
                             temperature=1.0)
    describe_more = CappedPredict(prompts[DESCRIBE_DATASET_MORE].apply(
        _summary.DatasetDescriptorWithPriorObservations), DESCRIPTION_TOKENS, temperature=1.0)
    summarize = CappedPredict(prompts[SUMMARIZE_OBSERVATIONS].apply(_summary.ObservationSummarizer),
                              DESCRIPTION_TOKENS, temperature=1.0)

    def render(batch) -> str:
        return _summary.order_input_keys_in_string(repr(batch))

    def ask(predict, **inputs):
        if stop():
            raise _SummaryCancelled
        return predict(**inputs)

    with lm_scope(prompt_model):
        observations = ask(describe, examples=render(trainset[:batch_size])).observations
        complete_answers = 0
        starts = range(batch_size, len(trainset), batch_size)
        for start in list(starts)[: _MAX_SUMMARY_BATCHES - 1]:
            more = ask(describe_more, prior_observations=observations,
                       examples=render(trainset[start:start + batch_size])).observations
            if more.strip()[:8].upper() == "COMPLETE":
                complete_answers += 1
                if complete_answers >= _MAX_COMPLETE_ANSWERS:
                    break
                continue
            observations += more
        return strip_prefix(ask(summarize, observations=observations).summary)


class DatasetSummary:
    """The dataset summary, computed once on first use (or `start`ed ahead); a failure means
    "propose without it"."""

    def __init__(self, trainset, batch_size: int, prompt_model, prompts: PromptSet):
        self._args = (trainset, batch_size, prompt_model, prompts)
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._done = False
        self._text: str | None = None

    def start(self) -> None:
        """Compute it now, in a background thread, while the caller goes on.

        Not DSPy's executor, which returns only when all its jobs are done: the caller's work (the
        MIPROv2 search) stays in the caller's thread, so it fails and stops (Ctrl-C) as it would
        alone. The thread runs in a copy of the caller's context, so dspy.context and usage tracking
        carry over; it is a daemon, and `cancel` stops it before its next LM call.
        """
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._prefetch,), name="dspy-meta-dataset-summary",
                         daemon=True).start()

    def cancel(self) -> None:
        self._cancelled.set()

    def _prefetch(self) -> None:
        try:
            self.get()
        except BaseException:  # noqa: BLE001 -- a stopped run: the proposer's own `get` meets the same stop
            logger.debug("dataset summary stopped ahead of the proposer", exc_info=True)

    def get(self) -> str | None:
        with self._lock:  # a second caller waits for the first one's answer
            if not self._done:
                try:
                    self._text = summarize_dataset(*self._args, stop=self._cancelled.is_set)
                except _SummaryCancelled:
                    pass
                except Exception as exc:  # DSPy's proposer also degrades to no summary here
                    logger.warning("dataset summary failed (%s); proposing without it", redact(exc))
                self._done = True
            return self._text
