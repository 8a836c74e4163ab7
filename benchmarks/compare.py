"""Equal-budget comparison with DSPy's own optimizers: ``python benchmarks/compare.py CONFIG [--recompute]``.

The same as ``dspy-meta compare CONFIG``; see the README section "Equal-budget comparison".
"""

import sys

from dspy_meta.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
