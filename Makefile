# Two commands for a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install browser serve viewer test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

serve: install
	$(VENV)/bin/dicomweb-origin serve --data data --demo

# Fetch the pinned OHIF viewer (npm pack, cached in .ohif/) and serve it at / beside the demo archive.
viewer: install
	dist=$$($(PY) scripts/fetch_ohif.py) && $(VENV)/bin/dicomweb-origin serve --data data --demo --viewer "$$dist"

# Debian's Chromium for the OHIF end-to-end test (playwright drives it; no browser is downloaded).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; }

test: install browser
	$(PY) -m pytest -n 2 -q

bench: install
	$(PY) benchmarks/retrieve.py

clean:
	rm -rf $(VENV) data
