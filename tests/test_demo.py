"""`make demo` on a machine with no profile of its model: it profiles this machine first (cached
where its next run looks); with a profile of this machine cached, it uses that one, prunes to the
budget, fine-tunes, prints predicted vs measured latency on it and exports both formats.

Two tests, each under two minutes beside the other test worker: the demo's first step on a
fresh machine (profiling), called in the test's process, and the whole demo as `make demo > log`
runs it on a machine whose profile is cached, in its own process with its output to a file."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import TINY

ROOT = Path(__file__).parent.parent
# The tiny test net, which no profile covers: the demo must measure it. Its speed reference and
# larger teacher are the tiny net too (MobileNetV2's lowering alone takes 35 s; a Fashion net's
# profile 2-4 min): the test guards the demo's path, `make demo` its figures.
SPEC = TINY
DEMO = [sys.executable, str(ROOT / "examples" / "demo.py"), SPEC, "--steps=20", "--budget=90%", "--finetune-steps=5",
        f"--reference={TINY}", f"--larger={TINY}", "--block=8", "--measure-processes=1"]



def _fresh_cache(tmp_path, program_cache) -> Path:
    """An XDG cache with no profile (a fresh machine), sharing the run's lowered programs
    (conftest.py): lowering is not what these tests test."""
    cache = tmp_path / "cache"
    (cache / "mobileprune").mkdir(parents=True)
    (program_cache / "mobileprune" / "programs").mkdir(parents=True, exist_ok=True)
    (cache / "mobileprune" / "programs").symlink_to(program_cache / "mobileprune" / "programs",
                                                    target_is_directory=True)
    return cache


def _demo(cache: Path, log: Path) -> str:
    """The whole demo as `make demo > log` runs it: its own process, stdout and stderr to a file
    (not a terminal), from a shell that set no quieting of ours, ``cache`` as the XDG cache, its
    page written beside ``log``; returns what it printed. Its own process so that the log lines of
    torch, TensorFlow and absl it prints as it imports them are seen (98 s alone on a 2-core AMD
    EPYC VM, 67.5 s in the test's process, where they were imported long before)."""
    import os
    import subprocess

    from mobileprune.quiet import ENV, ENV_FLAG

    env = {k: v for k, v in os.environ.items() if k not in (ENV_FLAG, *ENV)}
    with open(log, "w") as out:
        subprocess.run(DEMO + [f"--report={log.with_name('demo-report.html')}"], stdout=out, stderr=subprocess.STDOUT,
                       env={**env, "XDG_CACHE_HOME": str(cache)}, check=True, timeout=600, cwd=ROOT)
    return log.read_text()


def _load_demo(monkeypatch, cache: Path):
    """examples/demo.py imported with the demo's options and ``cache`` as the XDG cache (the demo
    reads both when imported)."""
    import importlib.util

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setattr(sys, "argv", DEMO[1:])
    spec = importlib.util.spec_from_file_location("demo_under_test", ROOT / "examples" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def _latency_lines(out: str) -> None:
    lines = re.findall(r"(original|pruned) +ExecuTorch-XNNPACK, 1 thread: predicted ([\d.]+) ms, measured ([\d.]+) ms "
                       r"at the profile's speed \(([-+][\d.]+)%", out)
    assert [kind for kind, *_ in lines] == ["original", "pruned"], out[-3000:]
    for _, predicted, measured, error in lines:
        predicted, measured = float(predicted), float(measured)
        assert predicted > 0 and measured > 0
        rounding = 100 * 0.001 / measured + 0.05  # values printed to 1 us, the error to 0.1 %
        assert float(error) == pytest.approx(100 * (predicted - measured) / measured, abs=rounding)


def _first_step(monkeypatch, cache: Path):
    """The demo's own profile_of_this_machine, run with the demo's options and ``cache`` as the
    XDG cache; returns the profile and what it printed (rich wraps long lines: joined)."""
    import io

    from rich.console import Console

    demo = _load_demo(monkeypatch, cache)
    printed = io.StringIO()
    profile = demo.profile_of_this_machine(Console(file=printed, width=140))  # the demo's console width
    return profile, " ".join(printed.getvalue().split())


@pytest.mark.long
def test_demo_profiles_the_machine_it_runs_on(tmp_path, monkeypatch, program_cache, shared_tiny_profile):
    """No profile of this machine covers the model: the demo measures one and caches it where its
    next run looks first. (shared_tiny_profile: the run's lowered programs of the tiny net are
    built; lowering is not what this test tests.)"""
    from mobileprune.devices.identity import host_identity
    from mobileprune.profiling import find_profile

    cache = _fresh_cache(tmp_path, program_cache)
    profile, out = _first_step(monkeypatch, cache)
    assert "profiled this machine in" in out, out
    cached = list((cache / "mobileprune" / "profiles").glob("*.csv"))
    assert len(cached) == 1 and profile.path == cached[0]
    # the lookup the next run makes first: this machine's cached profile, covering the model
    found = find_profile(host_identity(), "executorch", 1, [cached[0].parent], covering=[SPEC])
    assert found is not None and found.path == cached[0] and found.meta.block == 8
    assert SPEC in found.meta.overheads_ms  # calibrated whole: the demo's prediction needs it


@pytest.mark.slow
@pytest.mark.long
def test_demo_uses_a_cached_profile_of_this_machine(tmp_path, program_cache, shared_tiny_profile):
    """A profile of this machine in the cache, covering the model: no profiling, its path printed
    whole (a long one, e.g. an Intel Xeon's profile name, once wrapped mid-name); then the job:
    pruned to the budget, fine-tuned along the teacher chain, predicted vs measured, exported."""
    from mobileprune.devices.latency_table import DeviceProfile

    cache = _fresh_cache(tmp_path, program_cache)
    profile = cache / "mobileprune" / "profiles" / "a-profile-of-this-machine-with-a-long-name-executorch-1t.csv"
    profile.parent.mkdir()
    DeviceProfile(shared_tiny_profile.meta, shared_tiny_profile.table.copy()).save(profile)
    printed = _demo(cache, tmp_path / "demo.log")
    noise = re.compile(r"_pytree|absl|InitializeLog|flatbuffer_export|^[IWEF]\d{4} ")  # as test_cli's
    assert not [line for line in printed.splitlines() if noise.search(line)], printed
    out = " ".join(printed.split())  # rich wraps long lines
    assert "profiled this machine" not in out
    assert f"profile of this machine: {profile}" in out, out[:1000]
    _latency_lines(out)
    # the hierarchical chain: the original, then the larger teacher given
    assert f"after fine-tuning (5 steps with each teacher: {SPEC} (original) -> {SPEC})" in out, out[-3000:]
    assert re.search(r"budget [\d.]+ ms \(90% of the predicted", out)
    plan_ms, budget_ms = (float(v) for v in re.search(r"budget ([\d.]+) ms .*?the plan's prediction ([\d.]+) ms",
                                                        out).groups()[::-1])
    assert plan_ms <= budget_ms + 0.0005  # printed to the microsecond
    assert re.search(r"pruned +pte .* parity rel\. diff", out) and re.search(r"pruned +tflite .* parity", out)
    # its output is not a terminal here: the long steps said how far they were, in plain lines
    assert re.search(r"training \d+/20 \(\d+ s\): loss [\d.]+", out), out[:3000]
    # and the page of the pruned model, with the prediction the demo printed
    report = json.loads((tmp_path / "demo-report.json").read_text())
    assert f"report: {tmp_path / 'demo-report.html'}" in out
    assert f"{report['latency']['predicted'][1]:.3f}" == re.search(r"pruned +ExecuTorch-XNNPACK, 1 thread: predicted "
                                                                 r"([\d.]+) ms", out).group(1)
    assert report["export"]["passed"] and report["top1"]["images"] == 2000
