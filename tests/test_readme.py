"""The README is a front page: short, its two commands real, its links alive, its license and citation there."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _targets(text: str) -> list[str]:
    outside_code = re.sub(r"```.*?```", "", text, flags=re.S)
    return [t for t in LINK.findall(outside_code) if not re.match(r"^[a-z]+:", t) and not t.startswith("#")]


def test_the_readme_is_a_front_page_of_at_most_200_lines():
    assert len(README.splitlines()) <= 200
    for section in ("## The two commands", "## Install", "## Quickstart", "## A drop-in for `dspy.MIPROv2`",
                    "## Benchmarks", "## Citation", "## License"):
        assert section in README, section


def test_the_two_commands_are_make_targets_and_ci_runs_the_test_command():
    assert "make demo" in README and "make test" in README
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = dict(re.findall(r"^([\w-]+):[ \t]*([^\n=]*)$", makefile, re.M))
    assert {"demo", "test", "docs"} <= set(targets)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_steps = set(re.findall(r"^make ([\w-]+)", ci, re.M))
    # .ci/run calls `make test` itself, or every step it is made of.
    assert "test" in ci_steps or set(targets["test"].split()) <= ci_steps
    assert "docs" in ci_steps


def test_every_relative_link_of_the_readme_and_the_changelog_exists():
    for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md"):
        text = (ROOT / name).read_text(encoding="utf-8")
        for target in _targets(text):
            assert (ROOT / target.split("#", 1)[0]).exists(), f"{name} links to {target}, which does not exist"
    assert any(t.endswith(".png") for t in _targets(README))  # the one picture


def test_the_protocol_summary_markers_stay_and_link_the_benchmark_page():
    start, end = "<!-- protocol-results:start -->", "<!-- protocol-results:end -->"
    assert README.count(start) == 1 and README.count(end) == 1 and README.index(start) < README.index(end)
    assert "docs/benchmarks.md" in README[README.index("## Benchmarks"):]


def test_license_and_citation():
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in project["classifiers"])
    assert "Apache-2.0" in README[README.index("## License"):]
    bibtex = re.search(r"```bibtex\n(.*?)```", README, re.S)
    assert bibtex and "metaTextGrad" in bibtex.group(1) and "2505.18524" in bibtex.group(1)


def test_the_pypi_description_is_short_with_absolute_links():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    readme = ROOT / project["readme"]["file"]
    text = readme.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 40
    assert not _targets(text), "the PyPI page cannot resolve relative links"
