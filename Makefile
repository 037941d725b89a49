# audiolab — the two commands that matter: `make train` and `make test` (each runs `setup` first).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.audiolab-installed
EXPERIMENT ?= ddsp_transformer
ARGS ?=

.PHONY: setup train test test-all bench lint data clean tokenlm-codec tokenlm-data kick-pipeline

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
	$(PY) -m audiolab.bench tokenlm $(ARGS)
	$(PY) -m audiolab.bench kick $(ARGS)
	$(PY) -m pip install --quiet --no-deps "espnet==202511"
	$(PY) -m audiolab.bench tse $(ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests

# Debian packages for real-data checks (needs root or sudo) and the `data` extra (ffmpeg for G.722), then
# prepare the embedded demo, render the DDSP unseen-instrument sets data/ddsp_instruments (FluidR3 cello /
# trumpet / flute), build the codec corpus data/codec_corpus (speech + music), the token-LM music audio,
# the TSE speaker corpus data/tse_corpus and the kick set data/kick
# (the packages' kicks + soundfont renders + 2,000 synthetic labelled kicks).
# The apt-get line installs exactly the Debian packages of src/audiolab/data/sources.py (tests/data/test_sources.py
# checks both ways): a new data source is one entry there plus its package here.
data: setup
	@if command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    fluidsynth fluid-soundfont-gm flite asterisk-core-sounds-en-g722 sonic-pi-samples \
	    lmms-common hydrogen-data avldrums.lv2-soundfont chromium chromium-driver \
	    festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k festvox-itapc16k \
	    festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph festvox-suopuhe-lj \
	    festvox-suopuhe-mv festvox-ca-ona-hts ktuberling-data wamerican; \
	else echo "apt-get not found: install what 'python -m audiolab.data.sources' lists as MISSING yourself"; fi
	$(PY) -m pip install --quiet -e ".[data]"
	$(PY) -m audiolab.data.sources
	$(PY) -m audiolab.prepare ddsp input_dir=embedded
	$(PY) -m audiolab.models.ddsp.demo --instruments data/ddsp_instruments
	$(PY) -m audiolab.prepare codec_corpus out_dir=data/codec_corpus
	$(PY) -m audiolab.prepare tokenlm_music out_dir=data/tokenlm_music $(if $(TOKENLM_CODEC),codec=$(TOKENLM_CODEC))
	$(PY) -m audiolab.prepare kick_data out_dir=data/kick
	$(PY) -m audiolab.prepare tse_corpus out_dir=data/tse_corpus

# Token-LM data needs a trained codec, which the repo does not ship. `make tokenlm-codec` trains the small CPU codec
# the token-LM study used (16 kHz, 4 x 1024 codes at 50 Hz, 1000 steps: ~20-40 min on 2 cores; resumes if stopped);
# `make tokenlm-data` then tokenizes data/tokenlm_music into data/tokenlm_music/tokens. Bring your own codec with
# `make tokenlm-data TOKENLM_CODEC=path/to/codec.ckpt` (or `make data TOKENLM_CODEC=...`).
TOKENLM_CODEC_RUN := logs/tokenlm_codec/runs/codec16k_q4
tokenlm-codec: setup
	OMP_NUM_THREADS=1 $(PY) -m audiolab.train experiment=codec_unbounded task_name=tokenlm_codec run_name=codec16k_q4 \
	  ckpt_path=last_or_new logger=csv seed=0 data.root=data/codec_corpus data.sample_rate=16000 data.batch_size=8 \
	  data.crop_seconds=1.0 model.codec.seanet.n_filters=16 model.codec.seanet.dimension=64 model.codec.seanet.lstm=0 \
	  model.codec.quantizer.n_q=4 model.codec.quantizer.threshold_ema_dead_code=0.05 model.optim.optimizer.lr=1e-3 \
	  trainer.max_steps=1000 trainer.val_check_interval=500 trainer.limit_val_batches=5 callbacks.probe.every_n_steps=100 \
	  callbacks.probe.n_examples=8 model.diagnostics.every_n_steps=1000 'model.eval_bandwidths=[]'

tokenlm-data: setup
	@codec="$(TOKENLM_CODEC)"; if [ -z "$$codec" ]; then \
	  codec=$(TOKENLM_CODEC_RUN)/checkpoints/probe_best.ckpt; \
	  [ -f "$$codec" ] || $(MAKE) tokenlm-codec; fi; \
	$(PY) -m audiolab.prepare tokenlm_music out_dir=data/tokenlm_music codec=$$codec

# The kick pipeline chained through checkpoints (experiments/kick_diffusion): VAE, vocoder, then U-Net + both.
RUN ?= kick
kick-pipeline: setup
	$(PY) -m audiolab.train experiment=kick_vae run_name=$(RUN) $(ARGS)
	$(PY) -m audiolab.train experiment=kick_hifigan run_name=$(RUN) $(ARGS)
	$(PY) -m audiolab.train experiment=kick_pipeline run_name=$(RUN) $(ARGS)

clean:
	rm -rf logs outputs multirun wandb .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
