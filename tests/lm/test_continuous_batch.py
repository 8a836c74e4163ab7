"""The batch scheduler against a fake model whose next token depends on the whole KV cache of its sequence:
any bookkeeping slip (a missing, stale or foreign cache cell) changes the answers."""

import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from dspy_meta.lm.continuous_batch import ContinuousBatcher, Job, common_prefix

EOG = 0


def next_token(tokens: list[int]) -> int:
    return zlib.crc32(bytes(str(tokens), "ascii")) % 27  # 0 ends the answer, 1..26 are letters


def piece(token: int) -> bytes:
    return bytes([96 + token])


def reference(job: Job) -> tuple[bytes, int, str]:
    """What one request alone would produce (the sequential loop)."""
    tokens, out, n = list(job.prompt), bytearray(), 0
    while True:
        token = next_token(tokens)
        if token == EOG:
            return bytes(out), n, "stop"
        n += 1
        out += piece(token)
        hits = [s for s in job.stops if s in out]
        if hits:
            return bytes(out[:out.index(hits[0])]), n, "stop"
        if n >= job.max_tokens:
            return bytes(out), n, "length"
        tokens.append(token)


class FakeBackend:
    """Cells are ids; sequences map positions to cells; a copy shares cells, as a unified llama.cpp cache does."""

    def __init__(self, kv_cells: int):
        self.kv_cells = kv_cells
        self.cells: dict[int, int] = {}  # cell id -> token
        self.seqs: dict[int, dict[int, int]] = {}  # seq -> {pos: cell}
        self.next_cell = 0
        self.batches: list[list[tuple]] = []
        self.samplers_open = 0
        self.fail_next = False
        self.delay = 0.0  # seconds per decode, to let other threads submit mid-generation

    def _in_use(self) -> int:
        return len({cell for seq in self.seqs.values() for cell in seq.values()})

    def decode(self, entries) -> int:
        if self.fail_next:
            self.fail_next = False
            return -3
        self.batches.append(list(entries))
        time.sleep(self.delay)
        for token, pos, seq, _ in entries:
            cells = self.seqs.setdefault(seq, {})
            assert pos not in cells, "position written twice"
            assert pos == 0 or pos - 1 in cells, "hole in a sequence"
            self.cells[self.next_cell] = token
            cells[pos] = self.next_cell
            self.next_cell += 1
        assert self._in_use() <= self.kv_cells, "cache overflow"
        return 0

    def sample(self, sampler, index: int) -> int:
        _, pos, seq, logits = self.batches[-1][index]
        assert logits
        cells = self.seqs[seq]
        assert sorted(cells) == list(range(pos + 1)), "sampling from a sequence with stale or missing cells"
        return next_token([self.cells[cells[p]] for p in range(pos + 1)])

    def new_sampler(self, job):
        self.samplers_open += 1
        return object()

    def free_sampler(self, sampler):
        self.samplers_open -= 1

    def seq_rm(self, seq, p0, p1):
        cells = self.seqs.setdefault(seq, {})
        for pos in [p for p in cells if p >= max(p0, 0) and (p1 < 0 or p < p1)]:
            del cells[pos]

    def seq_cp(self, src, dst, p0, p1):
        for pos, cell in self.seqs[src].items():
            if pos >= p0 and (p1 < 0 or pos < p1):
                self.seqs.setdefault(dst, {})[pos] = cell

    def is_eog(self, token):
        return token == EOG

    def piece(self, token):
        return piece(token)


def jobs_with_shared_prefixes(n: int, **kwargs) -> list[Job]:
    system = [7, 3, 9, 1, 4] * 6  # 30 tokens every prompt starts with
    return [Job(prompt=system + [i % 5 + 1] * (3 + i % 4) + [i + 1], max_tokens=5 + i % 7, **kwargs) for i in range(n)]


def run_all(batcher: ContinuousBatcher, jobs: list[Job], threads: int) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(batcher.run, jobs))


@pytest.mark.parametrize("slots,n_batch", [(1, 8), (3, 8), (4, 64), (8, 512)])
def test_concurrent_jobs_get_the_sequential_answers(slots, n_batch):
    backend = FakeBackend(kv_cells=4096)
    batcher = ContinuousBatcher(backend, slots=slots, kv_cells=4096, n_batch=n_batch)
    jobs = jobs_with_shared_prefixes(14)
    run_all(batcher, jobs, threads=6)
    batcher.close()
    for job in jobs:
        assert (job.text, job.n_output, job.finish_reason) == reference(job)
    assert backend.samplers_open == 0
    assert max(len({seq for _, _, seq, _ in batch}) for batch in backend.batches) <= slots


