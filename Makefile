# Entry points: `make repro` (set up, run the study), `make quick` (a small study in build/quick/)
# and `make test` (set up, run the tests).
# Every step is idempotent, so both work on a fresh machine and cost nothing when already done.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DVC    := $(VENV)/bin/dvc
STAMP  := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup data repro quick test bench docs clean-results

setup: $(STAMP) data .dvc/plots_offline.html
	@git rev-parse --git-dir >/dev/null 2>&1 || git init -q
	@[ -d .dvc ] || $(DVC) init -q

# `dvc plots show` with Vega, Vega-Lite and vega-embed inlined (named in .dvc/config.local)
.dvc/plots_offline.html: $(STAMP)
	$(PY) -m analysis.dvc_plots --offline-template

$(STAMP): pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[study,test,docs]'
	touch $(STAMP)

# Fashion-MNIST comes from Debian's package; install it when we are root and apt exists.
data:
	@if [ ! -d $(FMNIST) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	fi
	@[ -d $(FMNIST) ] || [ -n "$$IP_DATA_ROOT" ] || echo "note: $(FMNIST) missing; install Debian's dataset-fashion-mnist or set data.root"

# stage commands call `python`: the venv's interpreter must come first on PATH.
# First the stages dvc repro will run, with an estimate of each (pipeline/plan.py).
repro: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pipeline.plan
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(DVC) repro

# every stage on a small setting (presets/quick.yaml), in build/quick/: results and dvc.lock untouched
quick: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m study.quick

# the suite's files are spread over TEST_WORKERS processes (one file stays in one process:
# module fixtures such as the end-to-end study are built once); TEST_WORKERS=0 runs it in one.
# A worker that dies (a crash in native code) ends the run as a failure naming its test:
# xdist would otherwise restart it and, with --dist loadfile, can wait for it forever.
TEST_WORKERS ?= 2
test: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--max-worker-restart 0

# the API reference from the docstrings; fails first if an exported name has none
DOC_MODULES = ip ip.interspace ip.masks ip.pruning ip.train ip.metrics ip.theory ip.sparse_files ip.factorised \
	ip.models ip.onednn_guard ip.connectivity
docs: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/test_packaging.py -k docstring
	rm -rf docs/api
	$(PY) -m pdoc $(DOC_MODULES) -o docs/api --docformat restructuredtext --no-show-source

bench: setup
	$(PY) benchmarks/step_time.py
	$(PY) benchmarks/mask_time.py
	$(PY) benchmarks/hessian.py

# On a CUDA machine: SP/IP throughput of the CIFAR ResNet-32 preset's model and ResNet-50
# (a few minutes, synthetic data); elsewhere it says there is no GPU and succeeds.
.PHONY: gpu-check
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py
