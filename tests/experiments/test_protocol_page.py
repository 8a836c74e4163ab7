"""The benchmark page and the README's protocol summary are generated from the committed results files."""

import subprocess
import sys
from pathlib import Path

from dspy_meta.experiments.protocol_page import render_summary

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_page_and_readme_match_the_results_files():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render_results.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_the_summary_reports_the_paired_difference_of_each_table():
    paired = {"diff": 0.06, "low": 0.01, "high": 0.11, "mcnemar_p": 0.02, "mdd": 0.045}
    results = {"task": "t", "program_calls_cap": 700, "complete": False, "seeds": [1, 2, 3],
               "reference": "mipro_v2", "defaults_reference": None,
               "methods": {"mipro_v2": {"test_mean": 0.40, "seeds": [1]},
                           "meta_teleprompter": {"test_mean": 0.46, "seeds": [1], "paired_vs_reference": paired}}}
    text = render_summary([results])
    assert ("- **t** (cap 700, incomplete, resumable): equal budget: meta_teleprompter 0.460 vs `mipro_v2` 0.400: "
            "+6.0 points [+1.0, +11.0], McNemar p=0.020, MDD 4.5 points (1 of 3 seeds); DSPy's defaults: not "
            "measured yet.") in text
