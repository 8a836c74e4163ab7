"""Continuous batching over a fixed set of sequence slots (the scheduling, free of llama.cpp specifics).

One worker thread owns the model context. Each step it decodes one batch holding the next token of every
generating sequence plus as many prompt tokens of newly admitted requests as fit (`n_batch`), then samples
each sequence that produced logits. A request that arrives while others decode joins at the next step; a
finished request frees its slot at once.

KV cache: one sequence id per slot. A finished slot keeps its tokens' cache until the slot is reused, so a
new prompt that starts like an old one (DSPy sends one system message for every example of a program)
trims the slot to the common prefix instead of clearing it; a longer common prefix held by any other slot
is shared by reference (a unified cache makes that copy free). Prompts admitted together that share a
prefix are computed once: a later one waits for the earlier one's prefix, then shares it.

A job whose `given_up` event is set (its caller stopped waiting: the run's ``call_timeout``) ends with
`LMCallTimeout` at the next step: a queued one leaves the queue, a running one frees its slot (its prompt's
cache is kept for reuse), so the requests after it do not wait behind tokens nobody reads.

The `backend` does the model work: decode(entries), new_sampler(job), sample(sampler, index),
free_sampler(sampler), seq_rm(seq, p0, p1), seq_cp(src, dst, p0, p1), piece(token), is_eog(token).
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from dataclasses import dataclass, field

from dspy_meta.errors import LMCallTimeout

__all__ = ["Job", "ContinuousBatcher", "common_prefix"]

logger = logging.getLogger(__name__)

_MIN_SHARED_WAIT = 8  # a shared prefix shorter than this is not worth waiting a step for


@dataclass(eq=False)
class Job:
    """One generation request, and its result once `done` is set."""

    prompt: list[int]
    max_tokens: int
    stops: tuple[bytes, ...] = ()
    temperature: float = 0.0
    top_p: float = 0.95
    seed: int = 0
    grammar: str | None = None
    text: bytes = b""
    n_output: int = 0
    finish_reason: str = "length"
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    given_up: threading.Event | None = None  # set by its caller when it stops waiting: the job is dropped
    _out: bytearray = field(default_factory=bytearray, repr=False)


class _Slot:
    def __init__(self, seq: int):
        self.seq = seq
        self.tokens: list[int] = []  # exactly the tokens in this sequence's KV cache, positions 0..n-1
        self.job: Job | None = None
        self.sampler = None
        self.pending: int | None = None  # last sampled token, decoded at the next step
        self.order = 0  # admission order: earlier prompts are prefilled first
        self.last_used = 0
        self.staged: list[int] = []


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists (binary search over C-speed slice comparisons)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _incomplete_utf8(data: bytearray) -> bool:
    """True when `data` ends inside a multi-byte UTF-8 character (a stop is not searched for then)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): how many bytes does its character need?
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return need > back
    return False


