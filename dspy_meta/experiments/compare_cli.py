"""``dspy-meta compare CONFIG`` (and ``python benchmarks/compare.py CONFIG``): run or resume a comparison."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

__all__ = ["compare_command"]


def _summary(results: dict, output: Path) -> str:
    """A few lines: per method, validation and test mean and the paired test difference against the reference;
    where the table is."""
    from dspy_meta.experiments.compare_report import TABLES, resolving_note

    lines = [f"{results['task']}: program-LM call cap {results['program_calls_cap']}; seeds {results['seeds']}"]
    for table, key, ref in (("equal_budget", "paired_vs_reference", results["reference"]),
                            ("defaults", "paired_vs_defaults_reference", results.get("defaults_reference"))):
        rows = {m: e for m, e in results["methods"].items() if table in e.get("tables", ("equal_budget",))}
        if not rows:
            continue
        lines += [TABLES[table], f"  {resolving_note(results, table)}",
                  f"  {'method':<27} {'val':>6} {'test':>6}  test vs {ref} [95% CI]  McNemar p  MDD"]
        for method, entry in rows.items():
            paired = entry.get(key)
            delta = "reference" if method == ref else (
                f"{paired['diff']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}]  {paired['mcnemar_p']:.3f}  "
                f"{paired['mdd']:.3f}" if paired else "-")
            lines.append(f"  {method:<27} {entry['val_mean']:>6.3f} {entry['test_mean']:>6.3f}  {delta}")
    lines.append(f"table: {output.with_suffix('.md')}; results: {output}; plot: {output.with_suffix('.png')}")
    return "\n".join(lines)


def compare_command(args) -> int:
    """Run the comparison `args.config` (with ``args.dry_run``: check it and show the plan, no LM call); print a
    short summary (the table is written to a file). Exit status 2 on a changed config; the package's errors (a
    bad config, missing data or engine) propagate to `dspy_meta.cli.main`, which prints them on one line."""
    from dspy_meta.cli_checks import check_kind, compare_plan, one_line, preflight
    from dspy_meta.experiments.compare import ConfigChanged, run_comparison
    from dspy_meta.experiments.compare_config import CompareConfig
    from dspy_meta.experiments.config import ConfigError, read_yaml

    data = read_yaml(args.config)
    check_kind(data, args.config, "compare")
    config = CompareConfig.from_dict(data, source=str(args.config))
    only = getattr(args, "methods", None)
    if only:
        unknown = [m for m in only if m not in config.methods]
        if unknown:
            raise ConfigError(f"--methods: {unknown} not in the config's methods {list(config.methods)}")
    if getattr(args, "dry_run", False):
        print(compare_plan(config, args.output, only))
        return 0
    preflight(config, load_task=False)  # no local engine: one line now, not a failure in every run later
    Path(args.output or config.output).parent.mkdir(parents=True, exist_ok=True)  # unwritable: now, not after a run
    try:
        with contextlib.redirect_stdout(sys.stderr):  # whatever the runs print (-v: DSPy's bars) is not the summary
            results = run_comparison(config, recompute=args.recompute, output=args.output,
                                     quiet=not getattr(args, "verbose", False), only=only)
    except ConfigChanged as exc:
        print(f"dspy-meta compare: {one_line(exc)}", file=sys.stderr)
        return 2
    print(_summary(results, Path(args.output or config.output)))
    return 0
