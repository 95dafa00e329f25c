# make demo: the app on http://127.0.0.1:7860   make test: the test suite (offline, CPU)
# make models: retrain the default models in models/, every stage in order (hours on 2 CPU cores)
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

# Stage 1 from scratch, then the later stages (<task>-2.yaml, ...) each starting from the one before
# (age-4 goes through two gender cycles written to runs/age-via-gender, then back to age).
MODEL_STAGES ?= gender gender-2 gender-3 age age-2 age-3 age-4-via-gender-1 age-4-via-gender-2 age-4 mood mood-2
models: venv
	for stage in $(MODEL_STAGES); do $(BIN)/python -m finetune --config finetune/configs/$$stage.yaml || exit 1; done
