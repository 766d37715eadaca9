# lmrec — two commands: `make demo` and `make test`. Both create .venv when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED_DATA := $(abspath ../shared/datasets)
ifneq ($(wildcard $(SHARED_DATA)),)
export LMREC_DATA_DIR ?= $(SHARED_DATA)
endif

.PHONY: venv demo serve test test-slow lint typecheck bench bench-text bench-diversity bench-load clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: a plain `torch` would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,serve,privacy]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lmrec demo

# The HTTP service over a run of `make demo` (SERVE_RUN=... for another); store: runs/service.db.
# Make a key first: .venv/bin/lmrec keys create --scope read. SERVE_WORKERS=2: one process
# per core.
SERVE_RUN ?= runs/demo/sasrec
SERVE_WORKERS ?= 1
serve: $(STAMP)
	$(VENV)/bin/lmrec serve $(SERVE_RUN) --workers $(SERVE_WORKERS)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/run_baselines.py
	$(PY) bench/readme_tables.py

# The language-model rows (hours on a 2-core CPU: the trained-encoder rows start from the
# frozen runs) and the CTR re-ranking tables.
bench-text: $(STAMP)
	$(PY) bench/run_baselines.py --no-implicit --threads 1 --models text-mean text-frozen \
		text-fusion text-topk text-lora text-full
	$(PY) bench/run_ctr.py --dataset ml-100k --retrieval runs/bench/text-fusion-ml100k \
		--max-examples 10000 --users 300 --threads 1
	$(PY) bench/run_ctr.py --dataset amazon-scientific \
		--retrieval runs/bench/text-fusion-scientific --max-examples 10000 --users 300 --threads 1
	$(PY) bench/readme_tables.py

# The accuracy/diversity curve over λ (MMR, DPP) of the text-fusion and SASRec runs of
# `make bench-text` / `make bench` (runs/bench; the text-mean runs give Amazon's ILD space)
# and the default λ (~12 min on one thread).
bench-diversity: $(STAMP)
	$(PY) bench/run_diversity.py --threads 1
	$(PY) bench/readme_tables.py

# The service under concurrent clients (bench/results/load.md): ML-100K and a synthetic
# 100,000-item catalog (its SASRec run is trained once into runs/load, ~10 min). Uses wrk
# when it is installed (apt-get install wrk), else the script's own asyncio client.
bench-load: $(STAMP)
	$(PY) bench/run_load.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
