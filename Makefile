# `make demo` and `make test` both build .venv from pinned versions first (constraints.txt is the
# full pip freeze of a working environment; pyproject.toml pins the direct dependencies).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test test-fast test-slow venv data clean

venv: $(STAMP)

# Fashion-MNIST comes from Debian's dataset-fashion-mnist: installed here when we can (root with
# apt-get), otherwise say how (or pass --data-dir with the four idx files to `mobileprune prune`).
data:
	@if [ -f $(FASHION) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu)," \
		     "or pass --data-dir DIR with the four idx files to mobileprune prune"; exit 1; \
	fi

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,samples,tensorflow]'
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

demo: $(STAMP) data
	$(PY) examples/demo.py

# Everything CI runs: the default suite, then the slow marker (big models, long profiles).
test: $(STAMP) data
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" tests
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m slow tests

test-fast: $(STAMP) data
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" tests

clean:
	rm -rf $(VENV) build *.egg-info
