"""AdbRunner and profiling over ADB, against a real ADB protocol peer (tests/adbd) on loopback,
with the host build of android_runner as the on-device runner; and Debian's adb client against
the same peer, to show the peer speaks ADB and not just what our client expects."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from adbd import AdbDaemon
from conftest import SHORT_SWEEP, TINY

from mobileprune.devices import HostRunner, RunnerError
from mobileprune.devices.adb import AdbRunner, pinned_cores
from mobileprune.devices.adb_link import AdbLink, DeviceDisconnected, DeviceUnauthorized
from mobileprune.devices.programs import to_pte

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(os.environ.get("MOBILEPRUNE_ANDROID_RUNNER", ROOT / "build" / "runner-host" / "mobileprune_runner"))


@pytest.fixture(scope="module")
def runner_binary() -> Path:
    if not RUNNER.is_file():
        pytest.fail(f"{RUNNER} is missing: `make runner` builds it (make test does)")
    return RUNNER


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """A small conv net and a reference program, as .pte, with an input and eager outputs."""
    d = tmp_path_factory.mktemp("programs")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 8, 1)).eval()
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 32, 32)
    return {"net": to_pte(net, (x,), d / "net.pte"), "ref": to_pte(ref, (x,), d / "ref.pte"),
            "x": x.numpy(), "y": net(x).detach().numpy(), "dir": d}


def _runner(daemon, tmp_path, runner_binary, **kw) -> AdbRunner:
    return AdbRunner(f"adb:{daemon.address}", runner_binary=runner_binary, remote_dir=str(tmp_path / "device"),
                     key_path=tmp_path / "adbkey", cooldown_s=0, **kw)


def test_a_program_runs_on_the_device_end_to_end(tmp_path, runner_binary, programs):
    with AdbDaemon() as daemon:
        runner = _runner(daemon, tmp_path, runner_binary)
        m = runner.run(str(programs["net"]), repeats=9, op_events=True, keep_outputs=True, inputs=[programs["x"]],
                       reference=str(programs["ref"]))
        assert m.artifact == str(programs["net"].resolve()) and m.runtime == "executorch"
        assert len(m.samples_ms) == 9 and len(m.ratios) == 3 and m.reference_ratio > 0
        np.testing.assert_allclose(m.outputs[0], programs["y"], atol=1e-5)
        assert [e.name for e in m.events if "Convolution" in e.name or "GEMM" in e.name]
        assert all(len(e.samples_ms) == 9 for e in m.events)
        # The device keeps the runner and programs (content-named), not the run's files.
        device = tmp_path / "device"
        assert sorted(p.name for p in (device / "runs").iterdir()) == []
        kept = {p: p.stat().st_mtime_ns for p in (device / "programs").iterdir()} | \
               {device / "bin" / "mobileprune_runner": (device / "bin" / "mobileprune_runner").stat().st_mtime_ns}
        runner.run(str(programs["net"]), repeats=3)
        assert {p: p.stat().st_mtime_ns for p in kept} == kept, "files already on the device were pushed again"


def test_outputs_on_the_device_equal_the_hosts(tmp_path, runner_binary, programs):
    sets = [[programs["x"]], [np.ones((1, 3, 32, 32), np.float32)]]
    with AdbDaemon() as daemon:
        on_device = _runner(daemon, tmp_path, runner_binary).outputs(str(programs["net"]), sets)
    on_host = HostRunner().outputs(str(programs["net"]), sets)
    assert len(on_device) == 2
    for a, b in zip(on_device, on_host):
        np.testing.assert_array_equal(a[0], b[0])


def test_device_facts_come_from_getprop_and_sys(tmp_path, runner_binary):
    with AdbDaemon(props={"ro.product.model": "Pixel 8", "ro.soc.model": "Tensor G3"}) as daemon:
        identity = _runner(daemon, tmp_path, runner_binary).identity()
    assert identity.kind == "android" and identity.name == "android Pixel 8"
    assert identity.facts["soc"] == "Tensor G3" and identity.facts["abi"] == "x86_64"
    assert identity.facts["cores"] == len(list(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")))


def test_the_fastest_cores_are_pinned():
    big_little = [1800000] * 4 + [2400000] * 3 + [3000000]  # e.g. a 4+3+1 phone
    assert pinned_cores(big_little, 1) == [7]
    assert pinned_cores(big_little, 2) == [4, 5, 6, 7]  # the prime core and the whole next cluster
    assert pinned_cores(big_little, 4) == [4, 5, 6, 7]
    assert pinned_cores(big_little, 5) == list(range(8))
    assert pinned_cores([2000000] * 4, 1) == []  # all alike: nothing to choose
    assert pinned_cores([None, 2000000], 1) == []  # unknown: no pinning


def test_an_unauthorised_key_is_refused_with_what_to_do(tmp_path):
    with AdbDaemon(accept_new_keys=False) as daemon:
        link = AdbLink(f"adb:{daemon.address}", tmp_path / "adbkey", auth_timeout_s=1)
        with pytest.raises(DeviceUnauthorized, match="Allow USB debugging"):
            link.connect()
        assert len(daemon.refused_keys) == 1
        assert (tmp_path / "adbkey").is_file() and (tmp_path / "adbkey.pub").is_file()  # made, as adb does


def test_a_key_the_device_trusts_connects_by_signature(tmp_path):
    from adbd.wire import decode_public_key

    first = AdbDaemon(accept_new_keys=True).start()
    try:
        AdbLink(f"adb:{first.address}", tmp_path / "adbkey").connect()  # makes the key
    finally:
        first.stop()
    trusted = decode_public_key((tmp_path / "adbkey.pub").read_bytes())
    with AdbDaemon(accept_new_keys=False, trusted=(trusted,)) as daemon:
        link = AdbLink(f"adb:{daemon.address}", tmp_path / "adbkey", auth_timeout_s=1)
        link.connect()
        assert link.shell("echo ok") == (0, "ok\n") and not daemon.refused_keys
    with AdbDaemon(accept_new_keys=False) as other, pytest.raises(DeviceUnauthorized):  # another phone
        AdbLink(f"adb:{other.address}", tmp_path / "adbkey", auth_timeout_s=1).connect()


def test_exit_codes_come_back(tmp_path):
    with AdbDaemon() as daemon:
        link = AdbLink(f"adb:{daemon.address}", tmp_path / "adbkey")
        assert link.shell("echo out; echo err >&2; exit 7") == (7, "out\nerr\n")
        with pytest.raises(RunnerError, match="exit 3"):
            link.check("exit 3")


def test_a_connection_dropped_mid_push_is_a_clear_error_and_the_next_push_completes(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3_000_000))
    remote = str(tmp_path / "device" / "big.bin")
    with AdbDaemon(drop_after_push_bytes=1_000_000) as daemon:
        link = AdbLink(f"adb:{daemon.address}", tmp_path / "adbkey")
        with pytest.raises(DeviceDisconnected, match="during the push of big.bin"):
            link.push_missing({str(big): remote})
        assert daemon.drops == 1
        link.connect()
        assert link.push_missing({str(big): remote}) == [remote]
        assert Path(remote).read_bytes() == big.read_bytes()
        assert link.push_missing({str(big): remote}) == []  # same bytes there: skipped
        listed = {bytes(e.filename).decode(): e.size for e in link.device.list(str(tmp_path / "device"))}
        assert listed["big.bin"] == len(big.read_bytes())  # the sync service's LIST


def test_a_connection_dropped_mid_run_is_a_clear_error(tmp_path, runner_binary, programs):
    with AdbDaemon(drop_when=lambda command: "mobileprune_runner --threads" in command) as daemon:
        runner = _runner(daemon, tmp_path, runner_binary)
        with pytest.raises(DeviceDisconnected, match="lost the connection"):
            runner.run(str(programs["net"]), repeats=200_000)
        runner.reconnect()
        assert len(runner.run(str(programs["net"]), repeats=5).samples_ms) == 5


def test_a_run_leaves_another_process_s_run_on_the_same_device_alone(tmp_path, runner_binary, programs):
    """A second mobileprune process (or a second emulated device on the same storage) has a run
    directory with results of the same program under the same remote dir: it is neither
    collected as a left-behind result nor removed."""
    other = tmp_path / "device" / "runs" / "otherprocess"
    (other / "out").mkdir(parents=True)
    with AdbDaemon() as daemon:
        runner = _runner(daemon, tmp_path, runner_binary)
        remote = runner._programs_on_device([str(programs["net"].resolve())])[str(programs["net"].resolve())]
        stale = {"artifact": remote, "threads": 1, "warmup": 5, "repeats": 5, "op_events": False, "reference": "",
                 "samples_ms": [123.0] * 5}
        (other / "results.jsonl").write_text(json.dumps(stale) + "\n")
        m = runner.run(str(programs["net"]), repeats=5)
    assert m.samples_ms != [123.0] * 5, "another process's results were taken as this run's"
    assert (other / "results.jsonl").is_file() and (other / "out").is_dir()


def test_a_hung_runner_is_ended_by_the_devices_timeout(tmp_path, runner_binary, programs):
    with AdbDaemon() as daemon:
        runner = _runner(daemon, tmp_path, runner_binary, timeout_s=2)
        start = time.monotonic()
        with pytest.raises(RunnerError, match="killed after 2 s"):
            runner.run(str(programs["net"]), repeats=10**8)
        assert time.monotonic() - start < 30
        assert "timeout 2 " in daemon.commands[-2]


def test_a_missing_runner_or_one_of_another_abi_says_what_to_build(tmp_path, runner_binary, programs, monkeypatch):
    from mobileprune.devices import adb

    monkeypatch.setattr(adb, "RUNNER_BUILDS", (tmp_path / "no-builds",))  # none given, none found
    monkeypatch.delenv(adb.RUNNER_ENV, raising=False)
    with AdbDaemon() as daemon:
        none = AdbRunner(f"adb:{daemon.address}", runner_binary=None, remote_dir=str(tmp_path / "d"),
                         key_path=tmp_path / "adbkey")
        with pytest.raises(RunnerError, match="no runner binary .*x86_64.*Building the Android runner"):
            none.run(str(programs["net"]))
    with AdbDaemon(props={"ro.product.cpu.abi": "arm64-v8a"}) as phone:
        runner = _runner(phone, tmp_path, runner_binary)
        with pytest.raises(RunnerError, match="built for x86_64, .* runs arm64-v8a"):
            runner.run(str(programs["net"]))


def test_the_tile_probe_runs_on_the_device(tmp_path, runner_binary):
    from mobileprune.devices import runtimes
    from mobileprune.devices.blockprobe import CANDIDATES, probe_tiles
    from mobileprune.devices.builds import cache_dir

    runtime = runtimes.get("executorch")
    with AdbDaemon() as daemon:
        tiles, sweeps = probe_tiles(_runner(daemon, tmp_path, runner_binary), runtime, cache_dir(runtime),
                                    processes=1, repeats=3, widths=SHORT_SWEEP)
    assert set(tiles) == {"conv", "dwconv"} and all(t in CANDIDATES for t in tiles.values())
    assert all(sorted(s) == list(SHORT_SWEEP) and min(s.values()) > 0 for s in sweeps.values())


def test_debians_adb_client_talks_to_the_same_daemon(tmp_path):
    """connect (the new key accepted, as on a phone), shell with stderr and exit code (v2), push,
    pull: the real client, with a HOME and server port of its own."""
    adb = shutil.which("adb")
    if adb is None:
        pytest.fail("Debian's adb client is missing: apt-get install adb (make test and .ci/run install it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        server_port = s.getsockname()[1]
    env = dict(os.environ, HOME=str(tmp_path), ANDROID_ADB_SERVER_PORT=str(server_port))

    def run(*args, timeout=60):
        return subprocess.run([adb, *args], env=env, check=False, capture_output=True, text=True, timeout=timeout)

    with AdbDaemon() as daemon:
        try:
            run("start-server")
            run("connect", daemon.address)  # a new key: "failed to authenticate" first, then authorised
            deadline = time.time() + 30
            while f"{daemon.address}\tdevice" not in run("devices").stdout and time.time() < deadline:
                time.sleep(0.3)
            assert f"{daemon.address}\tdevice" in run("devices").stdout
            shell = run("-s", daemon.address, "shell", "echo out; echo err >&2; exit 3")
            assert (shell.returncode, shell.stdout, shell.stderr) == (3, "out\n", "err\n")
            payload = tmp_path / "payload.bin"
            payload.write_bytes(os.urandom(1_500_000))
            remote = tmp_path / "device" / "payload.bin"
            assert run("-s", daemon.address, "push", str(payload), str(remote)).returncode == 0
            assert remote.read_bytes() == payload.read_bytes()
            back = tmp_path / "back.bin"
            assert run("-s", daemon.address, "pull", str(remote), str(back)).returncode == 0
            assert back.read_bytes() == payload.read_bytes()
            assert run("-s", daemon.address, "shell", "getprop ro.product.model").stdout.strip() == "loopback-adbd"
            assert any(o.startswith("shell,v2,") for o in daemon.opened) and "sync:" in daemon.opened
        finally:
            run("kill-server")


def _cli(*args, env, timeout=900):
    return subprocess.run([sys.executable, "-m", "mobileprune.cli", *args], check=False, capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.mark.long
def test_profile_over_adb_gives_the_host_profiles_table(tmp_path, runner_binary, tiny_profile):
    """`mobileprune profile --device adb:127.0.0.1:PORT`: the same rows and columns as the host's
    profile of the same model, and the device's identity."""
    from mobileprune.devices.latency_table import DeviceProfile

    env = dict(os.environ, HOME=str(tmp_path))  # the CLI makes its adb key under ~/.android
    out = tmp_path / "phone.csv"
    with AdbDaemon() as daemon:
        done = _cli("profile", "--device", f"adb:{daemon.address}", "--model", TINY, "--repeats", "5", "--block", "8",
                    "--reference", TINY, "--processes", "2",
                    "--out", str(out), "--runner", str(runner_binary), "--remote-dir", str(tmp_path / "device"),
                    env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / ".android" / "adbkey").is_file()
    phone = DeviceProfile.load(out)
    assert list(phone.table.columns) == list(tiny_profile.table.columns)
    assert set(phone.table["key"]) == set(tiny_profile.table["key"])
    # Priced where the host's is (tiny linear layers round to 0 ms on both).
    host_ms = tiny_profile.table.set_index("key")["ms"]
    phone_ms = phone.table.set_index("key")["ms"].reindex(host_ms.index)
    assert ((phone_ms > 0) == (host_ms > 0)).all() and (phone.table["total_ms"] > 0).all()
    assert phone.meta.device_identity.kind == "android" and phone.meta.device == f"adb:{daemon.address}"
    assert phone.meta.device_identity.facts["model"] == "loopback-adbd"
    assert TINY in phone.meta.overheads_ms


