"""Run-scoped answers to identical requests, and the keys that say two requests are identical.

Keys are built for speed, since every LM call of a run computes one: a hashable, type-exact
copy of the request (`freeze`) compared in memory. The SHA-256 form that checkpoints hold
is computed only when answers are saved or a resumed run looks for saved answers.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
import pickle
import threading
import weakref
from typing import Any

from dspy_meta.errors import DspyMetaError
from dspy_meta.runtime.redact import is_secret_setting, redact

__all__ = ["CallMemo", "NotPlain", "copy_answer", "freeze", "is_client_setting", "lm_identity"]

_SCALARS = (int, bool, type(None))


class NotPlain(DspyMetaError, Exception):
    """A value that is not plain data (strings, numbers, lists, dicts with string keys)."""


def freeze(value: Any, lenient: bool = False) -> Any:
    """A hashable, exact copy of plain data: True, 1 and 1.0 stay apart, so do 0.0 and -0.0, and so do
    dicts whose keys come in another order (DSPy renders nested dicts in their order).

    Anything else raises `NotPlain`; with `lenient`, it is represented by its type and `repr`
    instead (a class passed as ``response_format``), as DSPy's own cache does.
    """
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        return ("float", repr(value))
    if kind in _SCALARS:
        return (kind.__name__, value)
    # Strings, by far the most common leaves, are kept inline: freezing runs on every call.
    if kind is list or kind is tuple:
        return (kind.__name__, *[v if type(v) is str else freeze(v, lenient) for v in value])
    if kind is dict:
        items = []
        for k, v in value.items():
            if type(k) is not str:
                break
            items.append((k, v if type(v) is str else freeze(v, lenient)))
        else:
            return ("dict", *items)
    if not lenient:
        raise NotPlain
    return ("repr", kind.__module__, kind.__qualname__, repr(value))


def _settings(mapping: dict) -> dict:
    """The request settings of `mapping` in name order (their order does not change a request)."""
    return {k: mapping[k] for k in sorted(mapping) if not is_client_setting(k)}


@functools.lru_cache(maxsize=1024)  # asked for every setting of every call
def is_client_setting(name: str) -> bool:
    """Connection settings and credentials: not part of what a request asks."""
    from dspy.clients.backend_selection import CLIENT_KEYS

    return name in CLIENT_KEYS or name.lower().startswith("api_") or is_secret_setting(name)


def lm_identity(lm) -> tuple[tuple, tuple]:
    """What an LM's answers depend on, twice: in memory, and stable across processes.

    Model, endpoint and request settings, never credentials or client objects. In memory the
    engine object itself (two engines behind one model name stay apart); the stable form, which
    checkpoints hold, names its class and the endpoint minus credentials.
    """
    kwargs = getattr(lm, "kwargs", None) or {}
    settings = freeze(_settings(kwargs), True)
    model = getattr(lm, "model", None)
    server = kwargs.get("api_base") or kwargs.get("base_url")
    engine = getattr(lm, "engine", None)
    engine_name = engine if isinstance(engine, str) or engine is None else type(engine).__qualname__
    try:
        hash(engine)
    except TypeError:
        engine = type(engine)
    return (model, engine, server, settings), (model, redact(server) if server else "", engine_name, settings)


class _IdentityCache:
    """`lm_identity` per LM object, recomputed when the LM's settings change.

    Only LMs whose settings are all strings and numbers are cached: a list or dict setting can be
    changed in place, unseen, so those LMs get their identity computed on every call.
    """

    def __init__(self):
        self._entries: dict[int, tuple] = {}
        self.stable: dict[tuple, tuple] = {}  # in-memory identity -> its stable form

    def __call__(self, lm) -> tuple:
        """The in-memory identity of `lm`."""
        kwargs = getattr(lm, "kwargs", None) or {}
        model, engine = getattr(lm, "model", None), getattr(lm, "engine", None)
        entry = self._entries.get(id(lm))
        if (entry is not None and entry[0]() is lm and entry[1] == model and entry[2] is engine
                and len(entry[3]) == len(kwargs) and all(entry[3].get(k, entry) is v for k, v in kwargs.items())):
            return entry[4]
        identity, stable = lm_identity(lm)
        self.stable[identity] = stable
        if all(type(v) in _IMMUTABLE for v in kwargs.values()):
            try:  # a weak reference: the LM copies of a run (one per sample) are not kept alive
                ref = weakref.ref(lm)
            except TypeError:
                ref = _StrongRef(lm)
            self._entries[id(lm)] = (ref, model, engine, dict(kwargs), identity)
        return identity


class _StrongRef:
    __slots__ = ("target",)

    def __init__(self, target):
        self.target = target

    def __call__(self):
        return self.target


_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


class _Pending:
    """An answer being obtained; its lock is held until the answer is in the memo or the attempt failed."""

    __slots__ = ("ready",)

    def __init__(self):
        self.ready = threading.Lock()
        self.ready.acquire()


class CallMemo:
    """Run-scoped answers to identical requests: each distinct request is answered once.

    For LM calls the key is the LM's model and settings (temperature, rollout id, ...) plus the
    request itself, so distinct samples (different rollout ids) stay distinct: DSPy's cache rule,
    kept in memory for one run. A request in flight makes identical requests from other threads
    wait for its answer instead of paying for it twice.
    """

    def __init__(self, checkpointed: bool = True):
        self.checkpointed = checkpointed  # False: nothing is kept for `drain`
        self.identity = _IdentityCache()
        # Key -> answer, or `_Pending` while a thread obtains it. Single dict operations are atomic in
        # CPython, so lookups take no lock: every LM call of a run passes here.
        self._answers: dict[Any, Any] = {}
        self._fresh: dict[Any, Any] = {}  # answered since the last `drain`, for checkpoints
        self._saved: dict[str, Any] = {}  # loaded from checkpoints, by stable key, not yet asked for
        self._lock = threading.Lock()
        self.hits = 0

    def view(self) -> CallMemo:
        """The same answers, with its own list of what it added: one per concurrent branch, so each
        branch's checkpoint holds the answers that branch obtained."""
        other = copy.copy(self)
        other._fresh = {}
        return other

    def key(self, lm, args, kwargs) -> tuple | None:
        """The in-memory key of an LM request; None when it cannot be represented (not memoized)."""
        identity = self.identity(lm)
        # Connection settings (keys, endpoints with credentials) are not part of the request.
        try:
            request = (freeze(args, True), freeze(_settings(kwargs), True))
        except Exception:  # an argument whose repr fails: do not memoize
            return None
        return identity, request

    def stable_key(self, key: tuple) -> str | None:
        # A hash: checkpoints must never hold a secret, and prompts can be long.
        identity, request = key
        stable = self.identity.stable.get(identity)
        return None if stable is None else hashlib.sha256(_serialize((stable, request))).hexdigest()

    def drain(self) -> list[list]:
        """Answers added since the last drain, as JSON-safe ``[key, answer]`` pairs (others are skipped)."""
        with self._lock:
            fresh, self._fresh = self._fresh, {}
        pairs = []
        for key, answer in fresh.items():
            try:
                json.dumps(answer)
            except (TypeError, ValueError):
                continue
            pairs.append([self.stable_key(key), answer])
        return pairs

    def load(self, pairs: list[list]) -> None:
        """Answers from a checkpoint, so a resumed run does not pay for them again."""
        with self._lock:
            for key, answer in pairs:
                self._saved.setdefault(key, answer)

    def get_or_call(self, key, call):
        """The answer to `key`: remembered, or from `call()` (once, however many threads ask)."""
        pending = None
        try:
            while True:
                found = self._answers.get(key, _MISSING)
                if found is _MISSING and self._saved:  # only in a resumed run
                    found = self._from_checkpoint(key)
                if type(found) is _Pending:  # another thread is obtaining it: wait, then look again
                    found.ready.acquire()
                    found.ready.release()
                    continue
                if found is not _MISSING:
                    with self._lock:
                        self.hits += 1
                    return copy_answer(found)
                pending = pending or _Pending()
                if self._answers.setdefault(key, pending) is pending:
                    break
            answer = call()
            kept = copy_answer(answer)
        except BaseException:
            if pending is not None:
                if self._answers.get(key) is pending:
                    del self._answers[key]  # a failed attempt: the next asker tries again
                pending.ready.release()
            raise
        self._answers[key] = kept
        if self.checkpointed:
            with self._lock:
                self._fresh[key] = kept
        pending.ready.release()
        return answer

    def _from_checkpoint(self, key):
        """A saved answer to `key` (moved into the memo), what another thread holds for it, or _MISSING."""
        stable_key = self.stable_key(key)
        with self._lock:  # one taker per saved answer; the others find it in the memo
            found = self._answers.get(key, _MISSING)
            if found is _MISSING:
                found = self._saved.pop(stable_key, _MISSING)
                if found is not _MISSING:
                    found = self._answers.setdefault(key, found)
            return found


def _serialize(frozen: tuple) -> bytes:
    """Bytes that depend only on the values in `frozen` (a tree of tuples, strings and numbers).

    Pickle in fast mode (no memo): equal values give equal bytes whether or not they are the same
    objects, and a fixed protocol keeps them equal across processes. Three times quicker than repr.
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=4)
    pickler.fast = True
    pickler.dump(frozen)
    return buffer.getvalue()


def copy_answer(value: Any) -> Any:
    """A copy that callers may change without changing the memo: deep, but quick for plain data."""
    kind = type(value)
    if kind is str or kind is float or kind in _SCALARS:
        return value
    if kind is list:
        return [v if type(v) is str else copy_answer(v) for v in value]
    if kind is dict:
        return {k: v if type(v) is str else copy_answer(v) for k, v in value.items()}
    return copy.deepcopy(value)


_MISSING = object()
