"""Learned optimizers: inner optimizers and plans meta-learned offline across tasks, shipped as bundles."""

from dspy_meta.learning.bundle import BUNDLE_FORMAT, LearnedBundle, Provenance, load_bundle, shipped_bundles

__all__ = ["BUNDLE_FORMAT", "LearnedBundle", "Provenance", "load_bundle", "shipped_bundles"]