def test_profiling_resumes_after_a_drop_without_losing_or_repeating_a_row(tmp_path, runner_binary, tiny_profile):
    """The link drops while a batch of rows runs, after two of its programs were measured: the
    profile waits for the device, collects those two results from the device, measures the rest
    once, and the table is whole."""
    from mobileprune.devices.latency_table import DeviceProfile
    from mobileprune.devices.measuring import ProfilingConfig
    from mobileprune.profiling import profile_devices

    at_drop = {}

    def after_two_rows(command: str) -> bool:
        if "--etdump-dir" not in command:  # row programs (ETDump per-op events), not whole models
            return False
        run_dir = Path(command.split()[1])
        results = run_dir / "results.jsonl"
        lines = results.read_text().splitlines() if results.is_file() else []
        if len(lines) >= 2:
            at_drop["measured"] = [json.loads(line)["artifact"] for line in lines]
            return True
        return False

    out = tmp_path / "phone.csv"
    logs = []
    with AdbDaemon(drop_when=after_two_rows) as daemon:
        config = ProfilingConfig(block=8, repeats=3, processes=2, reference=TINY)
        profiles = profile_devices([f"adb:{daemon.address}"], [TINY], config, out=out, reconnect_s=60,
                                   log=logs.append, runner_binary=runner_binary, remote_dir=str(tmp_path / "device"),
                                   key_path=tmp_path / "adbkey", cooldown_s=0)
        commands = list(daemon.commands)
    assert daemon.drops == 1 and any("rows measured so far are kept" in line for line in logs)
    profile = profiles[f"adb:{daemon.address}"]
    assert profile.path == DeviceProfile.load(out).path
    assert set(profile.table["key"]) == set(tiny_profile.table["key"])  # nothing lost (load refuses duplicates)
    # Nothing measured twice: the programs measured before the drop never ran again.
    runs = [c for c in commands if "mobileprune_runner --threads" in c]
    dropped = next(i for i, c in enumerate(runs) if all(m in c for m in at_drop["measured"]))
    later = " ".join(runs[dropped + 1:])
    assert at_drop["measured"] and not any(m in later for m in at_drop["measured"])


