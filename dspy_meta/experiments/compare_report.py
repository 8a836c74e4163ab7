"""Summary, Markdown tables and plot of a comparison, from its per-run records.

Two tables per task: (a) **equal budget**, every optimizing method under the config's program-call cap,
and (b) **DSPy's defaults**, each optimizer as a user runs it (no cap), with its actual cost. Each table
has its reference (its best stock optimizer on validation); every other row carries the paired test
difference against it with a 95% interval, McNemar's p and the minimum detectable difference (MDD).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from dspy_meta.experiments.compare_config import (
    BASELINE_METHOD, DEFAULTS_METHODS, OPTIMIZING_METHODS, PROTOCOL_MIN_SEEDS, PROTOCOL_MIN_TEST, PROTOCOL_MIN_VAL,
    STOCK_METHODS,
)
from dspy_meta.experiments.stats import mean_std, paired_difference

__all__ = ["TABLES", "summarize", "markdown_table", "plot", "resolving_note"]

LEVELS = ("program", "optimizer", "meta")
TARGET_GAIN = 0.05  # the gain the protocol is sized to resolve
# table key -> (title, which methods it holds); the unoptimized program appears in both.
TABLES = {"equal_budget": "(a) equal budget: every optimizing method under the program-call cap",
          "defaults": "(b) DSPy's defaults: each optimizer as a user runs it, no cap, actual cost"}


def _mean(values) -> float:
    values = list(values)
    return statistics.fmean(values) if values else 0.0


def table_of(method: str) -> tuple[str, ...]:
    """The tables a method's row appears in."""
    if method == BASELINE_METHOD:
        return tuple(TABLES)
    return ("defaults",) if method in DEFAULTS_METHODS else ("equal_budget",)


def _test_interval(runs: list[dict]) -> tuple[float, float]:
    """95% interval of the mean test accuracy: per example, the mean over seeds; normal approximation."""
    n = len(runs[0]["test_scores"])
    per_example = [_mean(r["test_scores"][i] for r in runs) for i in range(n)]
    mean = _mean(per_example)
    half = 1.96 * (statistics.stdev(per_example) / math.sqrt(n) if n > 1 else 0.0)
    return mean - half, mean + half


def summarize(records: list[dict], methods: list[str], seeds: list[int]) -> dict[str, Any]:
    """Per method: per-seed lists (in seed order, finished seeds only), means, usage, the test interval; per
    table its reference (the stock optimizer with the best mean validation score) and each row's paired test
    statistics against it (``paired_vs_reference`` in table (a), ``paired_vs_defaults_reference`` in (b))."""
    by_key = {(r["method"], r["seed"]): r for r in records}
    summary: dict[str, dict] = {}
    for method in methods:
        runs = [by_key[(method, s)] for s in seeds if (method, s) in by_key]
        if not runs:
            continue
        entry = {"stock": method in STOCK_METHODS, "optimizing": method in OPTIMIZING_METHODS,
                 "tables": list(table_of(method)),
                 "seeds": [r["seed"] for r in runs], "val": [r["val"] for r in runs], "test": [r["test"] for r in runs],
                 "program_calls": [r["usage"]["program"]["calls"] for r in runs],
                 "inference_calls_per_example": _mean(r["inference_calls_per_example"] for r in runs),
                 "hit_cap": [r["hit_cap"] for r in runs], "errors": [r["error"] for r in runs if r.get("error")],
                 "wall_seconds": [r["compile_seconds"] for r in runs],
                 "usage": {level: {k: _mean(r["usage"][level][k] for r in runs)
                                   for k in ("calls", "input_tokens", "output_tokens")} for level in LEVELS}}
        entry["val_mean"], entry["val_std"] = mean_std(entry["val"])
        entry["test_mean"], entry["test_std"] = mean_std(entry["test"])
        entry["test_ci95"] = list(_test_interval(runs))
        summary[method] = entry
    references = {}
    for table, key in (("equal_budget", "paired_vs_reference"), ("defaults", "paired_vs_defaults_reference")):
        rows = [m for m in summary if table in summary[m]["tables"]]
        candidates = [m for m in rows if summary[m]["stock"] and summary[m]["optimizing"]]
        reference = max(candidates, key=lambda m: (summary[m]["val_mean"], summary[m]["test_mean"]), default=None)
        references[table] = reference
        if reference is None:
            continue
        for method in rows:
            entry = summary[method]
            common = [s for s in entry["seeds"] if s in summary[reference]["seeds"]]
            if method == reference or not common:
                continue
            entry[key] = paired_difference([by_key[(method, s)]["test_scores"] for s in common],
                                           [by_key[(reference, s)]["test_scores"] for s in common])
            entry[key]["seeds"] = common
    return {"reference": references["equal_budget"], "defaults_reference": references["defaults"],
            "methods": summary}


