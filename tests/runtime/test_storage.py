"""`RunStore`: a run_dir that cannot be a folder is a `RunDirError`; ``~`` is the home folder."""

import pytest

from dspy_meta.errors import RunDirError
from dspy_meta.runtime.storage import RunStore


@pytest.mark.parametrize("where", ["run_dir", "run_dir/inner"])
def test_a_file_where_the_run_dir_should_be_is_a_run_dir_error(tmp_path, where):
    (tmp_path / "run_dir").write_text("not a folder")
    store = RunStore(tmp_path / where)
    with pytest.raises(RunDirError, match=rf"run_dir '{tmp_path / where}' is not a folder"):
        with store.locked():
            pass
    with pytest.raises(RunDirError, match="is not a folder"):
        store.open({"optimizer": "x"})


def test_a_run_dir_under_home_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # where a folder named "~" would appear
    store = RunStore("~/runs/a")
    with store.locked():
        assert not store.open({"optimizer": "x"})
    assert (tmp_path / "home" / "runs" / "a" / "run.json").is_file() and not (tmp_path / "~").exists()


# -- documents read back (issue 30, 14) ----------------------------------------------------------
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402

from dspy_meta.testing.toy_task import shout_examples  # noqa: E402

from ..teleprompters.conftest import compile_toy, toy_engines  # noqa: E402

DATA = shout_examples(8), shout_examples(6, offset=8)


def _scored_document(run_dir):
    return next(p for p in sorted((run_dir / "candidates").glob("*.json")) if json.loads(p.read_text())["score"])


def _set(field, value):
    def change(path):
        data = json.loads(path.read_text())
        if field == "calls":
            next(iter(data["usage"].values()))["calls"] = value
        else:
            data[field] = value
        path.write_text(json.dumps(data))
    return change


def _folder(path):
    path.unlink()
    (path / "inner").mkdir(parents=True)


DAMAGE = {"score as a string": _set("score", "1.0"), "calls as a string": _set("calls", "5"),
          "NaN score": _set("score", math.nan), "infinite score": _set("score", math.inf),
          "negative calls": _set("calls", -3), "a folder in its place": _folder}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_document_with_a_field_of_the_wrong_type_is_set_aside_named_and_recomputed(tmp_path, caplog, damage):
    first = compile_toy(toy_engines(), DATA, run_dir=str(tmp_path)).meta_results_
    document = _scored_document(tmp_path)
    damage(document)
    engines = toy_engines()
    with caplog.at_level(logging.WARNING, logger="dspy_meta"):
        again = compile_toy(engines, DATA, run_dir=str(tmp_path)).meta_results_  # before: TypeError, or NaN kept
    assert again.to_dict() == first.to_dict()
    assert any(document.name in m and "corrupt" in m for m in caplog.messages)
    assert document.with_suffix(".corrupt").exists() and document.exists()  # its work was done again, and saved


def test_a_run_dir_whose_manifest_was_deleted_is_refused_not_replayed_for_other_settings(tmp_path):
    compile_toy(toy_engines(), DATA, run_dir=str(tmp_path))
    (tmp_path / "run.json").unlink()
    engines = toy_engines()
    with pytest.raises(RunDirError, match=rf"run_dir '{tmp_path}' holds \d+ checkpoint document\(s\) but no manifest "
                                          r".*run\.json.*Use a new run_dir, or empty this one"):
        compile_toy(engines, DATA, metric=lambda e, p, t=None: 0.5, run_dir=str(tmp_path))
    assert [len(e.calls) for e in engines] == [0, 0, 0]  # before: the old metric's scores, replayed


def test_a_folder_named_like_the_manifest_is_a_run_dir_error(tmp_path):
    (tmp_path / "run.json").mkdir()
    with pytest.raises(RunDirError, match=r"run\.json.* is unreadable \(IsADirectoryError"):
        RunStore(tmp_path).open({"optimizer": "x"})


def test_a_fresh_run_dir_and_unknown_document_kinds_are_left_alone(tmp_path):
    store = RunStore(tmp_path)
    assert not store.open({"optimizer": "x"})
    store.put("notes", "k", {"anything": "1.0"})
    assert store.get("notes", "k") == {"key": "k", "anything": "1.0"}
    assert store.open({"optimizer": "x"})  # resuming
