"""``dspy-meta learn CONFIG``: run or resume a learning run; a few summary lines on stdout.

The command line it needs (the lead wires it into `dspy_meta.cli`)::

    learn = command("learn", "meta-learn an inner optimizer across learning tasks into a bundle "
                             "(resumes when re-run)")
    learn.add_argument("config")          # a learning config file (configs/learn_local.yaml)
    # -v/--verbose comes from the common parent parser
"""

from __future__ import annotations

import contextlib
import sys

__all__ = ["learn_command", "summary_lines"]


def summary_lines(bundle, config) -> list[str]:
    """The best trial, its objective and per-task gains, what was spent, where the bundle is."""
    scores, budgets = bundle.provenance.scores, bundle.provenance.budgets
    best = scores["best_trial"]
    gains = ", ".join(f"{task} {gain:+.3f}" for task, gain in scores["per_task_gain"].items())
    calls = ", ".join(f"{level} {n}" for level, n in budgets["calls_spent"].items())
    verdict = "the stock optimizer (no learned trial beat it)" if best == 0 else f"trial {best}"
    return [f"{config.name}: {config.kind} learned on {len(config.tasks)} task(s), "
            f"{budgets['trials_finished']} of {config.trials} trial(s) finished; best: {verdict}",
            f"objective (mean paired val gain over stock {config.kind}): {scores['best_objective']:+.3f} "
            f"(per task: {gains})",
            f"LM calls spent: {calls}",
            f"bundle: {config.output} (reproduce: {bundle.provenance.command}); record: "
            f"{config.work_dir}/record.json"]


def learn_command(args) -> int:
    """Run the learning config `args.config` (``args.verbose``: DSPy's own bars and prints show). Exit status 0;
    2 with one line on stderr for a bad config, a work_dir of other settings, or another error of the package;
    130 when interrupted (finished work is kept: the same command resumes)."""
    from dspy_meta.cli_checks import one_line
    from dspy_meta.errors import DspyMetaError
    from dspy_meta.experiments.learn import run_learning
    from dspy_meta.experiments.learn_config import load_learn_config

    config = None
    try:
        config = load_learn_config(args.config)
        with contextlib.redirect_stdout(sys.stderr):  # whatever the runs print is not the summary
            bundle = run_learning(config, command=f"dspy-meta learn {args.config}",
                                  quiet=not getattr(args, "verbose", False))
    except KeyboardInterrupt:
        where = f" in {config.work_dir}" if config is not None else ""
        print(f"dspy-meta learn: interrupted; finished evaluations are kept{where}: run "
              f"`dspy-meta learn {args.config}` again to resume", file=sys.stderr)
        return 130
    except DspyMetaError as exc:  # ConfigError included
        print(f"dspy-meta learn: {one_line(exc)}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(bundle, config)))
    return 0