def test_shared_prefixes_are_computed_once():
    backend = FakeBackend(kv_cells=4096)
    batcher = ContinuousBatcher(backend, slots=4, kv_cells=4096, n_batch=512)
    jobs = jobs_with_shared_prefixes(8)
    run_all(batcher, jobs, threads=8)
    batcher.close()
    prompt_tokens = sum(len(job.prompt) for job in jobs)
    stats = batcher.stats
    assert stats["prompt_tokens_decoded"] + stats["prompt_tokens_shared"] + stats["prompt_tokens_kept"] == prompt_tokens
    assert stats["prompt_tokens_decoded"] < prompt_tokens - 6 * 30  # the 30-token prefix: decoded at most twice


def test_requests_join_while_others_generate():
    backend = FakeBackend(kv_cells=4096)
    backend.delay = 0.005
    batcher = ContinuousBatcher(backend, slots=4, kv_cells=4096, n_batch=512)
    long_job = Job(prompt=next(p for p in ([5, 6, k] for k in range(1, 500)) if _runs_long(p)), max_tokens=50)
    started = threading.Thread(target=batcher.run, args=(long_job,))
    started.start()
    while not backend.batches:
        time.sleep(0.001)
    late = Job(prompt=[1, 2, 3, 4], max_tokens=3)
    batcher.run(late)
    started.join()
    batcher.close()
    mixed = [b for b in backend.batches if len({seq for _, _, seq, _ in b}) == 2]
    assert mixed, "the late request never shared a step with the running one"
    assert (late.text, late.n_output, late.finish_reason) == reference(late)


def _runs_long(prompt) -> bool:
    _, n, reason = reference(Job(prompt=list(prompt), max_tokens=50))
    return reason == "length"


def test_stop_sequences_and_length():
    backend = FakeBackend(kv_cells=4096)
    batcher = ContinuousBatcher(backend, slots=2, kv_cells=4096)
    free = jobs_with_shared_prefixes(10)
    run_all(batcher, free, threads=2)
    stop_jobs = []
    for job in free:  # stop on the second letter each answer produced (when it had two)
        if len(job.text) >= 2:
            stop_jobs.append(Job(prompt=job.prompt, max_tokens=job.max_tokens, stops=(b"zz", job.text[1:2])))
    run_all(batcher, stop_jobs, threads=3)
    batcher.close()
    assert stop_jobs and all(job.finish_reason == "stop" and len(job.text) <= 1 for job in stop_jobs)
    assert all((j.text, j.n_output, j.finish_reason) == reference(j) for j in stop_jobs)
    assert any(job.finish_reason == "length" and job.n_output == job.max_tokens for job in free)


def test_small_cache_never_overflows_and_everything_finishes():
    need = max(len(j.prompt) + j.max_tokens for j in jobs_with_shared_prefixes(12))
    backend = FakeBackend(kv_cells=need + 10)  # one request at a time fits, two rarely do
    batcher = ContinuousBatcher(backend, slots=4, kv_cells=need + 10, n_batch=16)
    jobs = jobs_with_shared_prefixes(12)
    run_all(batcher, jobs, threads=6)
    batcher.close()
    assert all((j.text, j.n_output, j.finish_reason) == reference(j) for j in jobs)
    with pytest.raises(ValueError, match="cache cells"):
        ContinuousBatcher(FakeBackend(8), slots=1, kv_cells=8).run(Job(prompt=[1] * 6, max_tokens=5))


def test_a_failed_step_fails_its_requests_and_the_engine_goes_on():
    backend = FakeBackend(kv_cells=4096)
    batcher = ContinuousBatcher(backend, slots=2, kv_cells=4096)
    backend.fail_next = True
    with pytest.raises(RuntimeError, match="llama_decode returned -3"):
        batcher.run(Job(prompt=[1, 2, 3], max_tokens=4))
    job = batcher.run(Job(prompt=[1, 2, 3], max_tokens=4))
    batcher.close()
    assert (job.text, job.n_output, job.finish_reason) == reference(job)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.run(Job(prompt=[1], max_tokens=1))


def test_common_prefix():
    assert common_prefix([1, 2, 3, 4], [1, 2, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix(list(range(1000)), list(range(999)) + [0]) == 999
