# make demo: the app on http://127.0.0.1:7860   make test: the test suite (offline, CPU)
# make models: retrain the default models in models/ from their recipes (finetune/recipes.yaml; hours on 2 CPU cores)
# make bench: the speed table (benchmarks/README.md); BENCH_ARGS='--section e2e --runs 50'
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test bench models

venv: $(STAMP)

# Reinstall only when the dependencies (pyproject.toml) change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

demo: venv
	$(BIN)/python app.py

test: venv
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m pytest -q

bench: venv
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m benchmarks $(BENCH_ARGS)

# Each task's recipe: its stages in order (done ones skipped, an interrupted one resumed), the last published
# to models/<task>. The tasks whose data is in ../shared; `make models MODEL_TASKS=mood` for one.
MODEL_TASKS ?= gender age mood
models: venv
	$(BIN)/python -m finetune recipe $(MODEL_TASKS)
