# Two commands for a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install serve test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

serve: install
	$(VENV)/bin/dicomweb-origin serve --data data --demo

test: install
	$(PY) -m pytest -n 2 -q

bench: install
	$(PY) benchmarks/retrieve.py

clean:
	rm -rf $(VENV) data
