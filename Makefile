# `make demo` and `make test` both build .venv from pinned versions first (constraints.txt is the
# full pip freeze of a working environment; pyproject.toml pins the direct dependencies).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: demo test test-fast test-slow venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,samples,tensorflow]'
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# Everything CI runs: the default suite, then the slow marker (big models, long profiles).
test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" tests
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m slow tests

test-fast: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" tests

clean:
	rm -rf $(VENV) build *.egg-info
