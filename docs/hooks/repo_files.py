"""MkDocs hook: links from a page to repository files outside docs/ (``../benchmarks/results/x.png``).

The pages are written to read on GitHub, where such relative links work. In the site they would point
outside it, so images among them are copied into the site under ``_repo/`` and the link is rewritten to
the copy; links to other repository files (configs, source) go to the file on GitHub. Links inside docs/
are left alone, so ``mkdocs build --strict`` still checks them.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

REPO_URL = "https://github.com/dspy-meta/dspy-meta/blob/main/"
IMAGES = {".png", ".svg", ".jpg", ".jpeg", ".gif"}
_LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
_copied: dict[str, Path] = {}


def _outside_target(page_src: Path, target: str, docs_dir: Path, root: Path) -> Path | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return None
    path = Path(os.path.normpath(page_src.parent / target.split("#", 1)[0]))  # no symlink resolution
    try:
        path.relative_to(docs_dir)
        return None  # a docs page or file: mkdocs checks it
    except ValueError:
        pass
    try:
        path.relative_to(root)
    except ValueError:
        return None
    return path


def on_page_markdown(markdown, page, config, files):
    docs_dir = Path(os.path.abspath(config["docs_dir"]))
    root = docs_dir.parent
    page_src = Path(os.path.abspath(page.file.abs_src_path))

    def rewrite(match):
        target = match.group(2)
        path = _outside_target(page_src, target, docs_dir, root)
        if path is None or not path.exists():
            return match.group(0)
        relative = path.relative_to(root).as_posix()
        if path.suffix.lower() in IMAGES:
            uri = f"_repo/{relative}"
            if uri not in _copied:
                _copied[uri] = path
                files.append(File.generated(config, uri, abs_src_path=str(path)))
            new = posixpath.relpath(uri, posixpath.dirname(page.file.src_uri) or ".")
        else:
            new = REPO_URL + relative
        return f"{match.group(1)}{new}{match.group(3)}"

    return _LINK.sub(rewrite, markdown)


def on_files(files, config):
    # Copies added while pages were read in an earlier build of `mkdocs serve`: add them up front again.
    for uri, path in _copied.items():
        if files.get_file_from_path(uri) is None and os.path.exists(path):
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
