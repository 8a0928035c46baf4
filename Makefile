# The two commands of the README: `make demo` (set up, create the demo deck, serve it) and `make test`.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup demo test serve

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) -m deckchat demo --host $(HOST) --port $(PORT)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

serve:
	$(PY) -m deckchat serve --host $(HOST) --port $(PORT)
