"""Regenerate docs/benchmarks.md and the README's protocol summary from benchmarks/results/suite_*.json.

    python benchmarks/render_results.py          # write both
    python benchmarks/render_results.py --check  # exit 1 when either is out of date
"""

import sys
from pathlib import Path

from dspy_meta.experiments.protocol_page import README_MARKERS, load_results, render_page, render_summary

ROOT = Path(__file__).resolve().parents[1]


def readme_with(summary: str, readme: str) -> str:
    start, end = README_MARKERS
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{summary}{end}{tail}"


def main(argv: list[str]) -> int:
    results = load_results(ROOT / "benchmarks" / "results")
    page = render_page(results)
    readme_path, page_path = ROOT / "README.md", ROOT / "docs" / "benchmarks.md"
    readme = readme_with(render_summary(results), readme_path.read_text(encoding="utf-8"))
    if "--check" in argv:
        stale = [p.name for p, text in ((page_path, page), (readme_path, readme))
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            sys.stderr.write(f"out of date: {', '.join(stale)}; run python benchmarks/render_results.py\n")
        return 1 if stale else 0
    page_path.parent.mkdir(exist_ok=True)
    page_path.write_text(page, encoding="utf-8")
    readme_path.write_text(readme, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
