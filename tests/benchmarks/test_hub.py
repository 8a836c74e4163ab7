"""The loaders a user with internet would reach for (BBH from the Hub, GPQA Diamond, the BIG-bench sdist),
each read from a small local dataset in its schema, and each failing offline at once in one clear sentence."""

import csv
import hashlib
import io
import json
import random
import socket
import subprocess
import sys
import tarfile
import time

import pytest

from dspy_meta.benchmarks import hub, sources
from dspy_meta.benchmarks.choice import GPQA_SIZES, load_gpqa_diamond
from dspy_meta.benchmarks.hub import (
    BBH_HUB_REPO, BBH_HUB_REVISION, GPQA_CONFIG, GPQA_REPO, GPQA_REVISION, OFFLINE_TASKS_FALLBACK, hub_address,
    hub_reachable, load_bbh_hub, offline_reason, tasks_that_load,
)
from dspy_meta.benchmarks.sources import BenchmarkDataError, bigbench_task_files
from dspy_meta.benchmarks.tasks import (
    DYCK_PREFIX, WORD_SORTING_PREFIX, exact_match_metric, load_bbh_dyck_languages, load_bbh_word_sorting,
)

LOCAL_TASKS = ["word_sorting_generated", "mmlu_miscellaneous"]  # what an injected offline_tasks() returns
WORDS = ("syndrome therefrom hat core sonnet discreet oakland seaborg jacobi membrane trapezoidal allis marmot "
         "toggle anthology").split()
PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}


