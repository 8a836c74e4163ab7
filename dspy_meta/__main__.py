import sys

from dspy_meta.cli import main

sys.exit(main())
