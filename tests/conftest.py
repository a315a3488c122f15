import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests/random_nets.py, tests/zoo.py

import pytest  # noqa: E402
from zoo import RESULTS  # noqa: E402


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # controller only, not xdist workers
        RESULTS.mkdir(parents=True, exist_ok=True)
        for f in RESULTS.glob("*.json"):
            f.unlink()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = [json.loads(f.read_text()) for f in sorted(RESULTS.glob("*.json"))]
    if not rows:
        return
    w = terminalreporter
    w.section("mobileprune coverage (random plan: 30% of each prunable group, blocks of 8)")
    w.line(f"{'model':34s} {'groups':>6s} {'frozen':>6s} {'params before':>14s} {'after':>12s} {'ratio':>5s} "
           f"{'rel diff':>8s}  frozen because")
    for r in rows:
        w.line(f"{r['model']:34s} {r['groups']:6d} {r['frozen']:6d} {r['params_before']:14,d} "
               f"{r['params_after']:12,d} {r['params_after'] / r['params_before']:5.2f} {r['rel_diff']:8.1e}  "
               f"{'; '.join(r['frozen_reasons'])}")


@pytest.fixture(scope="session", autouse=True)
def program_cache(tmp_path_factory):
    """One cache of built programs for the run (micro-programs, the speed reference), shared by
    the xdist workers and the CLI subprocesses the tests start, and kept out of the user's cache."""
    base = tmp_path_factory.getbasetemp()  # pytest-N, or pytest-N/popen-gwK under xdist
    cache = (base.parent if base.name.startswith("popen-gw") else base) / "program-cache"
    cache.mkdir(exist_ok=True)
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


TINY = str(Path(__file__).parent / "models" / "tiny.py") + ":make"


@pytest.fixture(scope="session")
def tiny_profile(tmp_path_factory, program_cache):
    """A real profile of tests/models/tiny.py, measured on this machine with few repeats (for
    mechanics, not figures); block 8 given, so no tile probe."""
    from mobileprune.devices import HostRunner
    from mobileprune.profiling import profile_device

    d = tmp_path_factory.mktemp("tiny-profile")
    return profile_device([TINY], d / "tiny.csv", HostRunner(), block=8, repeats=5, show_progress=False,
                          log=lambda *_: None)
