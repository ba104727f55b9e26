# Two commands for a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install install-test node browser services postgres serve viewer test test-postgres bench bench-targets load clean

# What serving needs (the package and its runtime dependencies); the test tools come with `make test`.
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

serve: install
	$(VENV)/bin/dicomweb-origin serve --data data --demo --host $(HOST) --port $(PORT)

# Fetch the pinned OHIF viewer (npm pack, cached in .ohif/) and serve it at / beside the demo archive.
viewer: install node
	dist=$$($(PY) scripts/fetch_ohif.py) && $(VENV)/bin/dicomweb-origin serve --data data --demo --viewer "$$dist" \
		--host $(HOST) --port $(PORT)

# Debian packages a command needs, installed only when the machine lacks them (as root: apt-get): npm (`npm pack`
# fetches the pinned OHIF viewer) and, for the OHIF end-to-end test, Chromium (playwright drives it; no browser
# download). apt-get waits up to 10 minutes for the dpkg and package-list locks another apt holds (an unattended
# upgrade on a fresh machine) instead of failing at once.
APT = apt-get -o DPkg::Lock::Timeout=600
APT_INSTALL = $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq --no-install-recommends

node:
	@command -v npm >/dev/null 2>&1 || { $(APT_INSTALL) nodejs npm >/dev/null; }

browser: node
	@command -v chromium >/dev/null 2>&1 || { $(APT_INSTALL) chromium fonts-liberation >/dev/null; }

# A real S3 server (Ceph radosgw, started by the tests on loopback) and nginx (the multi-process test).
services:
	@command -v radosgw >/dev/null 2>&1 || { $(APT_INSTALL) ceph-mon ceph-osd radosgw ceph-common >/dev/null; }
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { $(APT_INSTALL) nginx-light >/dev/null; }

# PostgreSQL for the index tests (tests/support/postgres.py runs initdb in a temporary directory, on a free loopback port).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(APT_INSTALL) postgresql >/dev/null; }

# The whole suite on the embedded archive (SQLite + files), then again with the fixtures' archives on PostgreSQL
# and S3 (DICOMWEB_TEST_INDEX, DICOMWEB_TEST_BLOBS, read by tests/conftest.py); the browser tests run once.
test: install-test browser postgres services
	$(PY) -m pytest -n 2 -q
	$(MAKE) --no-print-directory test-postgres

test-postgres: install-test postgres services
	DICOMWEB_TEST_INDEX=postgresql DICOMWEB_TEST_BLOBS=s3 $(PY) -m pytest -n 2 -q --ignore=tests/e2e_ohif --ignore=tests/e2e_browser

# Issue 18's figures beside Orthanc 1.13 and nginx sending the same bytes (benchmarks/compare.py), viewer capacity
# (viewers.py) and OHIF itself in Chromium (ohif.py), ~12 min on 2 cores. Orthanc 1.13 is built in ORTHANC_DIR when
# missing (root, debootstrap); without it the Orthanc column is left out and the output says so.
# BENCH_ARGS go to compare.py (e.g. "--rounds 9 --only frame-1,frame-8"); SERVER_ARGS to every server we start.
ORTHANC_DIR ?= /work/orthanc
BENCH_ARGS ?=
SERVER_ARGS ?=
BENCH_SERVER = $(addprefix --server-arg=,$(SERVER_ARGS))
bench: install-test browser
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { $(APT_INSTALL) nginx-light >/dev/null; }
	@$(PY) benchmarks/anchors.py build $(ORTHANC_DIR)
	$(PY) benchmarks/compare.py --orthanc $(ORTHANC_DIR) $(BENCH_SERVER) $(BENCH_ARGS)
	$(PY) benchmarks/viewers.py --orthanc $(ORTHANC_DIR) $(BENCH_SERVER)
	$(PY) benchmarks/ohif.py --orthanc $(ORTHANC_DIR) $(BENCH_SERVER)

# The design targets of the scripts before issue 18 (ingest, retrieve vs the page cache, memory, frames,
# search, rendered, volumes), each printed beside its target.
bench-targets: install-test
	$(PY) benchmarks/retrieve.py && $(PY) benchmarks/frames.py && $(PY) benchmarks/search.py && $(PY) benchmarks/rendered.py && $(PY) benchmarks/volumes.py

# Mixed load: 32 clients for 300 s (CLIENTS=, DURATION= to change); prints requests/s, p50/p99 per kind, RSS.
CLIENTS ?= 32
DURATION ?= 300
load: install-test
	$(PY) benchmarks/load.py --clients $(CLIENTS) --seconds $(DURATION)

clean:
	rm -rf $(VENV) data
