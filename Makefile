# audiolab — the two commands that matter: `make train` and `make test` (each runs `setup` first).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.audiolab-installed
EXPERIMENT ?= ddsp_transformer
ARGS ?=

.PHONY: setup train test test-all bench lint data clean

# Idempotent: (re)installs only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

train: setup
	$(PY) -m audiolab.train experiment=$(EXPERIMENT) $(ARGS)

# Fast suite (what CI runs). WANDB_MODE=disabled: tests never create W&B runs.
test: setup
	WANDB_MODE=disabled $(PY) -m pytest -m "not slow" -q $(ARGS)

test-all: setup
	WANDB_MODE=disabled $(PY) -m pytest -q $(ARGS)

bench: setup
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	$(PY) -m audiolab.bench ddsp $(ARGS)
	$(PY) -m audiolab.bench codec $(ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests

# Debian packages for real-data checks (needs root or sudo) and the `data` extra (ffmpeg for G.722), then
# prepare the embedded demo, render the DDSP unseen-instrument sets data/ddsp_instruments (FluidR3 cello /
# trumpet / flute) and build the codec corpus data/codec_corpus (speech + music).
# The apt-get line installs exactly the Debian packages of src/audiolab/data/sources.py (tests/data/test_sources.py
# checks both ways): a new data source is one entry there plus its package here.
data: setup
	@if command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    fluidsynth fluid-soundfont-gm flite asterisk-core-sounds-en-g722 sonic-pi-samples lmms-common; \
	else echo "apt-get not found: install what 'python -m audiolab.data.sources' lists as MISSING yourself"; fi
	$(PY) -m pip install --quiet -e ".[data]"
	$(PY) -m audiolab.data.sources
	$(PY) -m audiolab.prepare ddsp input_dir=embedded
	$(PY) -m audiolab.models.ddsp.demo --instruments data/ddsp_instruments
	$(PY) -m audiolab.prepare codec_corpus out_dir=data/codec_corpus

clean:
	rm -rf logs outputs multirun wandb .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
