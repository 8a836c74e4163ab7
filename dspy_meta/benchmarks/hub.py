"""Hugging Face Hub loaders (BBH from ``lukaemon/bbh``, GPQA Diamond's constants) with an offline check first.

These are the loaders a user with internet would reach for: `load_bbh_hub` reads BBH through
``datasets.load_dataset`` at a pinned revision. Before any hub call, `require_hub` checks that the
Hub can be reached (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` mean offline at once; otherwise a
TCP connect of under a second to the Hub's host), so that offline a loader fails within a second
with one sentence naming what is missing and the tasks that do load here, instead of `datasets`
retrying for half a minute.

Every loader also reads the same schema from a local copy (a file or a folder; see `local_rows`):
what the tests use, and what a user without network can point ``DSPY_META_BBH_DIR`` at. Offline,
a snapshot of the pinned revision in the Hugging Face cache (``hf download``) is used if present.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import dspy

from dspy_meta.benchmarks.sources import BenchmarkDataError
from dspy_meta.benchmarks.tasks import (
    BBH_SIZE, BBH_SPLIT_NOTE, DYCK_PREFIX, WORD_SORTING_PREFIX, Task, exact_match_metric, normalize_whitespace,
)

__all__ = ["BBH_DIR_ENV", "BBH_HUB_REPO", "BBH_HUB_REVISION", "BBH_HUB_TASKS", "GPQA_CONFIG", "GPQA_PATH_ENV",
           "GPQA_REPO", "GPQA_REVISION", "OFFLINE_TASKS_FALLBACK", "PROBE_TIMEOUT_S", "cached_rows", "hub_address",
           "hub_reachable", "hub_snapshot", "load_bbh_hub", "local_rows", "offline_reason", "read_rows",
           "require_hub", "tasks_that_load"]

logger = logging.getLogger(__name__)

OFFLINE_ENVS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
DEFAULT_ENDPOINT = "https://huggingface.co"  # HF_ENDPOINT (a mirror) overrides it, as in huggingface_hub
PROBE_TIMEOUT_S = 0.75  # DNS + TCP connect, bounded as a whole, so an offline failure stays under a second

# BBH on the Hub: 27 task configs of `input`/`target` rows, split "test" (250 rows for word_sorting and
# dyck_languages), in BBH's own order. The revision must be a commit of huggingface.co/datasets/lukaemon/bbh;
# 982bb89f... is the commit that public evaluation harnesses pin for it (e.g. NVIDIA aiperf's accuracy
# benchmarks), recorded there as 27 tasks and 6,511 rows. It was taken from those pins, not checked against
# the Hub from here (no network): pass `revision=` to load another commit.
BBH_HUB_REPO = "lukaemon/bbh"
BBH_HUB_REVISION = "982bb89fd79532a8ac676a61fc42eb1aeec63f99"
BBH_HUB_TASKS = ("word_sorting", "dyck_languages")
BBH_DIR_ENV = "DSPY_META_BBH_DIR"  # a local copy: a folder (hub snapshot, BIG-Bench-Hard's bbh/) or a file

# GPQA Diamond on the Hub (gated): config gpqa_diamond, split train, 198 rows (gpqa_diamond.csv). The
# revision must be a commit of huggingface.co/datasets/Idavidrein/gpqa: the one public evaluation harnesses pin
# (taken from those pins, not checked against the Hub from here; `revision=` overrides it).
GPQA_REPO = "Idavidrein/gpqa"
GPQA_CONFIG = "gpqa_diamond"
GPQA_REVISION = "633f5ee89ab8ad4522a9f850766b73f62147ffdd"
GPQA_PATH_ENV = "DSPY_META_GPQA_PATH"  # a local gpqa_diamond.csv (or .jsonl/.json/.parquet), or its folder

OFFLINE_TASKS_FALLBACK = "word_sorting_generated, dyck_languages_generated, the mmlu_* tasks and the gym_* tasks"

_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


# ---------------------------------------------------------------- is the Hub reachable?

def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _offline_env() -> str | None:
    """The first of ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` that is set to a true value, or None."""
    return next((name for name in OFFLINE_ENVS if _truthy(os.environ.get(name))), None)


def hub_address() -> tuple[str, int]:
    """Host and port of the Hub endpoint (``HF_ENDPOINT``, default huggingface.co:443)."""
    parts = urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    host = parts.hostname or "huggingface.co"
    return host, parts.port or (80 if parts.scheme == "http" else 443)


def _probe_target(host: str, port: int) -> tuple[str, int]:
    """Where a connection to `host` really goes: the HTTPS proxy, if one is set and `host` is not bypassed."""
    proxy = getproxies().get("https") or getproxies().get("all")
    if proxy and not proxy_bypass(host):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parts.hostname:
            return parts.hostname, parts.port or 8080
    return host, port


def _tcp_probe(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` seconds, name lookup included.

    The connect runs in a daemon thread joined for `timeout`, so a resolver that hangs cannot
    hold the caller longer than that.
    """
    opened: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                opened.append(True)
        except OSError:
            opened.append(False)

    thread = threading.Thread(target=connect, name="dspy-meta-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(opened and opened[0])


def offline_reason(timeout: float = PROBE_TIMEOUT_S, *, host: str | None = None, port: int | None = None,
                   probe: Callable[[str, int, float], bool] | None = None) -> str | None:
    """Why the Hub is out of reach (a clause for an error message), or None when it answers.

    An ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` set to 1 means offline without a probe;
    otherwise `probe` (default: a TCP connect bounded by `timeout`) is tried on `host`:`port`
    (default `hub_address`, through the HTTPS proxy when one is set).
    """
    name = _offline_env()
    if name is not None:
        return f"{name}={os.environ[name]} is set"
    default_host, default_port = hub_address()
    host, port = host or default_host, port or default_port
    target = _probe_target(host, port)
    start = time.monotonic()
    try:
        answered = (probe or _tcp_probe)(*target, timeout)
    except OSError:
        answered = False
    if answered:
        return None
    logger.debug("Hub probe of %s:%d failed after %.2f s", *target, time.monotonic() - start)
    via = f" (through the proxy {target[0]}:{target[1]})" if target != (host, port) else ""
    return f"no connection to {host}:{port}{via} within {timeout:g} s"


def hub_reachable(timeout: float = PROBE_TIMEOUT_S, *, host: str | None = None, port: int | None = None,
                  probe: Callable[[str, int, float], bool] | None = None) -> bool:
    """True when the Hub looks reachable (see `offline_reason`); takes at most about `timeout` seconds."""
    return offline_reason(timeout, host=host, port=port, probe=probe) is None


# ---------------------------------------------------------------- what loads without it

def tasks_that_load(offline_tasks: Callable[[], Iterable[str]] | None = None) -> str:
    """The tasks that load here without network or sdist, as text for an error message.

    From `offline_tasks` if given, else ``dspy_meta.benchmarks.registry.offline_tasks`` when that
    exists and works; else `OFFLINE_TASKS_FALLBACK`.
    """
    if offline_tasks is None:
        try:
            from dspy_meta.benchmarks.registry import offline_tasks as registered
        except Exception as exc:  # an older registry, or one that fails to import: say the fallback
            logger.debug("no registry.offline_tasks (%s: %s)", type(exc).__name__, exc)
            return OFFLINE_TASKS_FALLBACK
        offline_tasks = registered
    try:
        names = [str(name) for name in offline_tasks()]
    except Exception as exc:
        logger.debug("offline_tasks() failed (%s: %s)", type(exc).__name__, exc)
        return OFFLINE_TASKS_FALLBACK
    return ", ".join(names) if names else OFFLINE_TASKS_FALLBACK


def require_hub(missing: str, fix: str, *, online: str = "connect to the internet",
                reachable: Callable[[], bool] | None = None,
                offline_tasks: Callable[[], Iterable[str]] | None = None) -> None:
    """Raise `BenchmarkDataError` at once, in one sentence, unless the Hub is reachable.

    The sentence names what is missing (`missing`: "BBH word_sorting (the Hugging Face Hub dataset
    lukaemon/bbh, ...)"), why the Hub is out of reach, the fix (`online`, what the Hub route needs,
    then `fix`, the local alternative) and the tasks that load here (see `tasks_that_load`).
    `reachable` (tests) replaces the probe: a callable returning whether the Hub is reachable.
    """
    if reachable is None:
        reason = offline_reason()
    else:
        reason = None if reachable() else "the reachability check said no"
    if reason is None:
        return
    env = _offline_env()
    if env is not None:
        online = f"unset {env} and {online}"
    raise BenchmarkDataError(f"{missing} cannot be loaded: the Hub is not reachable ({reason}); fix: {online}, "
                             f"or {fix}; tasks that load here without network: {tasks_that_load(offline_tasks)}.")


def _hub_cache() -> Path:
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def hub_snapshot(repo: str, revision: str) -> Path | None:
    """The folder of `repo` at commit `revision` in the Hugging Face cache (``hf download``), if there is one."""
    folder = _hub_cache() / f"datasets--{repo.replace('/', '--')}" / "snapshots" / revision
    return folder if folder.is_dir() else None


def cached_rows(repo: str, revision: str, config: str, split: str) -> list[dict] | None:
    """`config`'s rows from the cached snapshot of `repo` at `revision` (see `local_rows`), or None if it has none."""
    snapshot = hub_snapshot(repo, revision)
    if snapshot is None:
        return None
    try:
        rows = local_rows(snapshot, config, split)
    except BenchmarkDataError as exc:  # a partial snapshot without this config
        logger.debug("cached snapshot %s has no usable %s: %s", snapshot, config, exc)
        return None
    logger.info("Hub unreachable: read %s %s from the cached snapshot %s", repo, config, snapshot)
    return rows


# ---------------------------------------------------------------- reading rows

def _datasets():
    from dspy_meta.benchmarks.tasks import _datasets

    return _datasets()


def read_rows(load: Callable[[Any], Any]) -> list[dict]:
    """``load(datasets).to_list()`` with `datasets`' progress bars off (and restored)."""
    datasets = _datasets()
    quiet = not datasets.are_progress_bars_disabled()
    if quiet:
        datasets.disable_progress_bars()
    try:
        return load(datasets).to_list()
    finally:
        if quiet:
            datasets.enable_progress_bars()


def _json_field(path: Path) -> str | None:
    """``"examples"`` for a JSON file that is one object holding its rows there (BIG-Bench-Hard's layout)."""
    if path.suffix != ".json":
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # JSON lines, or unreadable: let `datasets` read (or report) it
        return None
    return "examples" if isinstance(data, dict) and isinstance(data.get("examples"), list) else None


def _file_rows(files: Sequence[Path]) -> list[dict]:
    builders = {_BUILDERS.get(f.suffix.lower()) for f in files}
    if None in builders or len(builders) != 1:
        raise BenchmarkDataError(f"cannot read {', '.join(map(str, files))}: give .jsonl, .json, .parquet or .csv "
                                 f"files of one kind")
    builder = builders.pop()
    field = _json_field(files[0]) if builder == "json" else None
    options = {"field": field} if field else {}
    return read_rows(lambda ds: ds.load_dataset(builder, data_files=[str(f) for f in files], split="train",
                                                **options))


def local_rows(path: str | os.PathLike, config: str, split: str) -> list[dict]:
    """The rows of `config`'s `split` in a local copy of a Hub dataset, read with `datasets`, in file order.

    `path` is a data file (.jsonl, .json, .parquet, .csv; a .json object's ``examples`` list counts
    as its rows), or a folder holding ``<config>.<ext>``, or ``<config>/`` with data files (the Hub's
    parquet layout, also a partial ``hf download`` snapshot), or any layout ``datasets.load_dataset(folder,
    config, split=split)`` reads (a README with ``configs``).
    """
    path = Path(path).expanduser()
    if path.is_file():
        return _file_rows([path])
    if not path.is_dir():
        raise BenchmarkDataError(f"{path} is neither a file nor a folder, so no local copy of {config} is there")
    for suffix in _BUILDERS:
        if (path / f"{config}{suffix}").is_file():
            return _file_rows([path / f"{config}{suffix}"])
    shards = sorted(f for f in (path / config).glob("*") if f.is_file() and f.suffix.lower() in _BUILDERS) \
        if (path / config).is_dir() else []
    if shards:
        return _file_rows(shards)
    try:
        return read_rows(lambda ds: ds.load_dataset(str(path), config, split=split))
    except Exception as exc:  # datasets raises many types for a folder it cannot read
        raise BenchmarkDataError(f"{path} holds no {config}.jsonl/.json/.parquet/.csv, no {config}/ folder of "
                                 f"data files and no dataset `datasets` can read ({type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())})") from exc


def _require_columns(rows: list[dict], columns: Sequence[str], origin: str) -> None:
    missing = [column for column in columns if rows and column not in rows[0]]
    if missing or not rows:
        found = sorted(rows[0]) if rows else "no rows"
        raise BenchmarkDataError(f"{origin} is not in the expected schema: it lacks the column(s) "
                                 f"{', '.join(missing) or ', '.join(columns)} (found: {found})")


# ---------------------------------------------------------------- BBH through the Hub

def _with_prefix(prefix: str, text: str) -> tuple[str, str]:
    """(question, bare input): BBH's own inputs already start with the task prefix; other copies may not."""
    text = str(text)
    bare = text[len(prefix):] if text.startswith(prefix) else text
    return prefix + bare, bare


def _word_sorting_row(row: dict, position: int) -> dspy.Example:
    question, words = _with_prefix(WORD_SORTING_PREFIX, row["input"])
    answer = normalize_whitespace(row["target"])
    if " ".join(sorted(words.split())) != answer:
        raise BenchmarkDataError(f"BBH word_sorting row {position}: target {row['target']!r} is not the input's "
                                 f"words sorted")
    return dspy.Example(question=question, answer=answer).with_inputs("question")


def _dyck_row(row: dict, position: int) -> dspy.Example:
    question, _ = _with_prefix(DYCK_PREFIX, row["input"])
    answer = normalize_whitespace(row["target"])
    if not answer:
        raise BenchmarkDataError(f"BBH dyck_languages row {position} has an empty target")
    return dspy.Example(question=question, answer=answer).with_inputs("question")


_BBH_CONVERT = {"word_sorting": _word_sorting_row, "dyck_languages": _dyck_row}
_BBH_DESCRIPTION = {
    "word_sorting": "Sort a list of words alphabetically; answer the sorted words separated by spaces.",
    "dyck_languages": "Complete a bracket sequence; answer the closing brackets separated by spaces.",
}


def _bbh_fix(task: str) -> str:
    return (f"set {BBH_DIR_ENV} (or pass path=) to a local copy of BBH {task} "
            f"(a {task}.json/.jsonl of input/target rows, or a snapshot folder of the dataset)")


def load_bbh_hub(task: str, *, repo: str = BBH_HUB_REPO, revision: str = BBH_HUB_REVISION,
                 path: str | os.PathLike | None = None, token: str | bool | None = None,
                 reachable: Callable[[], bool] | None = None,
                 offline_tasks: Callable[[], Iterable[str]] | None = None) -> Task:
    """BBH `task` (word_sorting or dyck_languages) from the Hugging Face Hub, split 50/100/100 in file order.

    Reads ``datasets.load_dataset(repo, task, revision=revision, split="test")``: 250 rows of
    ``input`` (BBH's prompt, which starts with the task's question prefix) and ``target``. The
    question is the prefixed input, the answer the target (for word_sorting checked to be the sorted
    words). With `path` (or ``$DSPY_META_BBH_DIR``), the same schema is read from a local copy (see
    `local_rows`) and the Hub is not used. Offline, a cached snapshot of `revision` is used if there
    is one; otherwise `BenchmarkDataError` is raised at once (`reachable` and `offline_tasks`: see
    `require_hub`).
    """
    if task not in _BBH_CONVERT:
        raise ValueError(f"unknown BBH hub task {task!r}; known: {', '.join(BBH_HUB_TASKS)}")
    local = path if path is not None else os.environ.get(BBH_DIR_ENV) or None
    if local is not None:
        rows, source = local_rows(local, task, "test"), f"BBH {task}: local copy {Path(local).expanduser()}"
    else:
        rows, source = _bbh_hub_rows(task, repo, revision, token, reachable, offline_tasks)
    _require_columns(rows, ("input", "target"), source)
    if len(rows) != BBH_SIZE:
        raise BenchmarkDataError(f"{source} has {len(rows)} rows, expected BBH's {BBH_SIZE}")
    examples = [_BBH_CONVERT[task](row, i) for i, row in enumerate(rows)]
    positions = list(range(BBH_SIZE))
    return Task(name=f"bbh_hub_{task}", train=examples[:50], val=examples[50:150], test=examples[150:],
                metric=exact_match_metric, description=_BBH_DESCRIPTION[task], source=source,
                split_note=BBH_SPLIT_NOTE.replace("BBH order", "file order (BBH's order)"),
                split_indices={"train": positions[:50], "val": positions[50:150], "test": positions[150:]})


def _bbh_hub_rows(task: str, repo: str, revision: str, token, reachable, offline_tasks) -> tuple[list[dict], str]:
    source = f"BBH {task}: Hugging Face Hub {repo}@{revision}, config {task}, split test"
    missing = f"BBH {task} (the Hugging Face Hub dataset {repo}, config {task}, revision {revision})"
    try:
        require_hub(missing, _bbh_fix(task), reachable=reachable, offline_tasks=offline_tasks)
    except BenchmarkDataError:
        rows = cached_rows(repo, revision, task, "test")
        if rows is None:
            raise
        return rows, f"{source} (cached snapshot)"
    try:
        rows = read_rows(lambda ds: ds.load_dataset(repo, task, revision=revision, split="test", token=token))
    except Exception as exc:  # datasets/huggingface_hub raise many types (HTTP, auth, missing revision)
        raise BenchmarkDataError(f"{missing} could not be loaded: {type(exc).__name__}: {' '.join(str(exc).split())}"
                                 f"; fix: {_bbh_fix(task)}") from exc
    return rows, source
