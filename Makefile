# crossent: `make demo` then `make test` on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-serve bench-peers clean

# torch is pinned exactly and installed first: this machine has a local CPU build of 2.13.0,
# while a looser range makes pip download a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,dask]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/crossent demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_cross_entropy.py
	$(PY) benchmarks/bench_linear_cross_entropy.py
	$(PY) benchmarks/bench_score.py
	$(PY) benchmarks/bench_sharded.py
	$(PY) benchmarks/bench_recsys_sequence.py
	$(PY) benchmarks/bench_recommend_all.py
	$(PY) benchmarks/bench_serve.py
	$(PY) benchmarks/bench_contention.py

# `crossent serve` under load (trains an ml-latest-small model into bench-results/ once)
bench-serve: $(STAMP)
	$(PY) benchmarks/bench_serve.py

# crossent's defaults beside RecTools' SASRec on the same split (Amazon Video; issue 19).
# RecTools lives in its own git-ignored .venv-peers, never in crossent's dependencies; torch is
# pinned and installed there first, as above. Options: make bench-peers PEERS_ARGS="--data ml"
PEERS_VENV := .venv-peers
PEERS_ARGS ?= --data video --json bench-results/peers-video.json

$(PEERS_VENV)/.installed:
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q torch==2.13.0
	$(PEERS_VENV)/bin/pip install -q "rectools[torch]==0.19.0"
	touch $@

bench-peers: $(STAMP) $(PEERS_VENV)/.installed
	mkdir -p bench-results
	$(PY) benchmarks/bench_recsys_peers.py $(PEERS_ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
