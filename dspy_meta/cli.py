"""Command line: ``dspy-meta run CONFIG [--dry-run] [--storage URL]``, ``worker --storage URL [--study NAME]``,
``compare CONFIG``, ``demo``, ``show OUTPUT``, ``configs``, ``tasks``, ``methods``, ``--version``.

A run writes its tables to files (``results.md``, ``results.json``, ``trajectory.png``) and prints a short
summary to stdout; logs, progress bars and errors go to stderr, so ``dspy-meta run demo > summary.txt``
keeps only the summary. DSPy's own bars and prints are silenced unless ``-v`` asks for them. CONFIG is a
file, or the name of a shipped config (``dspy-meta configs`` lists them), so ``dspy-meta run demo`` works
from any directory. ``--storage`` queues the meta methods' candidates for ``dspy-meta worker`` processes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

DEMO_CONFIG = "demo"


def _summary(results: dict, out_dir, usage: bool = False) -> str:
    """A few lines: validation and held-out test score and the winning optimizer per method, where the tables
    are; with `usage`, the LM calls and tokens per level while optimizing."""
    summary, task = results["summary"], results["task"]
    lines = [f"{task['name']}: train/val/test = {'/'.join(map(str, task['sizes']))}; seeds {results['seeds']}",
             f"  {'method':<20} {'val':>6} {'test':>6}  winner"]
    for method, entry in summary.items():
        lines.append(f"  {method:<20} {entry['val']['mean']:>6.3f} {entry['test']['mean']:>6.3f}  "
                     f"{entry.get('winner', '-')}")
    if usage:
        lines += ["", "  LM usage while optimizing   calls   input tokens   output tokens"]
        for method, entry in summary.items():
            for level, used in entry["usage"].items():
                if used["calls"]:
                    lines.append(f"  {method:<14} {level:<10} {used['calls']:>6.0f}   {used['input_tokens']:>12.0f}"
                                 f"   {used['output_tokens']:>13.0f}")
    lines.append(f"tables: {out_dir}/results.md, results.json, trajectory.png; programs: {out_dir}/<method>/seed<k>/")
    return "\n".join(lines)


def _version() -> str:
    from dspy_meta import __version__

    return __version__


def _tasks_table() -> str:
    """One line per task of the suite: group, whether it loads here, sizes, measured zero-shot score."""
    from dspy_meta.benchmarks.overview import task_overview

    statuses = task_overview()
    lines = [f"{'task':<34} {'group':<11} {'loads here':<10} {'train/val/test':<15} zero-shot (0.5B, val)"]
    for status in statuses:
        sizes = "/".join(map(str, status.sizes)) if status.sizes else "-"
        zero = status.zero_shot
        score = f"{zero['score']:.2f} on {zero['n']}" if zero else "not measured"
        lines.append(f"{status.name:<34} {status.group:<11} {'yes' if status.loads else 'no':<10} {sizes:<15} {score}")
        if not status.loads:
            lines.append(f"    needs {status.needs or 'something missing'}: {status.problem}")
    lines.append("evaluation group (held out from all tuning): "
                 + ", ".join(s.name for s in statuses if s.group == "evaluation"))
    return "\n".join(lines)


def _listing(args) -> int:
    """The commands that only read: configs, tasks, methods, show."""
    if args.command == "configs":
        from dspy_meta.experiments.config import read_yaml, shipped_configs

        for name, path in shipped_configs().items():
            data = read_yaml(path) or {}
            task = data.get("task", {})
            task = task.get("name", "?") if isinstance(task, dict) else task
            kind = "compare" if name.startswith("compare_") else "run"
            print(f"{name:<34} {kind:<8} {task}")
    elif args.command == "tasks":
        print(_tasks_table())
    elif args.command == "methods":
        from dspy_meta.experiments.compare_config import COMPARE_METHODS, STOCK_METHODS
        from dspy_meta.experiments.config import METHODS

        print("run (experiment configs):  " + ", ".join(METHODS))
        print("compare (stock DSPy):      " + ", ".join(STOCK_METHODS))
        print("compare (dspy-meta):       " + ", ".join(m for m in COMPARE_METHODS if m not in STOCK_METHODS))
    else:
        import json
        from pathlib import Path

        from dspy_meta.experiments.runner import markdown_table

        path = Path(args.output)
        path = path / "results.json" if path.is_dir() else path
        if not path.is_file():
            print(f"dspy-meta: no results.json in {args.output}", file=sys.stderr)
            return 2
        print(markdown_table(json.loads(path.read_text(encoding="utf-8"))))
    return 0


def _plan(config, seeds, out_dir) -> str:
    """What `run` would do: the task's sizes, the LMs, the methods x seeds and the meta budget (no LM call)."""
    task = config.task.load()  # checks the task's settings and data
    for lm_config in config.lms.values():
        lm_config.build()  # checks the model names (local weights are assembled, not loaded)
    seeds = list(seeds) if seeds is not None else list(config.seeds)
    lines = [f"config {config.name}: valid",
             f"task {task.name}: train/val/test = {len(task.train)}/{len(task.val)}/{len(task.test)}",
             *(f"{level:<9} LM {c.model} {dict(c.kwargs) or ''}" for level, c in config.lms.items()),
             f"runs: {len(config.methods)} methods x {len(seeds)} seeds = {len(config.methods) * len(seeds)} "
             f"({', '.join(config.methods)}; seeds {seeds})",
             f"meta budget: {config.budget.to_dict()}", f"output: {out_dir}"]
    return "\n".join(lines)