@pytest.fixture(autouse=True)
def _no_real_hub_or_copies(monkeypatch, tmp_path):
    """No test reads a real Hugging Face cache, a user's local copies, a proxy or a mirror setting."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub-cache"))
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT", hub.BBH_DIR_ENV, hub.GPQA_PATH_ENV,
                 sources.BIGBENCH_TARBALL_ENV, "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- small datasets in the real schemas

def _dyck_input(rng: random.Random) -> tuple[str, str]:
    """A bracket sequence with some brackets left open, and the closing brackets (innermost first)."""
    while True:
        tokens, stack = [], []
        for _ in range(rng.randint(2, 12)):
            if stack and rng.random() < 0.4:
                tokens.append(PAIRS[stack.pop()])
            else:
                stack.append(rng.choice("([{<"))
                tokens.append(stack[-1])
        if stack:
            return " ".join(tokens), " ".join(PAIRS[b] for b in reversed(stack))


def bbh_rows(task: str, n: int = 250, prefixed: bool = True) -> list[dict]:
    """`n` rows as BBH has them (``input`` is the whole prompt, prefix included; ``target`` the answer)."""
    rng = random.Random(f"{task}-rows")
    rows = []
    for i in range(n):
        if task == "word_sorting":
            words = ["syndrome", "therefrom"] if i == 0 else rng.sample(WORDS, rng.randint(2, 9))
            body, target, prefix = " ".join(words), " ".join(sorted(words)), WORD_SORTING_PREFIX
        else:
            body, target = ("[ [", "] ]") if i == 0 else _dyck_input(rng)
            prefix = DYCK_PREFIX
        rows.append({"input": (prefix if prefixed else "") + body, "target": target})
    return rows


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def gpqa_rows(n: int = 198) -> list[dict]:
    # The real file's fields hold commas, quotes and newlines; the CSV must carry them unchanged.
    return [{"Question": f"Question {i}, with \"quotes\"\nand a second line?", "Correct Answer": f"right {i}",
             "Incorrect Answer 1": f"wrong {i}a", "Incorrect Answer 2": f"wrong {i}b",
             "Incorrect Answer 3": f"wrong, {i}c", "Subdomain": "Physics"} for i in range(n)]


def write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- BBH through the Hub loader

def _check_bbh_task(task, name, rows):
    assert task.name == f"bbh_hub_{name}" and task.metric is exact_match_metric
    assert (len(task.train), len(task.val), len(task.test)) == (50, 100, 100)
    assert task.split_indices == {"train": list(range(50)), "val": list(range(50, 150)),
                                  "test": list(range(150, 250))}
    for example, row in zip(task.train + task.val + task.test, rows, strict=True):
        assert example.question == row["input"] and example.answer == row["target"]
        assert set(example.inputs().keys()) == {"question"}
    assert "file order" in task.split_note


@pytest.mark.parametrize("name", ["word_sorting", "dyck_languages"])
def test_bbh_hub_reads_a_local_jsonl_in_the_hub_schema(tmp_path, name):
    rows = bbh_rows(name)
    folder = tmp_path / "bbh"
    write_jsonl(folder / f"{name}.jsonl", rows)
    task = load_bbh_hub(name, path=folder, reachable=lambda: pytest.fail("a local copy needs no Hub"))
    _check_bbh_task(task, name, rows)
    first = ((WORD_SORTING_PREFIX + "syndrome therefrom", "syndrome therefrom") if name == "word_sorting"
             else (DYCK_PREFIX + "[ [", "] ]"))
    assert (task.train[0].question, task.train[0].answer) == first
    assert str(folder) in task.source


def test_bbh_hub_local_copy_from_the_environment_and_from_a_file(tmp_path, monkeypatch):
    rows = bbh_rows("word_sorting")
    path = write_jsonl(tmp_path / "copy" / "word_sorting.jsonl", rows)
    monkeypatch.setenv(hub.BBH_DIR_ENV, str(path.parent))
    _check_bbh_task(load_bbh_hub("word_sorting"), "word_sorting", rows)
    monkeypatch.delenv(hub.BBH_DIR_ENV)
    _check_bbh_task(load_bbh_hub("word_sorting", path=path), "word_sorting", rows)


def test_bbh_hub_reads_the_hub_parquet_layout_and_big_bench_hards_json(tmp_path):
    import datasets

    rows = bbh_rows("dyck_languages")
    snapshot = tmp_path / "snapshot"  # as `hf download lukaemon/bbh` leaves it: <config>/test-*.parquet
    (snapshot / "dyck_languages").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(snapshot / "dyck_languages" / "test-00000-of-00001.parquet"))
    _check_bbh_task(load_bbh_hub("dyck_languages", path=snapshot), "dyck_languages", rows)

    github = tmp_path / "BIG-Bench-Hard" / "bbh"  # suzgunmirac/BIG-Bench-Hard: {"canary": ..., "examples": [...]}
    github.mkdir(parents=True)
    (github / "dyck_languages.json").write_text(json.dumps({"canary": "x", "examples": rows}), encoding="utf-8")
    _check_bbh_task(load_bbh_hub("dyck_languages", path=github), "dyck_languages", rows)


def test_bbh_hub_reads_a_folder_with_readme_configs_through_load_dataset(tmp_path):
    """A folder in the Hub's dataset layout goes through the same `load_dataset(repo, task, split="test")`."""
    import datasets

    rows = bbh_rows("word_sorting")
    folder = tmp_path / "repo"
    (folder / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(folder / "data" / "ws.parquet"))
    (folder / "README.md").write_text("---\nconfigs:\n- config_name: word_sorting\n  data_files:\n  - split: test\n"
                                      "    path: data/ws.parquet\n---\n", encoding="utf-8")
    _check_bbh_task(load_bbh_hub("word_sorting", path=folder), "word_sorting", rows)
    with pytest.raises(BenchmarkDataError, match="no dyck_languages.jsonl"):
        load_bbh_hub("dyck_languages", path=folder)


def test_bbh_hub_adds_the_prefix_when_a_copy_lacks_it(tmp_path):
    rows = bbh_rows("word_sorting", prefixed=False)
    task = load_bbh_hub("word_sorting", path=write_jsonl(tmp_path / "ws.jsonl", rows))
    assert task.train[1].question == WORD_SORTING_PREFIX + rows[1]["input"]
    assert not task.train[1].question.startswith(WORD_SORTING_PREFIX * 2)


