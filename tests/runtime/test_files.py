import subprocess
import sys

from dspy_meta.runtime.files import cache_dir, file_lock, write_atomic


def test_one_cache_directory_rule(monkeypatch, tmp_path):
    monkeypatch.delenv("DSPY_META_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "dspy-meta"
    monkeypatch.setenv("DSPY_META_CACHE", "~/elsewhere")
    assert "~" not in str(cache_dir()) and cache_dir().name == "elsewhere"


def test_a_file_lock_excludes_another_process(tmp_path):
    lock_path = tmp_path / "sub" / "x.lock"
    probe = ("import sys, filelock\ntry:\n    filelock.FileLock(sys.argv[1]).acquire(timeout=0.2)\n"
             "except filelock.Timeout:\n    sys.exit(7)\n")
    with file_lock(lock_path):
        assert subprocess.run([sys.executable, "-c", probe, str(lock_path)]).returncode == 7
    assert subprocess.run([sys.executable, "-c", probe, str(lock_path)]).returncode == 0


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    write_atomic(tmp_path / "a" / "f.json", b"{}")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["f.json"]
