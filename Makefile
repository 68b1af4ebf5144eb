# The first two targets are the README's first two commands: they build .venv themselves.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test train-demo bench clean

demo: $(STAMP)  ## Run the Blu-WERP pipeline on the built-in sample WARC -> ./output/werp/
	$(BIN)/python -m pipelines.werp --runner=DirectRunner

test: $(STAMP)  ## Run the whole test suite, test files spread over 2 processes (CI: 2 cores, 20 min)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

train-demo: $(STAMP)  ## werp -> tokenizer -> token shards -> the tiny model on CPU -> HF export (~2 min)
	bash scripts/train_demo.sh

bench: $(STAMP)  ## Re-measure the figures in BENCHMARKS.md (minutes)
	bash bench/run_all.sh

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) output
