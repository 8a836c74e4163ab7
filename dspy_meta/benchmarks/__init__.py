"""The task suite: the metaTextGrad paper's kinds of task (word sorting and Dyck languages in BBH's formats,
MMLU subjects), reasoning-gym's generators, and loaders for data the package registries no longer carry
(BIG-bench's sdist, BBH and GPQA on the Hub). See `dspy_meta.benchmarks.registry` for the groups.

```python
from dspy_meta.benchmarks import load_task
task = load_task("word_sorting_generated")    # task.train / task.val / task.test, task.metric
program = task.make_program()                 # zero-shot ChainOfThought, question -> answer
```
"""

from dspy_meta.benchmarks.sources import (
    BenchmarkDataError, bigbench_task_file, bigbench_task_files, default_cache_dir, mmlu_file,
)
from dspy_meta.benchmarks.choice import (
    ChainOfThoughtChoice, extract_choice_letter, load_gpqa_diamond, load_mmlu_abstract_algebra, multiple_choice_metric,
)
from dspy_meta.benchmarks.generated import load_dyck_languages_generated, load_word_sorting_generated
from dspy_meta.benchmarks.mmlu import load_mmlu_subject
from dspy_meta.benchmarks.registry import available_tasks, load_task, offline_tasks, suite, tasks_in_group
from dspy_meta.benchmarks.tasks import (
    ChainOfThoughtQA, Task, exact_match_metric, load_bbh_dyck_languages, load_bbh_word_sorting,
    load_colored_objects, load_object_counting, load_word_sorting_short, normalize_whitespace,
    short_answer_metric,
)

__all__ = ["BenchmarkDataError", "bigbench_task_file", "bigbench_task_files", "default_cache_dir", "mmlu_file",
           "ChainOfThoughtChoice", "ChainOfThoughtQA", "Task", "available_tasks", "exact_match_metric",
           "extract_choice_letter",
           "load_bbh_dyck_languages", "load_bbh_word_sorting", "load_gpqa_diamond", "load_mmlu_abstract_algebra",
           "load_colored_objects", "load_dyck_languages_generated", "load_mmlu_subject", "load_object_counting",
           "load_task", "load_word_sorting_generated", "load_word_sorting_short", "multiple_choice_metric",
           "normalize_whitespace", "offline_tasks", "short_answer_metric", "suite", "tasks_in_group"]
