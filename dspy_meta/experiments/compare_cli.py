"""``dspy-meta compare CONFIG`` (and ``python benchmarks/compare.py CONFIG``): run or resume a comparison."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["compare_command"]


def compare_command(args) -> int:
    """Run the comparison `args.config`; print its table. Exit status 2 on a bad or changed config."""
    from dspy_meta.experiments.compare import ConfigChanged, run_comparison
    from dspy_meta.experiments.compare_config import load_compare_config
    from dspy_meta.experiments.compare_report import markdown_table
    from dspy_meta.experiments.config import ConfigError

    try:
        config = load_compare_config(args.config)
        results = run_comparison(config, recompute=args.recompute, output=args.output)
    except (ConfigError, ConfigChanged) as exc:
        print(f"dspy-meta compare: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output or config.output)
    print(markdown_table(results))
    print(f"wrote {output}, {output.with_suffix('.md')} and {output.with_suffix('.png')}")
    return 0
