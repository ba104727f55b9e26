# Two commands for a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install node browser services serve viewer test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

serve: install
	$(VENV)/bin/dicomweb-origin serve --data data --demo

# Fetch the pinned OHIF viewer (npm pack, cached in .ohif/) and serve it at / beside the demo archive.
viewer: install node
	dist=$$($(PY) scripts/fetch_ohif.py) && $(VENV)/bin/dicomweb-origin serve --data data --demo --viewer "$$dist"

# Debian packages a command needs, installed only when the machine lacks them: npm (`npm pack` fetches the
# pinned OHIF viewer) and, for the OHIF end-to-end test, Chromium (playwright drives it; no browser download).
APT_INSTALL = apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends

node:
	@command -v npm >/dev/null 2>&1 || { $(APT_INSTALL) nodejs npm >/dev/null; }

browser: node
	@command -v chromium >/dev/null 2>&1 || { $(APT_INSTALL) chromium fonts-liberation >/dev/null; }

# A real S3 server (Ceph radosgw, started by the tests on loopback) and nginx (the multi-process test).
services:
	@command -v radosgw >/dev/null 2>&1 || { $(APT_INSTALL) ceph-mon ceph-osd radosgw ceph-common >/dev/null; }
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { $(APT_INSTALL) nginx-light >/dev/null; }

test: install browser services
	$(PY) -m pytest -n 2 -q

bench: install
	$(PY) benchmarks/retrieve.py && $(PY) benchmarks/frames.py && $(PY) benchmarks/search.py && $(PY) benchmarks/rendered.py

clean:
	rm -rf $(VENV) data
