"""An emulated ARM64 device in every test run: the tests' ADB daemon (tests/adbd) presents an
arm64-v8a device whose shell runs aarch64 programs under qemu-user, and AdbRunner pushes the ARM
build of android_runner (`make runner-arm64`: cross-compiled against the aarch64 executorch
wheel), so the outputs checked here are computed by XNNPACK's ARM kernels. Tiny nets only: under
emulation a MobileNetV2 at 224x224 takes about 40 s per inference. An emulated device's timings
are the emulator's: profiling and predictions on it are refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from adbd import AdbDaemon
from conftest import TINY

from mobileprune.devices.adb import AdbRunner, binary_abi
from mobileprune.devices.programs import to_pte

ROOT = Path(__file__).resolve().parents[1]
HOST_RUNNER = ROOT / "build" / "runner-host" / "mobileprune_runner"
ARM_RUNNER = ROOT / "build" / "runner-arm64-v8a" / "mobileprune_runner"


@pytest.fixture(scope="module")
def runners() -> list[Path]:
    for path, make in ((HOST_RUNNER, "make runner"), (ARM_RUNNER, "make runner-arm64")):
        if not path.is_file():
            pytest.fail(f"{path} is missing: `{make}` builds it (make test does)")
    return [HOST_RUNNER, ARM_RUNNER]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """A tiny conv net as .pte, with two input sets and its eager outputs."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 8, 1)).eval()
    x = torch.randn(1, 3, 32, 32)
    sets = [[x.numpy()], [np.ones((1, 3, 32, 32), np.float32)]]
    with torch.no_grad():
        expected = [model(torch.from_numpy(s[0])).numpy() for s in sets]
    return {"pte": to_pte(model, (x,), tmp_path_factory.mktemp("arm64") / "net.pte"), "sets": sets,
            "expected": expected}


def _runner(daemon, tmp_path, runners) -> AdbRunner:
    return AdbRunner(f"adb:{daemon.address}", runner_binary=runners, remote_dir=str(tmp_path / "device"),
                     key_path=tmp_path / "adbkey", cooldown_s=0)


def test_the_abi_check_chooses_the_arm_runner_and_arm_kernels_match_eager(tmp_path, runners, net):
    with AdbDaemon(emulate_arm64=True) as phone:
        runner = _runner(phone, tmp_path, runners)
        assert runner.identity().emulated and runner.facts()["abi"] == "arm64-v8a"
        outputs = runner.outputs(str(net["pte"]), net["sets"])
    assert runner.runner_binary == ARM_RUNNER
    assert binary_abi(tmp_path / "device" / "bin" / "mobileprune_runner") == "arm64-v8a"  # what the device ran
    for got, want in zip(outputs, net["expected"]):
        np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-4)
    with AdbDaemon() as host_device:  # the same two builds offered to an x86_64 device: the host build
        runner = _runner(host_device, tmp_path / "x86", runners)
        runner.outputs(str(net["pte"]), net["sets"][:1])
    assert runner.runner_binary == HOST_RUNNER and not runner.identity().emulated
    # None given: the builds in build/runner-*/, one per ABI, the device's chosen
    found = AdbRunner("adb:127.0.0.1:1", runner_binary=None, key_path=tmp_path / "adbkey")
    assert found._runner_for("arm64-v8a").resolve() == ARM_RUNNER
    assert found._runner_for("x86_64").resolve() == HOST_RUNNER


def _cli(*args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "mobileprune.cli", *args], check=False, capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.mark.long
def test_export_checks_parity_on_arm_kernels_and_bench_runs_there(tmp_path, runners):
    env = dict(os.environ, HOME=str(tmp_path))
    out = tmp_path / "artifacts"
    device = [a for r in runners for a in ("--runner", str(r))] + ["--remote-dir", str(tmp_path / "device")]
    with AdbDaemon(emulate_arm64=True) as phone:
        done = _cli("export", TINY, "--formats", "pte", "--out", str(out), "--device", f"adb:{phone.address}",
                    *device, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "is emulated: parity was checked on it" in done.stdout
        manifest = json.loads((out / "manifest.json").read_text())
        (entry,) = manifest["artifacts"]
        assert entry["status"] == "ok" and entry["parity"]["passed"] and entry["checked_with"] == ["executorch"]
        assert manifest["device_emulated"] and entry["latency_ms"] is None  # no latency from an emulator
        bench = _cli("bench", str(out / entry["path"]), "--device", f"adb:{phone.address}", "--processes", "1",
                     "--repeats", "3", "--json", *device, env=env)
        assert bench.returncode == 0, bench.stderr[-3000:]
        result = json.loads(bench.stdout.splitlines()[-1])
        assert result["emulated"] and result["ms"] > 0
        runs = [c for c in phone.commands if "mobileprune_runner" in c]
        assert any("--inputs" in c for c in runs), "parity was not checked on the device"
    assert binary_abi(tmp_path / "device" / "bin" / "mobileprune_runner") == "arm64-v8a"


def test_an_emulated_device_is_refused_as_a_latency_source(tmp_path, runners, tiny_profile):
    env = dict(os.environ, HOME=str(tmp_path))
    device = [a for r in runners for a in ("--runner", str(r))] + ["--remote-dir", str(tmp_path / "device")]
    with AdbDaemon(emulate_arm64=True) as phone:
        profiled = _cli("profile", "--device", f"adb:{phone.address}", "--model", TINY, "--block", "8",
                        "--reference", TINY, "--out", str(tmp_path / "phone.csv"), *device, env=env)
        predicted = _cli("predict", TINY, "--profile", str(tiny_profile.path), "--device", f"adb:{phone.address}",
                         *device, env=env)
        ran = [c for c in phone.commands if "mobileprune_runner" in c]
    for refused, doing in ((profiled, "profiling"), (predicted, "a prediction")):
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert "is an emulated device" in refused.stderr and f"so {doing}" in refused.stderr, refused.stderr
    assert not ran and not (tmp_path / "phone.csv").exists(), "refused before anything was measured"


def test_a_latency_budget_on_an_emulated_device_is_refused_before_pruning(tmp_path, runners, tiny_profile):
    import mobileprune as mp
    from mobileprune.devices.identity import EmulatedDevice
    from mobileprune.spec import build, default_input_shape

    with AdbDaemon(emulate_arm64=True) as phone:
        device = _runner(phone, tmp_path, runners)
        target = mp.Target(budget="50%", profile=tiny_profile, device=device, measured=mp.MeasuredRounds())
        with pytest.raises(EmulatedDevice, match="emulated device .* so measuring rows of a latency table"):
            mp.prune(build(TINY), torch.randn(default_input_shape(TINY)), data=None, method="l1", target=target)
        assert not [c for c in phone.commands if "mobileprune_runner" in c]