@pytest.mark.long
def test_export_checks_parity_and_latency_on_the_device(tmp_path, runner_binary):
    """`export --device adb:...` runs the parity check and the latency measurement on the device;
    `bench --device adb:...` measures an artifact there."""
    env = dict(os.environ, HOME=str(tmp_path))
    out = tmp_path / "artifacts"
    device = ["--runner", str(runner_binary), "--remote-dir", str(tmp_path / "device")]
    with AdbDaemon() as daemon:
        done = _cli("export", TINY, "--formats", "pte", "--out", str(out), "--device", f"adb:{daemon.address}",
                    *device, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        manifest = json.loads((out / "manifest.json").read_text())
        (entry,) = manifest["artifacts"]
        assert entry["status"] == "ok" and entry["checked_with"] == ["executorch"]
        assert entry["parity"]["passed"] and entry["latency_ms"] > 0
        assert manifest["device"] == f"adb:{daemon.address}"
        bench = _cli("bench", str(out / entry["path"]), "--device", f"adb:{daemon.address}", "--processes", "2",
                     "--json", *device, env=env)
        assert bench.returncode == 0, bench.stderr[-3000:]
        assert json.loads(bench.stdout.splitlines()[-1])["device"] == f"adb:{daemon.address}"
        runs = [c for c in daemon.commands if "mobileprune_runner" in c and "--inputs" in c]
        assert runs, "parity was not checked on the device"


@pytest.mark.long
def test_two_devices_are_profiled_at_once_into_a_profile_each(tmp_path, runner_binary, tiny_profile):
    env = dict(os.environ, HOME=str(tmp_path))
    phones = [AdbDaemon(props={"ro.product.model": "Pixel 8"}), AdbDaemon(props={"ro.product.model": "Galaxy S24"})]
    try:
        for phone in phones:
            phone.start()
        done = subprocess.run(
            [sys.executable, "-m", "mobileprune.cli", "profile", "--model", TINY, "--repeats", "3", "--block", "8",
             "--reference", TINY, "--processes", "2",
             "--runner", str(runner_binary), "--remote-dir", str(tmp_path / "device"),
             *[a for p in phones for a in ("--device", f"adb:{p.address}")]],
            check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    finally:
        for phone in phones:
            phone.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    from mobileprune.devices.latency_table import DeviceProfile

    made = sorted(p.name for p in (tmp_path / "device_profiles").glob("*.csv"))
    assert made == ["android-galaxy-s24-executorch-1t.csv", "android-pixel-8-executorch-1t.csv"]
    for name, phone in zip(["android-pixel-8", "android-galaxy-s24"], phones):
        profile = DeviceProfile.load(tmp_path / "device_profiles" / f"{name}-executorch-1t.csv")
        assert profile.meta.device == f"adb:{phone.address}"
        assert set(profile.table["key"]) == set(tiny_profile.table["key"])
