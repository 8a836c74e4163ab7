"""Quick A/B of the two local engines on the same 8 zero-shot CoT requests of the demo task, in one process on
one model copy: the sequential engine (8 callers, serialized), then the batched engine (8 at once), twice.
Run:  PYTHONPATH=. python benchmarks/local_engine_ab.py BATCH_THREADS   (prints one line per round)
"""
import time
from concurrent.futures import ThreadPoolExecutor
import dspy
from dspy.lm15 import Message, Response, TextPart, Usage
from dspy_meta.benchmarks import load_task
from dspy_meta.lm.registry import assemble_model
from dspy_meta.lm.llama_engine import LlamaCppEngine
from dspy_meta.lm.batched_engine import BatchedLlamaEngine
task = load_task("bigbench_word_sorting_short", n_val=8, max_words=3, n_train=10, n_test=40, seed=0)
class Rec:
    def __init__(self): self.reqs=[]
    def complete(self, r):
        self.reqs.append(r)
        return Response(id="x", model="x", message=Message.assistant([TextPart("[[ ## reasoning ## ]]\nx\n\n[[ ## answer ## ]]\nx\n\n[[ ## completed ## ]]")]), finish_reason="stop", usage=Usage(input_tokens=1, output_tokens=1, total_tokens=2))
rec = Rec()
with dspy.context(lm=dspy.LM("local/x", engine=rec, cache=False, max_tokens=200)):
    prog = task.make_program()
    for ex in task.val: prog(**ex.inputs())
path = assemble_model("qwen2.5-coder-0.5b")
seq = LlamaCppEngine(path, n_threads=2)
import sys; bat = BatchedLlamaEngine(path, base=seq, slots=8, batch_threads=int(sys.argv[1]))
txt = lambda x: x.message.parts[0].text
for rnd in range(2):
    t = time.perf_counter()
    with ThreadPoolExecutor(8) as ex: a = list(ex.map(seq.complete, rec.reqs))
    ts = time.perf_counter() - t
    t = time.perf_counter()
    with ThreadPoolExecutor(8) as ex: b = list(ex.map(bat.complete, rec.reqs))
    tb = time.perf_counter() - t
    print("round", rnd, "seq %.1fs bat %.1fs ratio %.2f same %d/8 out_tokens %d/%d" % (ts, tb, ts / tb, sum(txt(x) == txt(y) for x, y in zip(a, b)), sum(x.usage.output_tokens for x in a), sum(y.usage.output_tokens for y in b)), bat.stats, flush=True)
