"""A DSPy 3.4 engine that batches concurrent requests on one llama.cpp context (continuous batching).

The sequential `LlamaCppEngine` decodes one request at a time; on CPU a decode step of one token costs
nearly as much as a step of eight, so requests that arrive together are decoded together here: one
sequence id per request in a unified KV cache, per-sequence sampler chains (the same chain
llama-cpp-python builds, grammar included, so JSON mode is batched too) and the model's own chat
template. The weights are those of the sequential engine's `Llama` (one model in memory per file);
only the batched context's cache and buffers are extra.

Fall-back: a model whose chat format llama-cpp-python does not take from the GGUF template (no template,
or one it maps to a built-in format) is served by the sequential engine, request by request.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import uuid
from typing import Any

from dspy.lm15 import Message, Response, TextPart, Usage

from dspy_meta.lm.continuous_batch import ContinuousBatcher, Job
from dspy_meta.runtime.calls import cancelled
from dspy_meta.lm.llama_engine import (DEFAULT_MAX_TOKENS, LlamaCppEngine, SampleSeeds, asks_for_json,
                                       request_messages)

__all__ = ["BatchedLlamaEngine", "LlamaBackend", "default_slots"]

logger = logging.getLogger(__name__)

_CELLS_PER_SLOT = 1024  # default cache: this many cells per slot, and never less than one full window
_N_UBATCH = 256  # physical batch: the attention buffer grows with ubatch x cache cells, throughput does not


def default_slots() -> int:
    """Sequences decoded at once: 8 per core, at most 16 (16 on 2 cores). Measured on 2 idle cores
    (benchmarks/local_engine.py, 0.5B, 40 requests, flash attention): 4 slots 40.5 s, 8 slots 35.9 s,
    16 slots 34.1 s; the 1.5B model gained more from 16 slots than the 0.5B (92.8 s vs 116.3 s with 4)."""
    return max(2, min(16, 8 * (os.cpu_count() or 1)))


class LlamaBackend:
    """The model work of `ContinuousBatcher` on llama-cpp-python's low-level bindings."""

    def __init__(self, llama, *, slots: int, kv_cells: int, n_batch: int, n_threads: int, flash_attn: bool = True):
        import llama_cpp as C

        self._C = C
        # The sequential context's settings (attention kind, rope, cache types), so both decode alike.
        params = C.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx, params.n_batch, params.n_ubatch = kv_cells, n_batch, min(_N_UBATCH, n_batch)
        params.n_seq_max, params.kv_unified = slots, True  # unified: sequences share prefix cells by reference
        params.n_threads = params.n_threads_batch = n_threads
        # Flash attention: on 2 cores, 8 slots, 40 requests, 39.8 s -> 35.9 s, same score (local_engine.py).
        params.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else C.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._model = llama._model  # keeps the weights alive as long as this context
        self.ctx = C.llama_init_from_model(llama._model.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a batched context ({slots} slots, {kv_cells} cells)")
        self.mem = C.llama_get_memory(self.ctx)
        self.vocab = llama._model.vocab
        self.batch = C.llama_batch_init(n_batch, 0, 1)
        self._pieces: dict[int, bytes] = {}

    def decode(self, entries) -> int:
        batch = self.batch
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
            batch.seq_id[i][0] = seq
        batch.n_tokens = len(entries)
        return self._C.llama_decode(self.ctx, batch)

    def new_sampler(self, job: Job):
        """llama-cpp-python's chain for these settings (its repeat-penalty stage is a no-op at 1.0)."""
        C = self._C
        chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        stages = []
        if job.grammar is not None:
            stages.append(C.llama_sampler_init_grammar(self.vocab, job.grammar.encode(), b"root"))
        if job.temperature < 0:
            stages.append(C.llama_sampler_init_dist(job.seed))
        elif job.temperature == 0:
            stages.append(C.llama_sampler_init_greedy())
        else:
            stages += [C.llama_sampler_init_top_k(40), C.llama_sampler_init_typical(1.0, 1),
                       C.llama_sampler_init_top_p(job.top_p, 1), C.llama_sampler_init_min_p(0.05, 1),
                       C.llama_sampler_init_temp(job.temperature), C.llama_sampler_init_dist(job.seed)]
        for stage in stages:
            if not stage:
                C.llama_sampler_free(chain)
                raise RuntimeError("llama.cpp could not build a sampler (bad grammar?)")
            C.llama_sampler_chain_add(chain, stage)  # the chain owns and frees its stages
        return chain

    def sample(self, sampler, index: int) -> int:
        return self._C.llama_sampler_sample(sampler, self.ctx, index)  # also accepts the token (grammar state)

    def free_sampler(self, sampler) -> None:
        self._C.llama_sampler_free(sampler)

    def seq_rm(self, seq: int, p0: int, p1: int) -> None:
        self._C.llama_memory_seq_rm(self.mem, seq, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        self._C.llama_memory_seq_cp(self.mem, src, dst, p0, p1)

    def is_eog(self, token: int) -> bool:
        return bool(self._C.llama_vocab_is_eog(self.vocab, token))

    def piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buffer = ctypes.create_string_buffer(256)
            n = self._C.llama_token_to_piece(self.vocab, token, buffer, 256, 0, False)  # special tokens: no text
            piece = self._pieces[token] = buffer.raw[:max(n, 0)]
        return piece

    def close(self) -> None:
        if self.ctx:
            self._C.llama_batch_free(self.batch)
            self._C.llama_free(self.ctx)
            self.ctx = None


class BatchedLlamaEngine:
    """Engine protocol (`complete(Request) -> Response`) decoding concurrent requests together.

    Args:
        model_path, n_ctx, n_threads, default_max_tokens, seed, name: as in `LlamaCppEngine`; `n_ctx` is
            the window of one request.
        slots: requests decoded at once (default `default_slots()`); callers should send at least this
            many concurrently (``num_threads``) to fill the batch.
        kv_cells: cache cells shared by all slots (default ``max(n_ctx, 1024 * slots)``); a request waits
            while the running ones could need all of it.
        n_batch: tokens per decode step (prompt chunks fill what generation leaves).
        batch_threads: CPU threads of the batched context (default: `n_threads`, else all cores). On a
            machine shared with other busy processes 1 can be several times faster than 2: llama.cpp's
            threads spin at a barrier after every operation, and a descheduled partner stalls each one.
        flash_attn: llama.cpp's flash attention in the batched context (default on: faster, and its answers
            at temperature 0 may differ from the sequential engine's, which runs without it).
        base: the sequential engine whose model to share (default: a new one for `model_path`).
    """

    def __init__(self, model_path: str | os.PathLike, *, n_ctx: int = 4096, n_threads: int | None = None,
                 default_max_tokens: int = DEFAULT_MAX_TOKENS, seed: int = 0, name: str | None = None,
                 slots: int | None = None, kv_cells: int | None = None, n_batch: int = 512,
                 batch_threads: int | None = None, flash_attn: bool = True, base: LlamaCppEngine | None = None):
        self._owns_base = base is None
        self.base = base or LlamaCppEngine(model_path, n_ctx=n_ctx, n_threads=n_threads,
                                           default_max_tokens=default_max_tokens, seed=seed, name=name)
        self.model_path, self.name = self.base.model_path, name or self.base.name
        self.n_ctx, self.default_max_tokens = n_ctx, default_max_tokens
        self.slots = slots or default_slots()
        self.kv_cells = kv_cells or max(n_ctx, _CELLS_PER_SLOT * self.slots)
        self.n_batch = max(n_batch, self.slots)
        self.batch_threads = batch_threads
        self.flash_attn = flash_attn
        self._seeds = SampleSeeds(seed)
        self._lock = threading.Lock()
        self._batcher: ContinuousBatcher | None = None
        self._backend: LlamaBackend | None = None
        self._sequential_only = False

    def _ready(self):
        """(llama, formatter, eos text), building the batched context on first use."""
        with self._lock:
            llama = self.base.llama()
            if self._batcher is None and not self._sequential_only:
                self._formatter = self._template_formatter(llama)
                if self._formatter is None:
                    logger.warning("%s: no GGUF chat template in use; serving it sequentially", self.name)
                    self._sequential_only = True
                else:
                    self._backend = LlamaBackend(llama, slots=self.slots, kv_cells=self.kv_cells,
                                                 n_batch=self.n_batch,
                                                 n_threads=self.batch_threads or self.base.n_threads
                                                 or os.cpu_count() or 1, flash_attn=self.flash_attn)
                    self._batcher = ContinuousBatcher(self._backend, slots=self.slots, kv_cells=self.kv_cells,
                                                      n_batch=self.n_batch)
            return llama

    @staticmethod
    def _template_formatter(llama):
        """The formatter `Llama` itself builds from the GGUF template (None when it uses another format)."""
        from llama_cpp import llama_chat_format

        template = llama.metadata.get("tokenizer.chat_template")
        if not template or llama.chat_format != "chat_template.default" or llama.chat_handler is not None:
            return None
        eos, bos = llama.token_eos(), llama.token_bos()
        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llama._model.token_get_text(bos) if bos != -1 else "", stop_token_ids=[eos])
        return formatter

    @property
    def stats(self) -> dict[str, int]:
        """Counters of the batcher: decode steps, prompt tokens decoded/kept/shared, generated tokens."""
        return dict(self._batcher.stats) if self._batcher is not None else {}

    def complete(self, request) -> Response:
        llama = self._ready()
        if self._sequential_only:
            return self.base.complete(request)
        messages = request_messages(request)
        config = request.config
        temperature = 0.0 if config.temperature is None else config.temperature
        rendered = self._formatter(messages=messages)
        prompt = llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        if len(prompt) >= self.n_ctx:
            raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {self.n_ctx}")
        max_tokens = config.max_tokens or self.default_max_tokens
        max_tokens = min(max_tokens, self.n_ctx - len(prompt))  # llama-cpp-python's truncation to the window
        stops = [*(config.stop or []), *(rendered.stop if isinstance(rendered.stop, list) else [rendered.stop])]
        json_mode = config.response_format is not None or asks_for_json(messages)
        job = Job(prompt=prompt, max_tokens=max_tokens, stops=tuple(s.encode("utf-8") for s in stops if s),
                  temperature=temperature, top_p=0.95 if config.top_p is None else config.top_p,
                  seed=config.seed if config.seed is not None else self._seeds(messages, temperature),
                  grammar=_json_grammar() if json_mode else None, given_up=cancelled())
        self._batcher.run(job)
        return Response(
            id=f"chatcmpl-{uuid.uuid4()}", model=self.name,
            message=Message.assistant([TextPart(job.text.decode("utf-8", errors="ignore"))]),
            finish_reason=job.finish_reason,
            usage=Usage(input_tokens=len(prompt), output_tokens=job.n_output,
                        total_tokens=len(prompt) + job.n_output),
        )

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        with self._lock:
            if self._batcher is not None:
                self._batcher.close()
                self._backend.close()
                self._batcher = self._backend = None
        if self._owns_base:  # a shared sequential engine is closed by its owner (after this engine)
            self.base.close()


def _json_grammar() -> str:
    from llama_cpp.llama_grammar import JSON_GBNF  # the grammar llama-cpp-python uses for json_object

    return JSON_GBNF


_SHARED: dict[tuple, BatchedLlamaEngine] = {}
_SHARED_LOCK = threading.Lock()


def shared_batched_engine(base: LlamaCppEngine, **settings: Any) -> BatchedLlamaEngine:
    """One batched engine per (sequential engine, settings) per process, on that engine's model."""
    key = (id(base), tuple(sorted(settings.items())))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = BatchedLlamaEngine(base.model_path, n_ctx=base.n_ctx, n_threads=base.n_threads,
                                              default_max_tokens=base.default_max_tokens, seed=base.seed,
                                              name=base.name, base=base, **settings)
        return _SHARED[key]
