"""Experiments: validated configs, the methods to compare, and the runner that writes results."""

from dspy_meta.experiments.config import ConfigError, ExperimentConfig, LMConfig, TaskConfig, load_config
from dspy_meta.experiments.runner import markdown_table, run_experiment

__all__ = ["ConfigError", "ExperimentConfig", "LMConfig", "TaskConfig", "load_config", "markdown_table",
           "run_experiment"]