class ContinuousBatcher:
    """Runs `Job`s on `backend` in at most `slots` sequences, `n_batch` tokens per decode, `kv_cells` of cache."""

    def __init__(self, backend, *, slots: int, kv_cells: int, n_batch: int = 512):
        if slots < 1 or n_batch < slots or kv_cells < 1:
            raise ValueError(f"need slots >= 1, n_batch >= slots, kv_cells >= 1; got {slots}, {n_batch}, {kv_cells}")
        self.backend = backend
        self.kv_cells = kv_cells
        self.n_batch = n_batch
        self._slots = [_Slot(i) for i in range(slots)]
        self._queue: collections.deque[Job] = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._ticks = itertools.count(1)
        self.stats = collections.Counter()  # steps, prompt tokens decoded / shared, generated tokens, peak batch

    # -- callers ---------------------------------------------------------------------------------------------
    def run(self, job: Job) -> Job:
        """Queue `job`, wait for it, re-raise its error."""
        if len(job.prompt) + job.max_tokens > self.kv_cells:
            raise ValueError(f"request needs {len(job.prompt) + job.max_tokens} cache cells, the engine has "
                             f"{self.kv_cells}")
        with self._cv:
            if self._closed:
                raise RuntimeError("the batched engine is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="dspy-meta-batcher", daemon=True)
                self._thread.start()
            self._queue.append(job)
            self._cv.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        for slot in self._slots:
            if slot.sampler is not None:
                self.backend.free_sampler(slot.sampler)
                slot.sampler = None

    # -- worker ----------------------------------------------------------------------------------------------
    def _active(self) -> list[_Slot]:
        return [s for s in self._slots if s.job is not None]

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed and not self._queue and not self._active():
                    self._cv.wait()
                if self._closed:
                    self._fail(self._active(), RuntimeError("the batched engine was closed"))
                    for job in self._queue:
                        job.error = RuntimeError("the batched engine was closed")
                        job.done.set()
                    self._queue.clear()
                    return
                self._drop_given_up()
                self._admit()
            try:
                self._step()
            except Exception as exc:  # a failed step fails its requests, never the worker
                logger.exception("batched decoding step failed")
                self._fail(self._active(), exc)

    def _drop_given_up(self) -> None:
        """End the jobs whose callers gave up (see the module doc), queued or running."""
        def given_up(job: Job) -> bool:
            return job.given_up is not None and job.given_up.is_set()

        for job in [job for job in self._queue if given_up(job)]:
            self._queue.remove(job)
            job.error = LMCallTimeout("the request was given up by its caller before it started (call_timeout)")
            job.done.set()
        for slot in self._active():
            if given_up(slot.job):
                job = slot.job
                self.stats["given_up"] += 1
                self._trim_kept(slot)
                self._release(slot)
                job.error = LMCallTimeout(f"the request was given up by its caller after {job.n_output} tokens "
                                          "(call_timeout); its generation was stopped")
                job.done.set()

    def _reserved(self, slot: _Slot) -> int:
        """Cache cells `slot` may hold: the whole request while active, its kept tokens while free."""
        if slot.job is None:
            return len(slot.tokens)
        return len(slot.job.prompt) + slot.job.max_tokens

    def _admit(self) -> None:
        while self._queue:
            free = [s for s in self._slots if s.job is None]
            if not free:
                return
            job = self._queue[0]
            limit = len(job.prompt) - 1  # the last prompt token is always decoded: its logits start the answer
            slot = max(free, key=lambda s: (min(common_prefix(s.tokens, job.prompt), limit), -s.last_used))
            keep = min(common_prefix(slot.tokens, job.prompt), limit)
            # Shared prefixes are counted once per sequence: an overestimate, so the cache never overflows.
            used = sum(self._reserved(s) for s in self._slots if s is not slot)
            need = len(job.prompt) + job.max_tokens
            for other in sorted((s for s in free if s is not slot and s.tokens), key=lambda s: s.last_used):
                if used + need <= self.kv_cells:
                    break
                used -= len(other.tokens)
                self._clear(other)
            if used + need > self.kv_cells:
                return  # wait for a running request to finish
            self._queue.popleft()
            if keep < len(slot.tokens):
                self.backend.seq_rm(slot.seq, keep, -1)
                del slot.tokens[keep:]
            self.stats["prompt_tokens_kept"] += keep
            slot.job, slot.pending, slot.order = job, None, next(self._ticks)
            slot.sampler = self.backend.new_sampler(job)

    def _clear(self, slot: _Slot) -> None:
        self.backend.seq_rm(slot.seq, -1, -1)
        slot.tokens = []

    def _share_prefix(self, slot: _Slot) -> None:
        """Reference the longest prefix of `slot`'s prompt that another slot already holds."""
        prompt, have = slot.job.prompt, len(slot.tokens)
        limit = len(prompt) - 1
        best, best_len = None, have
        for other in self._slots:
            if other is not slot and len(other.tokens) > best_len:
                shared = min(common_prefix(other.tokens, prompt), limit)
                if shared > best_len:
                    best, best_len = other, shared
        if best is not None:
            self.backend.seq_cp(best.seq, slot.seq, have, best_len)
            slot.tokens = prompt[:best_len]
            self.stats["prompt_tokens_shared"] += best_len - have

    def _waits_for_earlier(self, slot: _Slot, prefilling: list[_Slot]) -> bool:
        """An earlier prompt still computing a prefix this one shares: share it next step rather than redo it."""
        prompt, have = slot.job.prompt, len(slot.tokens)
        for other in prefilling:
            if other.order >= slot.order:
                break
            shared = min(common_prefix(other.job.prompt, prompt), len(prompt) - 1)
            if shared - have >= _MIN_SHARED_WAIT and len(other.tokens) < shared:
                return True
        return False

    def _step(self) -> None:
        entries: list[tuple[int, int, int, bool]] = []  # (token, position, sequence, wants logits)
        samples: list[tuple[_Slot, int]] = []
        active = self._active()
        generating = [s for s in active if s.pending is not None]
        for slot in generating:
            samples.append((slot, len(entries)))
            entries.append((slot.pending, len(slot.tokens), slot.seq, True))
        prefilling = sorted((s for s in active if s.pending is None), key=lambda s: s.order)
        budget = self.n_batch - len(entries)
        for slot in prefilling:
            slot.staged = []
            if budget <= 0:
                continue
            self._share_prefix(slot)
            if self._waits_for_earlier(slot, prefilling):
                continue
            prompt, start = slot.job.prompt, len(slot.tokens)
            slot.staged = prompt[start:start + budget]
            last = len(prompt) - 1
            for pos, token in enumerate(slot.staged, start):
                entries.append((token, pos, slot.seq, pos == last))
            if start + len(slot.staged) == len(prompt):
                samples.append((slot, len(entries) - 1))
            budget -= len(slot.staged)
        if not entries:
            return
        rc = self.backend.decode(entries)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} for a batch of {len(entries)} tokens")
        self.stats["steps"] += 1
        self.stats["peak_batch"] = max(self.stats["peak_batch"], len(entries))
        for slot in generating:
            slot.tokens.append(slot.pending)
            slot.pending = None
        for slot in prefilling:
            slot.tokens.extend(slot.staged)
            self.stats["prompt_tokens_decoded"] += len(slot.staged)
        for slot, index in samples:
            self._accept(slot, self.backend.sample(slot.sampler, index))

    def _accept(self, slot: _Slot, token: int) -> None:
        """Same order of checks as llama-cpp-python's completion loop: end of generation, stop, length."""
        job = slot.job
        if self.backend.is_eog(token):
            return self._finish(slot, "stop")
        job.n_output += 1
        self.stats["generated_tokens"] += 1
        job._out += self.backend.piece(token)
        if job.stops and not _incomplete_utf8(job._out):
            hits = [stop for stop in job.stops if stop in job._out]
            if hits:  # the first listed stop that occurs, as llama-cpp-python does
                del job._out[job._out.index(hits[0]):]
                return self._finish(slot, "stop")
        if job.n_output >= job.max_tokens:
            return self._finish(slot, "length")
        slot.pending = token

    def _finish(self, slot: _Slot, reason: str) -> None:
        job = slot.job
        job.text, job.finish_reason = bytes(job._out), reason
        self._trim_kept(slot)
        self._release(slot)
        job.done.set()

    def _trim_kept(self, slot: _Slot) -> None:
        """Keep what a later prompt may reuse: the prefix shared with the other slots' prompts when there is
        one (those cells are shared, so they cost nothing), else the whole prompt. llama.cpp attends over
        every cell up to the highest one in use, so cells kept idle slow every later step down."""
        shared = max((common_prefix(slot.tokens, o.job.prompt if o.job else o.tokens)
                      for o in self._slots if o is not slot), default=0)
        keep = shared if shared >= _MIN_SHARED_WAIT else min(len(slot.tokens), len(slot.job.prompt))
        if keep < len(slot.tokens):
            self.backend.seq_rm(slot.seq, keep, -1)
            del slot.tokens[keep:]

    def _release(self, slot: _Slot) -> None:
        if slot.sampler is not None:
            self.backend.free_sampler(slot.sampler)
        slot.job, slot.sampler, slot.pending, slot.staged = None, None, None, []
        slot.last_used = next(self._ticks)

    def _fail(self, slots: list[_Slot], exc: BaseException) -> None:
        for slot in slots:
            job = slot.job
            self._release(slot)
            try:
                self._clear(slot)  # its cache may be half written
            except Exception:  # pragma: no cover - the backend is already failing
                logger.exception("could not clear sequence %d", slot.seq)
            job.error = exc
            job.done.set()
