"""Command line: ``dspy-meta run CONFIG``, ``dspy-meta compare CONFIG`` and ``dspy-meta demo``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

DEMO_CONFIG = "configs/demo.yaml"


def _before_after(results: dict) -> str:
    summary = results["summary"]
    lines = ["", "                       val     test   (held-out test: " f"{results['task']['sizes'][2]} examples)"]
    for method, entry in summary.items():
        lines.append(f"  {method:<20} {entry['val']['mean']:.3f}   {entry['test']['mean']:.3f}")
    lines.append("")
    lines.append("  LM usage while optimizing   calls   input tokens   output tokens")
    for method, entry in summary.items():
        for level, usage in entry["usage"].items():
            if usage["calls"]:
                lines.append(f"  {method:<14} {level:<10} {usage['calls']:>6.0f}   {usage['input_tokens']:>12.0f}   "
                             f"{usage['output_tokens']:>13.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    # Offline machines: litellm must not try to fetch its price table at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    parser = argparse.ArgumentParser(prog="dspy-meta", description="Meta-optimize DSPy optimizers (metaTextGrad).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an experiment config (configs/*.yaml)")
    run.add_argument("config")
    run.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    run.add_argument("--output", help="output folder (default: <output_dir>/<name>)")
    run.add_argument("--force", action="store_true",
                     help="recompute finished runs whose settings changed (default: refuse)")
    compare = commands.add_parser("compare", help="equal-budget comparison with DSPy's own optimizers "
                                  "(configs/compare_*.yaml)")
    compare.add_argument("config")
    compare.add_argument("--force", "--recompute", dest="recompute", action="store_true",
                         help="re-run finished runs whose settings changed (default: refuse)")
    compare.add_argument("--output", help="results file (default: the config's output)")
    demo = commands.add_parser("demo", help="the main job: meta-optimize a small real task on the local models")
    demo.add_argument("--config", default=DEMO_CONFIG)
    demo.add_argument("--output")
    demo.add_argument("--force", action="store_true", help="recompute finished runs whose settings changed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from dspy_meta.errors import StaleResults
    from dspy_meta.experiments.config import ConfigError, load_config

    if args.command == "compare":
        from dspy_meta.experiments.compare_cli import compare_command

        return compare_command(args)
    from dspy_meta.experiments.runner import markdown_table, output_folder, run_experiment
    from dspy_meta.runtime.redact import redact

    try:
        config = load_config(args.config)
        results = run_experiment(config, seeds=getattr(args, "seeds", None), output=args.output, force=args.force)
    except ConfigError as exc:
        print(f"dspy-meta: invalid config: {redact(exc)}", file=sys.stderr)
        return 2
    except StaleResults as exc:
        print(f"dspy-meta: {redact(exc)}", file=sys.stderr)
        return 3
    out_dir = output_folder(config, args.output)
    print(markdown_table(results))
    if args.command == "demo":
        print(_before_after(results))
    print(f"\nwrote {out_dir}/results.json, results.md, trajectory.png and the optimized programs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