def _worker(args) -> int:
    from dspy_meta.distributed import StudyStorage
    from dspy_meta.errors import ConfigError, StudyMismatch
    from dspy_meta.experiments.worker_cli import serve_experiment_studies
    from dspy_meta.runtime.redact import redact

    try:
        ran = serve_experiment_studies(StudyStorage(args.storage), args.study,
                                       num_threads=args.num_threads, idle_timeout=args.idle_timeout)
    except (StudyMismatch, ConfigError, ValueError) as exc:
        print(f"dspy-meta worker: {redact(exc)}", file=sys.stderr)
        return 2
    print(f"dspy-meta worker: {ran} candidate(s) run here")
    return 0


def main(argv: list[str] | None = None) -> int:
    # Offline machines: litellm must not try to fetch its price table at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    parser = argparse.ArgumentParser(prog="dspy-meta", description="Meta-optimize DSPy optimizers (metaTextGrad).")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress details, and let DSPy's optimizers show their bars and prints")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("configs", help="list the shipped configs (run or compare them by name)")
    commands.add_parser("tasks", help="list the benchmark tasks a config may name")
    commands.add_parser("methods", help="list the methods of experiment and comparison configs")
    show = commands.add_parser("show", help="print the results table of a finished run (its output folder)")
    show.add_argument("output")
    run = commands.add_parser("run", help="run an experiment config (a file, or a shipped config's name)")
    run.add_argument("config")
    run.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    run.add_argument("--output", help="output folder (default: <output_dir>/<name>)")
    run.add_argument("--force", action="store_true",
                     help="recompute finished runs whose settings changed (default: refuse)")
    run.add_argument("--dry-run", action="store_true",
                     help="check the config, the task data and the model names, show the plan; call no LM")
    run.add_argument("--storage", help="queue the meta methods' candidates in this Optuna storage (a URL such as "
                     "sqlite:///runs/x.db or postgresql+psycopg2://...) for `dspy-meta worker` processes")
    run.add_argument("--workers-only", action="store_true",
                     help="with --storage: leave every candidate to the workers (default: this process runs some too)")
    worker = commands.add_parser("worker", help="run the candidates of meta runs started with --storage")
    worker.add_argument("--storage", required=True, help="the driver's Optuna storage URL")
    worker.add_argument("--study", help="the run's study (default: every unfinished one in the storage)")
    worker.add_argument("--num-threads", type=int, help="LM requests in flight at once (default: the config's)")
    worker.add_argument("--idle-timeout", type=float,
                        help="stop after this many seconds without work (default: when the study is finished)")
    compare = commands.add_parser("compare", help="equal-budget comparison with DSPy's own optimizers "
                                  "(a file, or a shipped compare_* config's name)")
    compare.add_argument("config")
    compare.add_argument("--force", "--recompute", dest="recompute", action="store_true",
                         help="re-run finished runs whose settings changed (default: refuse)")
    compare.add_argument("--output", help="results file (default: the config's output)")
    compare.add_argument("--methods", nargs="+", metavar="METHOD",
                         help="run only these of the config's methods now (the rest stay to do; resume later)")
    demo = commands.add_parser("demo", help="the main job: meta-optimize a small real task on the local models")
    demo.add_argument("--config", default=DEMO_CONFIG)
    demo.add_argument("--output")
    demo.add_argument("--force", action="store_true", help="recompute finished runs whose settings changed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from dspy_meta.errors import StaleResults
    from dspy_meta.experiments.config import ConfigError, load_config

    if args.command in ("configs", "tasks", "methods", "show"):
        return _listing(args)

    if args.command == "worker":
        return _worker(args)

    if args.command == "compare":
        from dspy_meta.experiments.compare_cli import compare_command

        return compare_command(args)
    from dspy_meta.experiments.runner import output_folder, run_experiment
    from dspy_meta.runtime.redact import redact

    try:
        config = load_config(args.config)
        if getattr(args, "dry_run", False):
            print(_plan(config, getattr(args, "seeds", None), output_folder(config, args.output)))
            return 0
        storage = None
        if getattr(args, "storage", None):
            from dspy_meta.distributed import StudyStorage

            storage = StudyStorage(args.storage, evaluate_here=not getattr(args, "workers_only", False))
        with contextlib.redirect_stdout(sys.stderr):  # whatever the run prints (-v: DSPy's bars) is not the summary
            results = run_experiment(config, seeds=getattr(args, "seeds", None), output=args.output,
                                     force=args.force, quiet=not args.verbose, storage=storage)
    except ConfigError as exc:
        print(f"dspy-meta: invalid config: {redact(exc)}", file=sys.stderr)
        return 2
    except StaleResults as exc:
        print(f"dspy-meta: {redact(exc)}", file=sys.stderr)
        return 3
    print(_summary(results, output_folder(config, args.output), usage=args.command == "demo"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
