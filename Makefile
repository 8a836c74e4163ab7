# One-command entry points (see README.md).
PYTHON ?= $(shell command -v python >/dev/null 2>&1 && echo python || echo python3)
# llama.cpp's native build uses CPU instructions (AMX) some machines advertise but trap: build portably.
LLAMA_CMAKE_ARGS = -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF

.PHONY: setup demo test test-fast test-local test-postgres docs

# The portable build is installed unless exactly llama-cpp-python 0.3.36 is already there (another version
# would make the pinned `local` extra rebuild it natively).
setup:
	@$(PYTHON) -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '0.3.36')" 2>/dev/null || \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PYTHON) -m pip install --no-cache-dir llama-cpp-python==0.3.36
	$(PYTHON) -m pip install -q -e '.[dev,benchmarks,local]'

demo: setup
	LITELLM_LOCAL_MODEL_COST_MAP=True $(PYTHON) -m dspy_meta demo

# The README's test command: the fast suite, then the real-local-model tests as a separate step.
test: test-fast test-local

# Scripted LMs and real benchmark files; no model, no API key.
test-fast:
	$(PYTHON) -m pip install -q -e '.[dev,benchmarks]'
	$(PYTHON) -m pytest -q -rs  # -rs: say which tests were skipped and why (e.g. BIG-bench files unavailable)

# The distributed tests against a real PostgreSQL server: installs Debian's package if needed, starts a
# throwaway cluster, runs the tests marked postgres, removes the cluster (.ci/run's step after the fast suite).
test-postgres:
	PYTHON=$(PYTHON) bash .ci/postgres_tests.sh

# Tests against the real local model (tests marked local_lm); `setup` builds and installs it first.
test-local: setup
	$(PYTHON) -m pytest -q -m local_lm

# The documentation site (docs/, mkdocs.yml) into site/; --strict fails on any warning (a broken link or anchor,
# a page left out of the nav, an API reference that does not resolve). `mkdocs serve` previews it.
docs:
	$(PYTHON) -m pip install -q -e '.[docs]'
	$(PYTHON) -m mkdocs build --strict