def _cell(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def resolving_note(results: dict[str, Any], table: str) -> str:
    """One line: whether the table can tell a 5-point gain from noise (its largest MDD against the
    reference), and whether its sizes meet the protocol."""
    key = "paired_vs_reference" if table == "equal_budget" else "paired_vs_defaults_reference"
    rows = [e[key] for e in results["methods"].values() if key in e and table in e["tables"]]
    n_val, n_test = results["task_info"]["sizes"][1:]
    seeds = len(results["seeds"])
    protocol = ("meets the protocol" if n_val >= PROTOCOL_MIN_VAL and n_test >= PROTOCOL_MIN_TEST
                and seeds >= PROTOCOL_MIN_SEEDS else
                f"BELOW THE PROTOCOL (needs val >= {PROTOCOL_MIN_VAL}, test >= {PROTOCOL_MIN_TEST}, "
                f"{PROTOCOL_MIN_SEEDS} seeds)")
    sizes = f"val {n_val}, test {n_test}, {seeds} seed(s): {protocol}"
    if not rows:
        return f"Resolving power: no paired row yet ({sizes})."
    mdd = max(row["mdd"] for row in rows)
    verdict = ("resolves 5 points" if mdd <= TARGET_GAIN else
               f"CANNOT RESOLVE 5 POINTS (a difference must exceed {mdd * 100:.1f} points)")
    return (f"Resolving power: {verdict}; largest minimum detectable difference against the reference "
            f"{mdd * 100:.1f} points (80% power, 5% two-sided, at the observed disagreement); {sizes}.")


def _table(results: dict[str, Any], table: str) -> list[str]:
    key, ref = (("paired_vs_reference", results["reference"]) if table == "equal_budget" else
                ("paired_vs_defaults_reference", results.get("defaults_reference")))
    rows = {m: e for m, e in results["methods"].items() if table in e["tables"]}
    if not rows:
        return []
    cap = f"program-LM call cap {results['program_calls_cap']} per run" if table == "equal_budget" else "no cap"
    lines = [f"### {TABLES[table]}", "", f"{resolving_note(results, table)} {cap}; reference = best stock optimizer "
             f"on validation: {f'`{ref}`' if ref else 'none run yet'}.", "",
             "| method | stock | seeds | val | test [95% CI] | Δ test vs ref [95% CI] | McNemar p | MDD | "
             "program calls | optimizer calls | meta calls | compile s | hit cap |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, e in rows.items():
        usage, paired, calls = e["usage"], e.get(key), e["program_calls"]
        if method == ref:
            delta, p, mdd = "reference", "", ""
        elif paired:
            delta = f"{paired['diff']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}]"
            p, mdd = f"{paired['mcnemar_p']:.3f}", f"{paired['mdd']:.3f}"
        else:
            delta, p, mdd = "–", "", ""
        low, high = e["test_ci95"]
        lines.append(
            f"| {method} | {'yes' if e['stock'] else 'no'} | {len(e['seeds'])} | {_cell(e['val_mean'], e['val_std'])} | "
            f"{e['test_mean']:.3f} [{low:.3f}, {high:.3f}] | {delta} | {p} | {mdd} | {_mean(calls):.0f} "
            f"(max {max(calls)}) | {usage['optimizer']['calls']:.0f} | {usage['meta']['calls']:.0f} | "
            f"{_mean(e['wall_seconds']):.1f} | {sum(e['hit_cap'])}/{len(e['hit_cap'])} |")
    return lines + [""]


def markdown_table(results: dict[str, Any]) -> str:
    info = results["task_info"]
    lines = [f"**{results['task']}** ({info['description']}); train/val/test = {'/'.join(map(str, info['sizes']))}; "
             f"seeds {results['seeds']}.", ""]
    for table in TABLES:
        lines += _table(results, table)
    missing = [f"{m} seed {s}" for m in results["config"]["methods"] for s in results["seeds"]
               if m not in results["methods"] or s not in results["methods"][m]["seeds"]]
    lines += ["Val and test: mean ± sample std over the seeds run (same splits for every seed); the test "
              "interval is over test examples (per example, the mean over seeds). Δ: paired mean difference on "
              "the same test examples and seeds, 95% bootstrap interval over test examples; McNemar: exact, "
              "two-sided, over every (seed, example) pair; MDD: the smallest difference one seed's test set "
              "detects at 80% power given the observed disagreement rate. The unoptimized program "
              f"(`{BASELINE_METHOD}`) is scored once and shared by every seed. Calls and wall time are means per "
              "run while optimizing (wall time on a shared machine: noisy)."]
    if missing:
        lines.append(f"Not run yet (the comparison is incomplete; rerun the command to resume): {', '.join(missing)}.")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Test accuracy against program-LM calls spent optimizing: one point per method and seed, the mean with
    its 95% interval as an error bar."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # not pyplot: no backend switch, no global figure (safe in notebooks)

    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    colors = colormaps["tab10"]
    for i, (method, e) in enumerate(results["methods"].items()):
        color = colors(i % 10)
        jitter = [(j - (len(e["test"]) - 1) / 2) * 0.4 for j in range(len(e["test"]))]
        ax.scatter([c + d for c, d in zip(e["program_calls"], jitter, strict=True)], e["test"], color=color,
                   alpha=0.45, s=18, marker="s" if e["stock"] else "o")
        low, high = e["test_ci95"]
        ax.errorbar([_mean(e["program_calls"])], [e["test_mean"]],
                    yerr=[[e["test_mean"] - low], [high - e["test_mean"]]], color=color, capsize=4,
                    marker="X" if e["stock"] else "*", markersize=11, markeredgecolor="black", linewidth=1.2,
                    label=f"{method}{'' if e['stock'] else ' (ours)'}")
    ax.axvline(results["program_calls_cap"], color="grey", linestyle="--", linewidth=1, label="call cap")
    ax.set_xscale("symlog", linthresh=100)
    ax.set_xlabel("program-LM calls spent optimizing")
    ax.set_ylabel("test accuracy (mean, 95% interval)")
    ax.set_title(f"{results['task']}: small markers one seed, large markers the mean")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
