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