def test_bbh_hub_rejects_data_that_is_not_bbh(tmp_path):
    with pytest.raises(BenchmarkDataError, match="has 249 rows, expected BBH's 250"):
        load_bbh_hub("word_sorting", path=write_jsonl(tmp_path / "a.jsonl", bbh_rows("word_sorting", 249)))
    rows = bbh_rows("word_sorting")
    rows[7]["target"] = "zebra apple"
    with pytest.raises(BenchmarkDataError, match="row 7: target 'zebra apple' is not the input's words sorted"):
        load_bbh_hub("word_sorting", path=write_jsonl(tmp_path / "b.jsonl", rows))
    renamed = [{"question": row["input"], "answer": row["target"]} for row in bbh_rows("dyck_languages")]
    with pytest.raises(BenchmarkDataError, match="lacks the column"):
        load_bbh_hub("dyck_languages", path=write_jsonl(tmp_path / "c.jsonl", renamed))
    with pytest.raises(BenchmarkDataError, match="neither a file nor a folder"):
        load_bbh_hub("word_sorting", path=tmp_path / "missing")
    with pytest.raises(ValueError, match="word_sorting, dyck_languages"):
        load_bbh_hub("navigate")


def test_bbh_hub_online_calls_load_dataset_with_the_pinned_revision(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return datasets.Dataset.from_list(bbh_rows(args[1]))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = load_bbh_hub("word_sorting", reachable=lambda: True)
    assert calls == [((BBH_HUB_REPO, "word_sorting"), {"revision": BBH_HUB_REVISION, "split": "test",
                                                       "token": None})]
    assert task.source == f"BBH word_sorting: Hugging Face Hub lukaemon/bbh@{BBH_HUB_REVISION}, config word_sorting, " \
                          "split test"
    assert len(BBH_HUB_REVISION) == 40 and int(BBH_HUB_REVISION, 16) >= 0  # a commit, not a branch


def test_bbh_hub_online_failure_is_a_benchmark_data_error(monkeypatch):
    import datasets

    def broken(*args, **kwargs):
        raise ConnectionError("503 Service Unavailable\nretry later")

    monkeypatch.setattr(datasets, "load_dataset", broken)
    with pytest.raises(BenchmarkDataError, match="lukaemon/bbh.*ConnectionError: 503 Service Unavailable retry "
                                                 "later; fix: set DSPY_META_BBH_DIR"):
        load_bbh_hub("dyck_languages", reachable=lambda: True)


def test_offline_bbh_uses_a_cached_snapshot_of_the_pinned_revision(tmp_path, monkeypatch):
    import datasets

    rows = bbh_rows("word_sorting")
    snapshot = tmp_path / "hf-hub-cache" / "datasets--lukaemon--bbh" / "snapshots" / BBH_HUB_REVISION
    (snapshot / "word_sorting").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(snapshot / "word_sorting" / "test-00000-of-00001.parquet"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task = load_bbh_hub("word_sorting")
    _check_bbh_task(task, "word_sorting", rows)
    assert task.source.endswith("(cached snapshot)")
    with pytest.raises(BenchmarkDataError, match="HF_HUB_OFFLINE=1 is set"):  # this snapshot lacks dyck
        load_bbh_hub("dyck_languages")


# ---------------------------------------------------------------- GPQA Diamond

def test_gpqa_reads_a_local_csv_in_the_hub_schema(tmp_path):
    rows = gpqa_rows()
    path = write_csv(tmp_path / "gpqa" / "gpqa_diamond.csv", rows)
    task = load_gpqa_diamond(seed=0, path=path, reachable=lambda: pytest.fail("a local copy needs no Hub"))
    assert task.name == "gpqa_diamond" and (len(task.train), len(task.val), len(task.test)) == GPQA_SIZES
    positions = task.split_indices["train"] + task.split_indices["val"] + task.split_indices["test"]
    assert sorted(positions) == list(range(198))
    for position, example in zip(positions, task.train + task.val + task.test, strict=True):
        lines = example.question.splitlines()
        assert lines[:2] == rows[position]["Question"].splitlines()
        assert f"{example.answer}) right {position}" in lines and f"wrong, {position}c" in example.question
    assert len({example.answer for example in task.train}) > 1
    assert str(path) in task.source
    # the folder that holds gpqa_diamond.csv (a hub snapshot, the official zip's dataset/) and the variable work too
    again = load_gpqa_diamond(seed=0, path=path.parent)
    assert [e.question for e in again.test] == [e.question for e in task.test]
    assert load_gpqa_diamond(seed=1, path=path).split_indices != task.split_indices


def test_gpqa_from_the_environment_and_jsonl(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "gpqa_diamond.jsonl", gpqa_rows())
    monkeypatch.setenv(hub.GPQA_PATH_ENV, str(path))
    task = load_gpqa_diamond()
    assert len(task.test) == 68 and "local copy" in task.source


def test_gpqa_rejects_other_schemas_and_sizes(tmp_path):
    rows = [{k: v for k, v in row.items() if k != "Incorrect Answer 3"} for row in gpqa_rows()]
    with pytest.raises(BenchmarkDataError, match="lacks the column.*Incorrect Answer 3"):
        load_gpqa_diamond(path=write_csv(tmp_path / "a.csv", rows))
    with pytest.raises(BenchmarkDataError, match="has 197 rows, expected 198"):
        load_gpqa_diamond(path=write_csv(tmp_path / "b.csv", gpqa_rows(197)))


def test_gpqa_online_calls_load_dataset_with_the_pinned_revision_and_token(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return datasets.Dataset.from_list(gpqa_rows())

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = load_gpqa_diamond(token="hf_x", reachable=lambda: True)
    assert calls == [((GPQA_REPO, GPQA_CONFIG), {"revision": GPQA_REVISION, "split": "train", "token": "hf_x"})]
    assert "Idavidrein/gpqa" in task.source and "gated" in task.source


def test_offline_gpqa_uses_a_cached_snapshot(tmp_path, monkeypatch):
    snapshot = tmp_path / "hf-hub-cache" / "datasets--Idavidrein--gpqa" / "snapshots" / GPQA_REVISION
    write_csv(snapshot / "gpqa_diamond.csv", gpqa_rows())
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    task = load_gpqa_diamond()
    assert len(task.val) == 100 and task.source.endswith("(cached snapshot)")


# ---------------------------------------------------------------- offline: one sentence, at once

def _hanging_connect(*args, **kwargs):
    """A connect that neither opens nor fails for 3 s, as a black-holed network or a stuck resolver does."""
    time.sleep(3)
    raise socket.timeout("timed out")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _offline_failure(load) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(BenchmarkDataError) as err:
        load()
    return str(err.value), time.monotonic() - start


def _assert_one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith(".") and ". " not in message, message
    assert message[0].isupper()


OFFLINE_LOADERS = {
    "bbh_hub": (lambda **kw: load_bbh_hub("word_sorting", **kw),
                ["lukaemon/bbh", "config word_sorting", f"revision {BBH_HUB_REVISION}", "DSPY_META_BBH_DIR"]),
    "gpqa": (lambda **kw: load_gpqa_diamond(**kw),
             ["gated Hugging Face Hub dataset Idavidrein/gpqa", f"revision {GPQA_REVISION}", "token",
              "DSPY_META_GPQA_PATH"]),
}


@pytest.mark.parametrize("loader", sorted(OFFLINE_LOADERS))
@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "refused", "hanging", "injected"])
def test_hub_loaders_fail_offline_at_once_in_one_sentence(loader, offline, monkeypatch):
    load, named = OFFLINE_LOADERS[loader]
    kwargs = {"offline_tasks": lambda: LOCAL_TASKS}
    if offline.startswith("HF_"):
        monkeypatch.setenv(offline, "1")
        reason = f"({offline}=1 is set)"
        monkeypatch.setattr(hub, "_tcp_probe", lambda *a: pytest.fail("the variable alone says offline"))
    elif offline == "refused":  # the real probe, of an endpoint whose port is closed
        port = _closed_port()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        reason = f"(no connection to 127.0.0.1:{port} within 0.75 s)"
    elif offline == "hanging":  # a resolver or network that never answers: the probe's bound holds
        monkeypatch.setattr(socket, "create_connection", _hanging_connect)
        reason = "(no connection to huggingface.co:443 within 0.75 s)"
    else:
        kwargs["reachable"] = lambda: False
        reason = "(the reachability check said no)"
    message, seconds = _offline_failure(lambda: load(**kwargs))
    assert seconds < 1.0, f"{seconds:.2f} s"
    _assert_one_sentence(message)
    assert f"the Hub is not reachable {reason}" in message
    assert all(part in message for part in named), message
    assert message.endswith("tasks that load here without network: word_sorting_generated, mmlu_miscellaneous.")
    if offline.startswith("HF_"):
        assert f"unset {offline}" in message


@pytest.mark.parametrize("loader", sorted(OFFLINE_LOADERS))
def test_hub_loaders_offline_name_the_registrys_local_tasks(loader, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message, seconds = _offline_failure(OFFLINE_LOADERS[loader][0])
    assert seconds < 1.0, f"{seconds:.2f} s"
    _assert_one_sentence(message)
    assert message.endswith(f"tasks that load here without network: {tasks_that_load()}.")
    assert "word_sorting_generated" in message


def test_bigbench_sdist_loader_reads_a_local_sdist_in_its_schema(tmp_path, monkeypatch):
    """The sdist path for anyone who still has it: BBH positions of stand-in task files, pinned by sha256."""
    rng = random.Random(3)
    word_sorting = [{"input": " ".join(words), "target": " ".join(sorted(words))}
                    for words in (rng.sample(WORDS, rng.randint(2, 9)) for _ in range(1900))]
    dyck = []
    for _ in range(1000):
        sequence, closing = _dyck_input(rng)
        dyck.append({"input": sequence, "target_scores": {closing: 1, closing + " )": 0}})
    files = {"word_sorting": word_sorting, "dyck_languages": dyck,
             "object_counting": [{"input": "I have a cat.", "target": ["one", "1"]}],
             "reasoning_about_colored_objects": [{"input": "What colour?", "target_scores": {"red": 1, "blue": 0}}]}
    data = {task: json.dumps({"examples": examples}).encode() for task, examples in files.items()}
    monkeypatch.setattr(sources, "BIGBENCH_SHA256", {t: hashlib.sha256(d).hexdigest() for t, d in data.items()})
    sdist = tmp_path / "bigbench-1.0.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for task, blob in data.items():
            info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{task}/task.json")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    monkeypatch.setenv(sources.BIGBENCH_TARBALL_ENV, str(sdist))
    monkeypatch.setattr(sources, "_pip_download", lambda *a, **k: pytest.fail("a given sdist needs no pip"))
    task = load_bbh_word_sorting(cache_dir=tmp_path / "cache")
    assert (len(task.train), len(task.val), len(task.test)) == (50, 100, 100)
    first = task.split_indices["train"][0]
    assert first == 68 and task.train[0].question == WORD_SORTING_PREFIX + word_sorting[68]["input"]
    assert task.train[0].answer == word_sorting[68]["target"]
    dyck_task = load_bbh_dyck_languages(cache_dir=tmp_path / "cache")
    position = dyck_task.split_indices["test"][0]
    assert dyck_task.test[0].answer == next(k for k, v in dyck[position]["target_scores"].items() if v == 1)


def test_bigbench_sdist_loader_without_a_copy_fails_at_once_without_pip(tmp_path, monkeypatch):
    def no_pip(*args, **kwargs):
        raise AssertionError("bigbench==1.0.0 is gone from PyPI: pip must not be run for it")

    monkeypatch.setattr(sources, "_pip_download", no_pip)
    monkeypatch.setattr(sources.subprocess, "run", no_pip)
    message, seconds = _offline_failure(lambda: bigbench_task_files(cache_dir=tmp_path / "cache"))
    assert seconds < 1.0, f"{seconds:.2f} s"
    _assert_one_sentence(message)
    assert "bigbench==1.0.0 sdist is no longer on PyPI (only the 0.0.1 stub" in message
    assert "DSPY_META_BIGBENCH_TARBALL" in message and "word_sorting, dyck_languages" in message
    assert message.endswith(f"tasks that load without it: {tasks_that_load()}.")
    message, seconds = _offline_failure(lambda: load_bbh_word_sorting(cache_dir=tmp_path / "cache"))
    assert seconds < 1.0 and "no longer on PyPI" in message


def test_offline_failures_in_a_fresh_interpreter_take_under_a_second(tmp_path):
    """The real thing: HF_HUB_OFFLINE=1 in a new process, the failing calls timed after the imports."""
    code = (
        "import json, time\n"
        "from dspy_meta.benchmarks.choice import load_gpqa_diamond\n"
        "from dspy_meta.benchmarks.hub import load_bbh_hub\n"
        "from dspy_meta.benchmarks.sources import BenchmarkDataError, bigbench_task_files\n"
        "out = {}\n"
        "for name, call in [('bbh_hub', lambda: load_bbh_hub('dyck_languages')), ('gpqa', load_gpqa_diamond),\n"
        f"                   ('bigbench', lambda: bigbench_task_files(cache_dir={str(tmp_path / 'c')!r}))]:\n"
        "    start = time.monotonic()\n"
        "    try:\n"
        "        call()\n"
        "    except BenchmarkDataError as exc:\n"
        "        out[name] = [time.monotonic() - start, str(exc)]\n"
        "print(json.dumps(out))\n")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("DSPY_META_", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"), LITELLM_LOCAL_MODEL_COST_MAP="True")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(results) == ["bbh_hub", "bigbench", "gpqa"]
    for name, (seconds, message) in results.items():
        assert seconds < 1.0, f"{name}: {seconds:.2f} s"
        _assert_one_sentence(message)
        assert "word_sorting_generated" in message


# ---------------------------------------------------------------- the reachability check itself

def test_reachability_check(monkeypatch):
    seen = []

    def probe(host, port, timeout):
        seen.append((host, port, timeout))
        return True

    assert hub_reachable(probe=probe) and seen == [("huggingface.co", 443, hub.PROBE_TIMEOUT_S)]
    assert offline_reason(probe=lambda *a: False) == "no connection to huggingface.co:443 within 0.75 s"
    assert not hub_reachable(probe=lambda *a: (_ for _ in ()).throw(OSError("no route")))
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example:8443")
    assert hub_address() == ("hf-mirror.example", 8443)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    seen.clear()
    assert hub_reachable(probe=probe) and seen[0][:2] == ("proxy.example", 3128)
    assert "through the proxy proxy.example:3128" in offline_reason(probe=lambda *a: False)
    monkeypatch.setenv("NO_PROXY", "hf-mirror.example")
    seen.clear()
    assert hub_reachable(probe=probe) and seen[0][:2] == ("hf-mirror.example", 8443)
    for value in ("1", "true", "YES", "on"):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert offline_reason(probe=lambda *a: pytest.fail("no probe when the variable says offline")) == \
            f"HF_HUB_OFFLINE={value} is set"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert hub_reachable(probe=lambda *a: True)


def test_a_hanging_connect_is_cut_at_the_timeout(monkeypatch):
    monkeypatch.setattr(socket, "create_connection", _hanging_connect)
    start = time.monotonic()
    assert not hub_reachable(timeout=0.2, host="10.255.255.1", port=443)
    assert time.monotonic() - start < 0.6


def test_tasks_that_load(monkeypatch):
    assert tasks_that_load(lambda: ["a_task", "b_task"]) == "a_task, b_task"
    assert tasks_that_load(lambda: []) == OFFLINE_TASKS_FALLBACK
    assert tasks_that_load(lambda: (_ for _ in ()).throw(RuntimeError("broken registry"))) == OFFLINE_TASKS_FALLBACK
    try:
        import dspy_meta.benchmarks.registry as registry
    except Exception:  # a registry that cannot be imported: the fallback is said
        assert tasks_that_load() == OFFLINE_TASKS_FALLBACK
        return
    monkeypatch.delattr(registry, "offline_tasks", raising=False)
    assert tasks_that_load() == OFFLINE_TASKS_FALLBACK
