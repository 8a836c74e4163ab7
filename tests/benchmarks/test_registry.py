"""The task suite: what loads on a fresh machine from registry packages alone, and the held-out group."""

from pathlib import Path

import pytest
import yaml

from dspy_meta.benchmarks.registry import available_tasks, load_task, offline_tasks, suite, tasks_in_group

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_at_least_eight_local_tasks_load_with_300_test_examples_three_of_the_papers_kinds():
    big = {}
    for name in offline_tasks():
        task = load_task(name)
        assert task.train and task.val and task.test, name
        if len(task.test) >= 300 and len(task.val) >= 50:
            big[name] = task
    assert len(big) >= 8, sorted(big)
    kinds = {entry.kind for entry in suite() if entry.name in big and entry.paper}
    assert {"word sorting", "dyck", "mmlu"} <= kinds
    # Distinct questions within each task, and no question in two splits of one task.
    for name, task in big.items():
        questions = [e.question for e in task.train + task.val + task.test]
        assert len(set(questions)) == len(questions), name


def test_every_task_is_in_one_group_and_only_external_tasks_need_more_than_the_registry():
    for entry in suite():
        assert entry.group in ("learning", "evaluation", "external")
        assert (entry.needs is None) == (entry.group != "external"), entry.name
    assert set(offline_tasks()) | set(tasks_in_group("external")) == set(available_tasks())


def test_the_evaluation_group_is_held_out_of_every_shipped_config():
    held_out = set(tasks_in_group("evaluation"))
    assert len(held_out) >= 3
    assert any(entry.paper for entry in suite() if entry.name in held_out)
    for path in CONFIGS.glob("*.yaml"):
        task = (yaml.safe_load(path.read_text()) or {}).get("task") or {}
        name = task.get("name") if isinstance(task, dict) else task
        assert name not in held_out, f"{path.name} tunes on the held-out task {name}"


def test_unknown_task_names_list_the_suite():
    with pytest.raises(ValueError, match="unknown task 'nope'; available: word_sorting_generated"):
        load_task("nope")
