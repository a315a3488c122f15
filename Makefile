# `make demo` and `make test` both build .venv from pinned versions first (constraints.txt is the
# full pip freeze of a working environment; pyproject.toml pins the direct dependencies).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

RUNNER := build/runner-host/mobileprune_runner

.PHONY: demo demo-int8 test test-fast test-slow venv data runner runner-arm64 tools arm64-tools clean results

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

# What the tests need besides Python: a C++ toolchain and CMake for the host build of the
# on-device runner, Debian's adb client (it talks to the tests' ADB daemon), and Chromium (the
# report's page is checked in a real browser, tests/test_report.py). Installed here when we can
# (root with apt-get), otherwise say how. Each command is its Debian package's name.
TOOLS := cmake g++ make adb chromium
tools:
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
		echo "missing:$$missing; run 'sudo apt-get install$$missing' (Debian/Ubuntu)"; exit 1; \
	fi

# The on-device runner built for this machine against the pinned executorch wheel (android_runner/).
runner: $(RUNNER)
$(RUNNER): android_runner/runner.cpp android_runner/CMakeLists.txt $(STAMP) | tools
	cmake -S android_runner -B build/runner-host -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_PREFIX_PATH="$$($(PY) -c 'import executorch; print(list(executorch.__path__)[0])')"
	cmake --build build/runner-host

# The runner for 64-bit ARM, which the tests run on an emulated arm64 device (tests/adbd): cross-
# compiled (android_runner/aarch64-linux-gnu.cmake) against the aarch64 build of the pinned
# executorch wheel (its headers, CMake config and libexecutorch*.so, fetched by pip for that
# platform), run by qemu-user. Needs Debian's g++-aarch64-linux-gnu and qemu-user, and the kernel
# told to hand aarch64 programs to qemu (binfmt_misc, qemu-user-binfmt's rule): done here as root
# with apt-get, otherwise say how.
ET_VERSION = $(shell sed -n 's/^executorch==//p' constraints.txt)
ARM64_ET := build/executorch-aarch64/executorch
RUNNER_ARM64 := build/runner-arm64-v8a/mobileprune_runner
BINFMT := /proc/sys/fs/binfmt_misc

runner-arm64: $(RUNNER_ARM64)
$(RUNNER_ARM64): android_runner/runner.cpp android_runner/CMakeLists.txt android_runner/aarch64-linux-gnu.cmake \
		$(ARM64_ET)/lib/libexecutorch.so | tools arm64-tools
	cmake -S android_runner -B build/runner-arm64-v8a -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/android_runner/aarch64-linux-gnu.cmake -DCMAKE_PREFIX_PATH=$(CURDIR)/$(ARM64_ET)
	cmake --build build/runner-arm64-v8a

$(ARM64_ET)/lib/libexecutorch.so: constraints.txt $(STAMP)
	rm -rf build/executorch-aarch64
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_aarch64 \
		--python-version 3.11 -d build/executorch-aarch64 executorch==$(ET_VERSION)
	$(PY) -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
		z.extractall(sys.argv[2], [n for n in z.namelist() if n.split('/')[1] in ('lib', 'include', 'share')])" \
		build/executorch-aarch64/executorch-$(ET_VERSION)-*.whl build/executorch-aarch64
	rm build/executorch-aarch64/*.whl
	touch $@

arm64-tools:
	@missing=""; command -v aarch64-linux-gnu-g++ >/dev/null || missing="$$missing g++-aarch64-linux-gnu"; \
	command -v qemu-aarch64 >/dev/null || missing="$$missing qemu-user"; \
	[ -f /usr/lib/binfmt.d/qemu-aarch64.conf ] || missing="$$missing qemu-user-binfmt"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
		echo "missing:$$missing; run 'sudo apt-get install$$missing' (Debian/Ubuntu)"; exit 1; \
	fi
	@if [ -e $(BINFMT)/qemu-aarch64 ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		[ -e $(BINFMT)/register ] || mount -t binfmt_misc binfmt_misc $(BINFMT); \
		cat /usr/lib/binfmt.d/qemu-aarch64.conf > $(BINFMT)/register; \
	else \
		echo "aarch64 programs are not handed to qemu here: as root, mount -t binfmt_misc binfmt_misc $(BINFMT)" \
		     "and cat /usr/lib/binfmt.d/qemu-aarch64.conf > $(BINFMT)/register"; exit 1; \
	fi

# Byte-compiled once here, on every core: with PYTHONDONTWRITEBYTECODE set (as on our CI machines)
# Python never keeps what it compiles, so without .pyc files every process compiled every module
# it imported, every time (a clean clone's suite: 29:36 instead of 22:01 on a 2-core AMD EPYC VM).
# pip compiles too, but on one core (about 150 s there for 25,000 files; compileall -j 0: 91 s).
# Files compileall cannot compile (templates, other Pythons' code) are skipped, as pip skips them.
$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile -c constraints.txt -e '.[dev,samples,tensorflow,bench]'
	$(PY) -m pip install --quiet --no-compile --no-deps -r requirements-nodeps.txt
	$(PY) -m compileall -qq -j 0 $(VENV)/lib >/dev/null || true
	touch $(STAMP)

demo: $(STAMP) data
	$(PY) examples/demo.py

# The same job in int8, as apps ship it: an int8 profile of this machine, an int8 latency budget,
# the .int8.pte measured against it (examples/demo.py).
demo-int8: $(STAMP) data
	$(PY) examples/demo.py --int8

# Everything CI runs, the slow marker (big models, the demo) included, in one run: its long
# tests start first and each worker takes one test at a time (tests/conftest.py), so neither
# waits idle while the other finishes a long one.
test: $(STAMP) data $(RUNNER) $(RUNNER_ARM64) | tools
	$(PY) -m pytest -n $(PYTEST_WORKERS) --maxschedchunk=1 tests

test-fast: $(STAMP) data $(RUNNER) $(RUNNER_ARM64) | tools
	$(PY) -m pytest -n $(PYTEST_WORKERS) --maxschedchunk=1 -m "not slow" tests

# Every table of docs/results.md (and the distillation table of docs/finetune.md), part by part,
# with a profile of this machine: make results PROFILE=device_profiles/<this machine>.csv
# Each part is resumable (the same command again goes on where a fault stopped it) and under
# 150 minutes on an Intel Xeon of family 6 model 207 (2 cores); about 8 hours in all.
# mobilenet_w1 at 30% is left out: on that machine its smallest plan is 28% of the original's latency,
# so every method would end at the same net (docs/results.md).
BENCH := $(PY) benchmarks
results: $(STAMP) data
	@test -n "$(PROFILE)" || { echo "usage: make results PROFILE=device_profiles/<this machine>.csv"; exit 2; }
	$(BENCH)/peers.py --profile $(PROFILE) --specs fashion:mobilenet_w1 --shares 0.5 --plots docs/plots
	$(BENCH)/peers.py --profile $(PROFILE) --specs fashion:resnet_w0.5 --shares 0.5 --plots docs/plots
	$(BENCH)/peers.py --profile $(PROFILE) --specs fashion:resnet_w0.5 --shares 0.3 --plots docs/plots
	$(BENCH)/ablations.py --profile $(PROFILE) --specs fashion:resnet_w0.5 --shares 0.5 --families fisher --plots docs/plots
	$(BENCH)/ablations.py --profile $(PROFILE) --specs fashion:resnet_w0.5 --shares 0.5 --families gates --plots docs/plots
	$(BENCH)/hierarchical_kd.py --profile $(PROFILE) --threads 2

clean:
	rm -rf $(VENV) build *.egg-info
