"""What the command line checks before any work, with no LM call: which command a config is for, whether its
task's data loads here, whether its LMs' engines import (llama-cpp-python and the weight packages for local
models), which API keys its remote LMs need; the dry-run plans of ``run`` and ``compare``; and how an error
reads on one line.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dspy_meta.errors import BenchmarkDataError, ConfigError, LocalModelError

__all__ = ["one_line", "config_kind", "check_kind", "engine_problems", "missing_keys", "load_checked_task",
           "preflight", "readiness", "run_plan", "compare_plan", "LOCAL_EXTRA"]

logger = logging.getLogger(__name__)

LOCAL_EXTRA = "pip install 'dspy-meta[local]'"
# Keys only an experiment config has (a comparison config has `program_calls`, `settings`, `work_dir`, ...).
_EXPERIMENT_ONLY = frozenset({"budget", "max_bootstrapped_demos", "max_labeled_demos", "num_samples", "output_dir"})
_DATA_ERRORS = (BenchmarkDataError, ImportError, OSError)  # a task whose data or loader is missing here


def one_line(text: Any) -> str:
    """`text` on one line (an error message's lines joined), credentials removed."""
    from dspy_meta.runtime.redact import redact

    return " ".join(part.strip() for part in redact(str(text)).splitlines() if part.strip())


def config_kind(data: Any, source: str | Path) -> str | None:
    """``"compare"`` or ``"run"``: the command a config's content (or its name) is for; None if not a mapping.
    A comparison config has ``program_calls`` (or a name starting with ``compare_`` and no experiment-only key);
    anything else is an experiment config."""
    if not isinstance(data, Mapping):
        return None
    if "program_calls" in data:
        return "compare"
    names = (Path(str(source)).stem, str(data.get("name", "")))
    if any(name.startswith("compare_") for name in names) and not _EXPERIMENT_ONLY & set(data):
        return "compare"
    return "run"


def check_kind(data: Any, source: str | Path, command: str) -> None:
    """A `ConfigError` that names the right command when `data` is a config for the other one."""
    kind = config_kind(data, source)
    if command == "run" and kind == "compare":
        why = "it has program_calls" if "program_calls" in data else "its name starts with compare_"
        raise ConfigError(f"{source} is a comparison config ({why}), not an experiment config: use "
                          f"`dspy-meta compare {source}`")
    if command == "compare" and kind == "run":
        raise ConfigError(f"{source} is an experiment config (it has no program_calls), not a comparison "
                          f"config: use `dspy-meta run {source}`")


def _local_models(lms: Mapping[str, Any]) -> list[str]:
    from dspy_meta.lm.registry import LOCAL_MODELS

    return sorted({name for c in lms.values() if (name := c.model.removeprefix("local/")) in LOCAL_MODELS})


def engine_problems(lms: Mapping[str, Any], short: bool = False) -> list[str]:
    """What the local models among `lms` (level -> `LMConfig`) lack here: llama-cpp-python importable, the
    weight packages installed (found, not imported or assembled). Empty when they can run."""
    from dspy_meta.lm.registry import LOCAL_MODELS

    local = _local_models(lms)
    if not local:
        return []
    problems = []
    try:
        importlib.import_module("llama_cpp")
    except Exception as exc:  # noqa: BLE001 -- ImportError, or a shared library that fails to load
        from dspy_meta.lm.llama_engine import _INSTALL_HINT

        problems.append(f"llama-cpp-python, the engine of the local models {', '.join(local)}"
                        + (f" (the local extra: {LOCAL_EXTRA})" if short else
                           f": it does not import here ({type(exc).__name__}: {exc}); install the local extra "
                           f"({LOCAL_EXTRA}; llama-cpp-python's portable build: "
                           f"{one_line(_INSTALL_HINT.split('with:', 1)[-1])})"))
    for name in local:
        model = LOCAL_MODELS[name]
        missing = [p for p in model.packages if importlib.util.find_spec(p.replace("-", "_")) is None]
        if missing:
            problems.append(f"the weights of {name} ({len(missing)} of its {len(model.packages)} packages are "
                            "missing" + (f"; the local extra: {LOCAL_EXTRA})" if short else
                                         f"): install them with {model.install_command()}"))
    return problems


def missing_keys(lms: Mapping[str, Any]) -> list[str]:
    """The environment variables (names only, never values) the remote LMs among `lms` need and lack here,
    as litellm tells them (``OPENAI_API_KEY``); each once."""
    import litellm

    local = set(_local_models(lms))
    known = {getattr(p, "value", p) for p in litellm.provider_list}
    names: list[str] = []
    for c in lms.values():
        if c.model.removeprefix("local/") in local or c.model.split("/", 1)[0] not in known:
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # litellm prints for models it cannot place
                env = litellm.validate_environment(model=c.model, api_base=c.kwargs.get("api_base"))
        except Exception as exc:  # noqa: BLE001 -- a check only: the run itself will say what is wrong
            logger.debug("cannot check the environment of %s: %s", c.model, exc)
            continue
        if not env.get("keys_in_environment"):
            wanted = [k for k in env.get("missing_keys", []) if any(w in k for w in ("KEY", "TOKEN", "SECRET"))]
            names += [k for k in wanted if k not in names]
    return names


def load_checked_task(task_config, short: bool = False):
    """``(task, None)``, or ``(None, what is missing)`` when the task's data or loader is not here."""
    from dspy_meta.benchmarks.registry import suite

    try:
        return task_config.load(), None
    except _DATA_ERRORS as exc:
        needs = next((e.needs for e in suite() if e.name == task_config.name), None)
        if short:
            return None, f"for its task {task_config.name}: {needs or one_line(exc)[:160]}"
        return None, f"its task {task_config.name} does not load here: {one_line(exc) or type(exc).__name__}"


def preflight(config, load_task: bool = True):
    """Everything a run of `config` needs that is not here, as one error (`BenchmarkDataError` when data is
    missing, else `LocalModelError`); the loaded task (None when not `load_task`)."""
    task, problem = load_checked_task(config.task) if load_task else (None, None)
    engines = engine_problems(config.lms)
    problems = ([problem] if problem else []) + ([f"it needs {'; '.join(engines)}"] if engines else [])
    if problems:
        error = BenchmarkDataError if problem else LocalModelError
        raise error(f"config {config.name} cannot run here: {'; '.join(problems)}")
    return task


def readiness(path: Path) -> tuple[str, str, list[str]]:
    """For `dspy-meta configs`: a config's command, its task, and what it needs to run here (empty: it runs)."""
    from dspy_meta.experiments.compare_config import CompareConfig
    from dspy_meta.experiments.config import ExperimentConfig, read_yaml

    try:
        data = read_yaml(path)
    except ConfigError as exc:
        return "?", "?", [f"a valid file: {one_line(exc)}"]
    kind = config_kind(data, path) or "run"
    task = data.get("task", {}) if isinstance(data, Mapping) else "?"
    task = task.get("name", "?") if isinstance(task, Mapping) else str(task)
    try:
        config = (CompareConfig if kind == "compare" else ExperimentConfig).from_dict(data, source=path.stem)
    except ConfigError as exc:
        return kind, task, [f"a valid config: {one_line(exc)}"]
    try:
        _, problem = load_checked_task(config.task, short=True)
    except ConfigError as exc:
        problem = f"task settings that load: {one_line(exc)}"
    keys = missing_keys(config.lms)
    return kind, task, ([problem] if problem else []) + engine_problems(config.lms, short=True) + \
        ([f"{', '.join(keys)} in the environment"] if keys else [])


def _lm_lines(config) -> list[str]:
    for lm_config in config.lms.values():
        lm_config.build()  # checks the provider and the settings (local weights are assembled, not loaded)
    lines = [f"{level:<9} LM {c.model} {dict(c.kwargs) or ''}".rstrip() for level, c in config.lms.items()]
    if _local_models(config.lms):
        lines.append(f"engines: llama-cpp-python {importlib.import_module('llama_cpp').__version__} for the "
                     f"local models {', '.join(_local_models(config.lms))}; their weights are installed")
    keys = missing_keys(config.lms)
    if keys:
        lines.append(f"note: the remote LMs need {', '.join(keys)} in the environment, not set here: the run's "
                     "first LM call would fail")
    return lines


def run_plan(config, seeds, out_dir) -> str:
    """What `run` would do: the task's sizes, the LMs, the methods x seeds and the meta budget (no LM call)."""
    task = preflight(config)
    seeds = list(seeds) if seeds is not None else list(config.seeds)
    return "\n".join([
        f"config {config.name}: valid",
        f"task {task.name}: train/val/test = {len(task.train)}/{len(task.val)}/{len(task.test)}",
        *_lm_lines(config),
        f"runs: {len(config.methods)} methods x {len(seeds)} seeds = {len(config.methods) * len(seeds)} "
        f"({', '.join(config.methods)}; seeds {seeds})",
        f"meta budget: {config.budget.to_dict()}", f"output: {out_dir}", "dry run: nothing run, no LM called"])


def compare_plan(config, output: str | None, only: list[str] | None = None) -> str:
    """What `compare` would do: the task's sizes (after max_val / max_test), the LMs, the methods x seeds
    under the program-call cap, where the results go (no LM call)."""
    from dspy_meta.experiments.compare_config import DEFAULTS_METHODS

    task = preflight(config)
    val, test = task.val[:config.max_val], task.test[:config.max_test]
    methods = [m for m in config.methods if not only or m in only]
    capped = [m for m in methods if m not in DEFAULTS_METHODS]
    output = Path(output or config.output)
    resumed = " (exists: its finished runs are reused when their settings match)" if output.exists() else ""
    return "\n".join([
        f"config {config.name}: valid (comparison)",
        f"task {task.name}: train/val/test = {len(task.train)}/{len(val)}/{len(test)}",
        *_lm_lines(config),
        f"runs: {len(methods)} methods x {len(config.seeds)} seeds = {len(methods) * len(config.seeds)} "
        f"({', '.join(methods)}; seeds {list(config.seeds)})",
        f"program-LM call cap: {config.program_calls} per optimizing run"
        + (f" ({len(methods) - len(capped)} defaults method(s) uncapped)" if len(capped) < len(methods) else ""),
        f"output: {output}{resumed}; programs: {config.work_dir}", "dry run: nothing run, no LM called"])
