"""Summary, Markdown table and plot of a comparison, from its per-run records."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from dspy_meta.experiments.compare_config import OPTIMIZING_METHODS, STOCK_METHODS
from dspy_meta.experiments.stats import mean_std, paired_difference

__all__ = ["summarize", "markdown_table", "plot"]

LEVELS = ("program", "optimizer", "meta")


def _mean(values) -> float:
    values = list(values)
    return statistics.fmean(values) if values else 0.0


def summarize(records: list[dict], methods: list[str], seeds: list[int]) -> dict[str, Any]:
    """Per method: per-seed lists (in seed order, finished seeds only), means, usage; the reference
    (the stock optimizer with the best mean validation score) and each method's paired test difference."""
    by_key = {(r["method"], r["seed"]): r for r in records}
    summary: dict[str, dict] = {}
    for method in methods:
        runs = [by_key[(method, s)] for s in seeds if (method, s) in by_key]
        if not runs:
            continue
        entry = {"stock": method in STOCK_METHODS, "optimizing": method in OPTIMIZING_METHODS,
                 "seeds": [r["seed"] for r in runs], "val": [r["val"] for r in runs], "test": [r["test"] for r in runs],
                 "program_calls": [r["usage"]["program"]["calls"] for r in runs],
                 "inference_calls_per_example": _mean(r["inference_calls_per_example"] for r in runs),
                 "hit_cap": [r["hit_cap"] for r in runs], "errors": [r["error"] for r in runs if r.get("error")],
                 "wall_seconds": [r["compile_seconds"] for r in runs],
                 "usage": {level: {k: _mean(r["usage"][level][k] for r in runs)
                                   for k in ("calls", "input_tokens", "output_tokens")} for level in LEVELS}}
        entry["val_mean"], entry["val_std"] = mean_std(entry["val"])
        entry["test_mean"], entry["test_std"] = mean_std(entry["test"])
        summary[method] = entry
    stock_optimizers = [m for m in summary if summary[m]["stock"] and summary[m]["optimizing"]]
    reference = max(stock_optimizers, key=lambda m: (summary[m]["val_mean"], summary[m]["test_mean"]), default=None)
    if reference is not None:
        for method, entry in summary.items():
            common = [s for s in entry["seeds"] if s in summary[reference]["seeds"]]
            if method == reference or not common:
                continue
            entry["paired_vs_reference"] = paired_difference(
                [by_key[(method, s)]["test_scores"] for s in common],
                [by_key[(reference, s)]["test_scores"] for s in common])
            entry["paired_vs_reference"]["seeds"] = common
    return {"reference": reference, "methods": summary}


def _cell(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def markdown_table(results: dict[str, Any]) -> str:
    info, summary, ref = results["task_info"], results["methods"], results["reference"]
    lines = [f"**{results['task']}** ({info['description']}); train/val/test = {'/'.join(map(str, info['sizes']))}; "
             f"program-LM call cap {results['program_calls_cap']} per optimizing run; seeds {results['seeds']}; "
             f"reference = best stock optimizer on validation: `{ref}`.", "",
             "| method | stock | seeds run | val | test | Δ test vs ref [90% CI] | program calls | optimizer calls | meta calls "
             "| tokens in/out (all levels) | compile s | inference calls / example | hit cap |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, e in summary.items():
        usage = e["usage"]
        paired = e.get("paired_vs_reference")
        delta = "reference" if method == ref else (
            f"{paired['diff']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}]" if paired else "–")
        tokens_in = sum(u["input_tokens"] for u in usage.values())
        tokens_out = sum(u["output_tokens"] for u in usage.values())
        calls = e["program_calls"]
        lines.append(
            f"| {method} | {'yes' if e['stock'] else 'no'} | {len(e['seeds'])} | {_cell(e['val_mean'], e['val_std'])} | "
            f"{_cell(e['test_mean'], e['test_std'])} | {delta} | {_mean(calls):.0f} (max {max(calls)}) | "
            f"{usage['optimizer']['calls']:.0f} | {usage['meta']['calls']:.0f} | {tokens_in:.0f}/{tokens_out:.0f} | "
            f"{_mean(e['wall_seconds']):.1f} | {e['inference_calls_per_example']:.2f} | "
            f"{sum(e['hit_cap'])}/{len(e['hit_cap'])} |")
    missing = [f"{m} seed {s}" for m in results["config"]["methods"] for s in results["seeds"]
               if m not in summary or s not in summary[m]["seeds"]]
    lines += ["", "Mean ± sample std over the seeds run (same splits for every seed); calls, tokens and wall "
              "time are means per run while optimizing (wall time on a shared machine: noisy). Δ: paired mean "
              "difference on the same test examples and seeds, 90% bootstrap interval over test examples."]
    if missing:
        lines.append(f"Not run yet (the comparison is incomplete; rerun the command to resume): {', '.join(missing)}.")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Test accuracy against program-LM calls spent optimizing: one point per method and seed, means marked."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # not pyplot: no backend switch, no global figure (safe in notebooks)

    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    colors = colormaps["tab10"]
    for i, (method, e) in enumerate(results["methods"].items()):
        color = colors(i % 10)
        jitter = [(j - (len(e["test"]) - 1) / 2) * 0.4 for j in range(len(e["test"]))]
        ax.scatter([c + d for c, d in zip(e["program_calls"], jitter, strict=True)], e["test"], color=color,
                   alpha=0.55, s=22, marker="s" if e["stock"] else "o")
        ax.scatter([_mean(e["program_calls"])], [e["test_mean"]], color=color, s=140, marker="X" if e["stock"] else "*",
                   edgecolors="black", linewidths=0.6, label=f"{method}{'' if e['stock'] else ' (ours)'}")
    ax.axvline(results["program_calls_cap"], color="grey", linestyle="--", linewidth=1, label="call cap")
    ax.set_xlabel("program-LM calls spent optimizing")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{results['task']}: small markers one seed, large markers the mean")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
