"""Command line: ``dspy-meta run CONFIG [--dry-run] [--storage URL]``, ``worker --storage URL [--study NAME]``,
``compare CONFIG [--dry-run]``, ``learn CONFIG``, ``demo``, ``show OUTPUT``, ``configs``, ``tasks``, ``methods``, ``--version``.

A run writes its tables to files (``results.md``, ``results.json``, ``trajectory.png``) and prints a short
summary to stdout; logs, progress bars and errors go to stderr, so ``dspy-meta run demo > summary.txt``
keeps only the summary. DSPy's own bars and prints are silenced unless ``-v`` asks for them. CONFIG is a
file, or the name of a shipped config (``dspy-meta configs`` lists them, and says which run here), so
``dspy-meta run demo`` works from any directory. ``--storage`` queues the meta methods' candidates for
``dspy-meta worker`` processes. A mistake or a missing resource (config, data, engine, path) ends with one line
on stderr, ``dspy-meta <command>: <message>``, and exit status 2 (3: finished results of other settings);
``-v`` (before or after the command) shows its traceback too.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback

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


def _configs_table() -> str:
    """One line per shipped config: its command, task, whether it runs here; what it needs on the next line."""
    from dspy_meta.cli_checks import readiness
    from dspy_meta.experiments.config import shipped_configs

    lines = [f"{'config':<38} {'command':<8} {'task':<30} runs here"]
    for name, path in shipped_configs().items():
        kind, task, needs = readiness(path)
        lines.append(f"{name:<38} {kind:<8} {task:<30} {'no' if needs else 'yes'}")
        lines += [f"    needs {'; '.join(needs)}"] if needs else []
    return "\n".join(lines)


def _show(args) -> int:
    import json
    from pathlib import Path

    path = Path(args.output)
    path = path / "results.json" if path.is_dir() else path
    if not path.is_file():
        return _fail(args, f"no results.json in {args.output}")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(results, dict) and "program_calls_cap" in results:  # a comparison's: the table it wrote
            from dspy_meta.experiments.compare_report import markdown_table

            table = path.with_suffix(".md")
            print(table.read_text(encoding="utf-8") if table.is_file() else markdown_table(results))
        else:
            from dspy_meta.experiments.runner import markdown_table

            print(markdown_table(results))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return _fail(args, f"{path} is not a results file of dspy-meta run or compare "
                           f"({type(exc).__name__}: {exc})")
    return 0


def _listing(args) -> int:
    """The commands that only read: configs, tasks, methods, show."""
    if args.command == "configs":
        print(_configs_table())
    elif args.command == "tasks":
        print(_tasks_table())
    elif args.command == "methods":
        from dspy_meta.experiments.compare_config import COMPARE_METHODS, STOCK_METHODS
        from dspy_meta.experiments.config import METHODS

        print("run (experiment configs):  " + ", ".join(METHODS))
        print("compare (stock DSPy):      " + ", ".join(STOCK_METHODS))
        print("compare (dspy-meta):       " + ", ".join(m for m in COMPARE_METHODS if m not in STOCK_METHODS))
    else:
        return _show(args)
    return 0


def _worker(args) -> int:
    from dspy_meta.distributed import StudyStorage
    from dspy_meta.experiments.worker_cli import serve_experiment_studies

    try:
        ran = serve_experiment_studies(StudyStorage(args.storage), args.study,
                                       num_threads=args.num_threads, idle_timeout=args.idle_timeout)
    except ValueError as exc:  # a storage the worker cannot use (the package's own errors: see `main`)
        return _fail(args, exc)
    print(f"dspy-meta worker: {ran} candidate(s) run here")
    return 0


def _run(args) -> int:
    """`run` and `demo`: check, then run the experiment config (or, with --dry-run, show the plan)."""
    from dspy_meta.cli_checks import check_kind, preflight, run_plan
    from dspy_meta.experiments.config import ExperimentConfig, read_yaml
    from dspy_meta.experiments.runner import output_folder, run_experiment

    data = read_yaml(args.config)
    check_kind(data, args.config, "run")
    config = ExperimentConfig.from_dict(data, source=str(args.config))
    if getattr(args, "dry_run", False):
        print(run_plan(config, getattr(args, "seeds", None), output_folder(config, args.output)))
        return 0
    preflight(config, load_task=False)  # no local engine: one line now, not a failure in every run later
    storage = None
    if getattr(args, "storage", None):
        from dspy_meta.distributed import StudyStorage

        storage = StudyStorage(args.storage, evaluate_here=not getattr(args, "workers_only", False))
    with contextlib.redirect_stdout(sys.stderr):  # whatever the run prints (-v: DSPy's bars) is not the summary
        results = run_experiment(config, seeds=getattr(args, "seeds", None), output=args.output,
                                 force=args.force, quiet=not args.verbose, storage=storage)
    print(_summary(results, output_folder(config, args.output), usage=args.command == "demo"))
    return 0


def _fail(args, message) -> int:
    """Exit status 2 with one line on stderr: ``dspy-meta <command>: <message>``."""
    from dspy_meta.cli_checks import one_line

    print(f"dspy-meta {args.command}: {one_line(message)}", file=sys.stderr)
    return 2


def _failure(args, exc: BaseException) -> int | None:
    """The exit status for an error that is the user's or the machine's, after its one line on stderr (with -v,
    its traceback first); None for anything else (a bug: its traceback shows)."""
    from dspy_meta.errors import ConfigError, DspyMetaError, StaleResults

    null_byte = isinstance(exc, ValueError) and "null byte" in str(exc)
    if not isinstance(exc, (DspyMetaError, OSError, KeyboardInterrupt)) and not null_byte:
        return None
    if getattr(args, "verbose", False):
        traceback.print_exception(exc)
    if isinstance(exc, KeyboardInterrupt):
        _fail(args, "interrupted")
        return 130
    message = str(exc) or type(exc).__name__
    if null_byte:
        message = f"a path may not contain a NUL byte ({exc})"
    _fail(args, f"invalid config: {message}" if isinstance(exc, ConfigError) else message)
    return 3 if isinstance(exc, StaleResults) else 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dspy-meta", description="Meta-optimize DSPy optimizers (metaTextGrad).")
    verbose = {"action": "store_true", "help": "log progress details, let DSPy's optimizers show their bars and "
               "prints, and show the traceback of an error"}
    parser.add_argument("-v", "--verbose", **verbose)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = argparse.ArgumentParser(add_help=False)  # the global flags, after the command too
    common.add_argument("-v", "--verbose", default=argparse.SUPPRESS, **verbose)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, parents=[common])

    command("configs", "list the shipped configs, whether each runs here, and what it needs if not")
    command("tasks", "list the benchmark tasks a config may name")
    command("methods", "list the methods of experiment and comparison configs")
    show = command("show", "print the results table of a finished run (its output folder) or comparison")
    show.add_argument("output")
    run = command("run", "run an experiment config (a file, or a shipped config's name)")
    run.add_argument("config")
    run.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    run.add_argument("--output", help="output folder (default: <output_dir>/<name>)")
    run.add_argument("--force", action="store_true",
                     help="recompute finished runs whose settings changed (default: refuse)")
    run.add_argument("--dry-run", action="store_true", help="check the config, the task data, the engines and "
                     "the model names, show the plan; call no LM")
    run.add_argument("--storage", help="queue the meta methods' candidates in this Optuna storage (a URL such as "
                     "sqlite:///runs/x.db or postgresql+psycopg2://...) for `dspy-meta worker` processes")
    run.add_argument("--workers-only", action="store_true",
                     help="with --storage: leave every candidate to the workers (default: this process runs some too)")
    worker = command("worker", "run the candidates of meta runs started with --storage")
    worker.add_argument("--storage", required=True, help="the driver's Optuna storage URL")
    worker.add_argument("--study", help="the run's study (default: every unfinished one in the storage)")
    worker.add_argument("--num-threads", type=int, help="LM requests in flight at once (default: the config's)")
    worker.add_argument("--idle-timeout", type=float,
                        help="stop after this many seconds without work (default: when the study is finished)")
    compare = command("compare", "equal-budget comparison with DSPy's own optimizers "
                      "(a file, or a shipped compare_* config's name)")
    compare.add_argument("config")
    compare.add_argument("--force", "--recompute", dest="recompute", action="store_true",
                         help="re-run finished runs whose settings changed (default: refuse)")
    compare.add_argument("--output", help="results file (default: the config's output)")
    compare.add_argument("--methods", nargs="+", metavar="METHOD",
                         help="run only these of the config's methods now (the rest stay to do; resume later)")
    compare.add_argument("--dry-run", action="store_true", help="check the config, the task data, the engines "
                         "and the model names, show the plan; call no LM")
    learn = command("learn", "meta-learn an inner optimizer across learning tasks into a bundle (resumes when "
                    "re-run)")
    learn.add_argument("config")
    demo = command("demo", "the main job: meta-optimize a small real task on the local models")
    demo.add_argument("--config", default=DEMO_CONFIG)
    demo.add_argument("--output")
    demo.add_argument("--force", action="store_true", help="recompute finished runs whose settings changed")
    return parser


def main(argv: list[str] | None = None) -> int:
    # Offline machines: litellm must not try to fetch its price table at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bad = [name for name, value in vars(args).items() if isinstance(value, str) and "\0" in value]
    if bad:
        return _fail(args, f"{bad[0]}: a path or name may not contain a NUL byte")
    try:
        if args.command in ("configs", "tasks", "methods", "show"):
            return _listing(args)
        if args.command == "worker":
            return _worker(args)
        if args.command == "compare":
            from dspy_meta.experiments.compare_cli import compare_command

            return compare_command(args)
        if args.command == "learn":
            from dspy_meta.experiments.learn_cli import learn_command

            return learn_command(args)
        return _run(args)
    except BaseException as exc:  # noqa: BLE001 -- DspyMetaError derives from BaseException
        code = _failure(args, exc)
        if code is None:
            raise
        return code


if __name__ == "__main__":
    sys.exit(main())
