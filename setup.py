"""Build step only (the metadata is in pyproject.toml): ship the repository's ``configs/*.yaml`` in the wheel
as ``dspy_meta/configs/``, so ``dspy-meta run demo`` finds them once installed. ``configs/`` stays the one copy;
a checkout reads it in place (`dspy_meta.experiments.config.shipped_configs`)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).resolve().parent / "configs"


class BuildPyWithConfigs(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads configs/ in place
            return
        target = Path(self.build_lib) / "dspy_meta" / "configs"
        self.mkpath(str(target))
        for config in sorted(CONFIGS.glob("*.yaml")):
            self.copy_file(str(config), str(target / config.name))


setup(cmdclass={"build_py": BuildPyWithConfigs})
