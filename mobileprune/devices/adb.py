"""AdbRunner: run .pte artifacts on an Android phone (or anything an ADB daemon serves) through
the on-device runner of android_runner/, behind the same Runner protocol as HostRunner.

What a run does: push the runner binary, the artifacts, the reference program and the inputs
(each skipped when the device already has the same bytes), then one shell command
``cd RUN && timeout T taskset MASK RUNNER --model ... --threads N ...`` (the device-side
``timeout`` ends a hung runner even if the link drops), parse the runner's JSON lines, pull the
outputs and ETDump files it wrote, and remove the run's directory.

Measurement hygiene on phones (big.LITTLE SoCs, thermal throttling): the runner is pinned with
``taskset`` to the fastest cores (by their max frequency), a cool-down pause runs before each
program after the first, and whole models are timed in turns with the profile's speed reference
(``measure_artifact``), which cancels throttling the way it cancels a VM's neighbours. The
device facts (model, SoC, ABI, cores, per-core max frequencies, governor, the pinned cores) go
into the profile's identity.
"""
from __future__ import annotations

import json
import os
import shlex
import struct
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from . import runtimes
from .adb_link import AdbLink, DeviceDisconnected, sha256
from .host import save_inputs
from .identity import DeviceIdentity
from .runner import Measurement, OpEvent, RunnerError

DEFAULT_REMOTE_DIR = "/data/local/tmp/mobileprune"
RUNNER_ENV = "MOBILEPRUNE_ANDROID_RUNNER"
BUILD_HINT = ("build android_runner for it (android_runner/README.md: 'Building the Android runner'; `make "
              f"runner-arm64` for an emulated arm64 device) and pass its path with --runner or ${RUNNER_ENV}")
# Where runner builds are found when none is given, one per ABI (build/runner-host for this
# machine, build/runner-arm64-v8a from `make runner-arm64`): the current directory's build/ and
# the checkout mobileprune is installed from (an editable install).
RUNNER_BUILDS = (Path("build"), Path(__file__).resolve().parents[2] / "build")
# ELF e_machine -> the Android ABI that runs it.
ELF_ABIS = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86"}
PROPS = {"manufacturer": "ro.product.manufacturer", "model": "ro.product.model", "soc": "ro.soc.model",
         "board": "ro.board.platform", "hardware": "ro.hardware", "abi": "ro.product.cpu.abi",
         "android": "ro.build.version.release", "sdk": "ro.build.version.sdk", "serial": "ro.serialno",
         "emulated": "ro.kernel.qemu"}  # 1 on Android's emulators (and our emulated arm64 device)
# Exit codes of the device's shell: timeout(1) killed it; the binary could not be run.
TIMED_OUT, NOT_EXECUTABLE, NOT_FOUND = 124, 126, 127


def binary_abi(path) -> str | None:
    """The Android ABI of an ELF executable (from its e_machine), None if not ELF."""
    with open(path, "rb") as handle:
        head = handle.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return ELF_ABIS.get(struct.unpack("<H", head[18:20])[0], f"machine {struct.unpack('<H', head[18:20])[0]}")


def found_runner_builds() -> list[Path]:
    """The runner builds in RUNNER_BUILDS (build/runner-*/mobileprune_runner), one path each."""
    found = {p.resolve(): p for d in RUNNER_BUILDS for p in sorted(d.glob("runner-*/mobileprune_runner"))}
    return list(found.values())


def pinned_cores(max_freqs_khz: list, threads: int) -> list[int]:
    """The cores to pin to: the fastest cluster (cores of the highest max frequency), with the
    next clusters added whole while it has fewer cores than ``threads`` (within a cluster the
    scheduler picks). [] when frequencies are unknown or all equal (nothing to choose)."""
    if not max_freqs_khz or not all(max_freqs_khz) or len(set(max_freqs_khz)) < 2:
        return []
    chosen: list[int] = []
    for freq in sorted(set(max_freqs_khz), reverse=True):
        chosen += [core for core, f in enumerate(max_freqs_khz) if f == freq]
        if len(chosen) >= threads:
            break
    return sorted(chosen)


def read_facts(link: AdbLink) -> dict:
    """Device facts from getprop and /sys, in one shell command."""
    script = "; ".join(
        [f'echo "prop {key}=$(getprop {prop})"' for key, prop in PROPS.items()]
        + [('for c in /sys/devices/system/cpu/cpu[0-9]*; do '
            'echo "freq ${c##*/} $(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null)"; done'),
           'echo "governor $(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null)"',
           'echo "taskset $(command -v taskset)"'])
    facts: dict = {}
    freqs = {}
    for line in link.check(script).splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "prop":
            key, _, value = rest.partition("=")
            facts[key] = value.strip() or None
        elif kind == "freq":
            core, _, value = rest.partition(" ")
            freqs[int(core[3:])] = int(value) if value.strip().isdigit() else None
        elif kind in ("governor", "taskset"):
            facts[kind] = rest.strip() or None
    facts["emulated"] = facts.get("emulated") == "1"
    facts["soc"] = facts.get("soc") or facts.pop("board", None) or facts.get("hardware")
    facts.pop("board", None)
    facts["cores"] = len(freqs) or None
    facts["max_freqs_khz"] = [freqs[c] for c in sorted(freqs)] if any(freqs.values()) else None
    return facts


class AdbRunner:
    """A device reached over ADB (``adb:SERIAL`` or ``adb:HOST:PORT``) as a Runner."""

    def __init__(self, device: str, runner_binary=None, remote_dir: str = DEFAULT_REMOTE_DIR,
                 key_path=None, timeout_s: float = 600.0, cooldown_s: float = 1.0, pin: bool = True,
                 link: AdbLink | None = None) -> None:
        self.device = device
        self.link = link or AdbLink(device, key_path)
        self.remote_dir = remote_dir.rstrip("/")
        self.timeout_s, self.cooldown_s, self.pin = timeout_s, cooldown_s, pin
        # Runner builds to choose from by the device's ABI: those given (a path, several, or
        # $MOBILEPRUNE_ANDROID_RUNNER, os.pathsep-separated), else the builds found (RUNNER_BUILDS).
        given = runner_binary or os.environ.get(RUNNER_ENV)
        if isinstance(given, (str, os.PathLike)):
            given = str(given).split(os.pathsep)
        self.runner_binaries = [Path(p) for p in given] if given else found_runner_builds()
        self.runner_binary: Path | None = None  # the one chosen for the device, once it is run
        self._facts: dict | None = None
        # Run directories this runner started and has not removed yet. Only these are searched
        # for results a drop left behind: another process (or another device sharing the same
        # storage, as emulated devices on one host do) may be running in its own directory.
        self._open_runs: set[str] = set()

    # --- the device ---------------------------------------------------------------------
    def facts(self) -> dict:
        if self._facts is None:
            self._facts = read_facts(self.link)
        return self._facts

    def identity(self) -> DeviceIdentity:
        facts = dict(self.facts())
        facts["pinned_cores"] = self._pinned(1) or None
        return DeviceIdentity("android", facts)

    def _pinned(self, threads: int) -> list[int]:
        facts = self.facts()
        if not self.pin or not facts.get("taskset") or not facts.get("max_freqs_khz"):
            return []
        return pinned_cores(facts["max_freqs_khz"], threads)

    def close(self) -> None:
        self.link.close()

    def reconnect(self) -> None:
        """Connect again and read the device's facts anew (it may be another device now). A
        runner the drop left running is ended: it would compete with the next measurements (the
        results it had written stay on the device and are collected by run_many)."""
        self.link.close()
        self.link.connect()
        self._facts = None
        # "[m]" matches the runner's command line but not this shell's own (which pkill would end).
        self.link.shell(f"pkill -f {shlex.quote(self.remote_dir + '/bin/[m]obileprune_runner')}")

    def clean(self) -> None:
        """Remove everything mobileprune put on the device."""
        self.link.check(f"rm -rf {shlex.quote(self.remote_dir)}")
        self._open_runs.clear()

    # --- files ----------------------------------------------------------------------------
    def _runner_on_device(self) -> str:
        self.runner_binary = self._runner_for(self.facts().get("abi"))
        remote = f"{self.remote_dir}/bin/mobileprune_runner"
        self.link.push_missing({str(self.runner_binary): remote}, mode=0o755)
        return remote

    def _runner_for(self, abi: str | None) -> Path:
        """The runner build for the device's ABI (by each binary's ELF machine), or a RunnerError
        naming what there is and what to build."""
        if not self.runner_binaries:
            raise RunnerError(f"no runner binary for {self.device} (ABI {abi}): {BUILD_HINT}")
        missing = [p for p in self.runner_binaries if not p.is_file()]
        if missing:
            raise RunnerError(f"runner binary {missing[0]} does not exist: {BUILD_HINT}")
        built_for = {p: binary_abi(p) for p in self.runner_binaries}
        for path, binary in built_for.items():
            if abi is None or binary == abi:  # (a device that does not say its ABI: the first given)
                return path
        found = ", ".join(f"{p} is built for {a or 'no known ABI (not an ELF file)'}" for p, a in built_for.items())
        raise RunnerError(f"{found}, {self.device} runs {abi}: {BUILD_HINT}")

    def _programs_on_device(self, paths: list[str]) -> dict:
        """{local path: remote path}, pushed where missing; remote names carry the content hash."""
        remote = {p: f"{self.remote_dir}/programs/{sha256(p)[:16]}-{Path(p).name}" for p in paths}
        self.link.push_missing(remote, mode=0o644)
        return remote

    # --- runs -----------------------------------------------------------------------------
    def run(self, artifact: str, **kwargs) -> Measurement:
        return next(iter(self.run_many([artifact], **kwargs)))

    def run_in_fresh_processes(self, artifact: str, processes: int, **kwargs) -> list[Measurement]:
        # The on-device runner is a native binary that starts in milliseconds: one run each.
        return [self.run(artifact, **kwargs) for _ in range(processes)]

    def run_many(self, artifacts: Iterable[str], *, threads: int = 1, warmup: int = 5, repeats: int = 50,
                 op_events: bool = False, inputs: list | None = None, keep_outputs: bool = False,
                 reference: str | None = None) -> Iterator[Measurement]:
        """As HostRunner.run_many. Results a dropped connection cut off from a previous call
        (the runner appends each to its run directory's results.jsonl on the device) are
        collected instead of measured again, when they were made with the same settings."""
        artifacts = [str(Path(a).resolve()) for a in artifacts]
        self._check_artifacts(artifacts + ([reference] if reference else []))
        settings = {"threads": threads, "warmup": warmup, "repeats": repeats, "op_events": op_events}
        with tempfile.TemporaryDirectory(prefix="mobileprune-adb-") as tmp:
            programs = self._programs_on_device(artifacts + ([reference] if reference else []))
            settings["reference"] = programs[reference] if reference else ""
            left = artifacts
            if inputs is None and not keep_outputs:
                found, spent = self._left_behind(programs, artifacts, settings)
                for reply in found:
                    yield self._measurement(reply, threads, False, repeats, tmp)
                for run_dir in spent:
                    self._remove_run(run_dir)
                done = {reply["artifact"] for reply in found}
                left = [a for a in artifacts if a not in done]
            if not left:
                return
            input_files = save_inputs(tmp, inputs, "in") if inputs is not None else []
            flags = ["--threads", str(threads), "--warmup", str(warmup), "--repeats", str(repeats),
                     "--pause-ms", str(int(self.cooldown_s * 1000))]
            replies, run_dir = self._invoke(left, reference, [input_files] if input_files else [], flags,
                                            threads, keep_outputs, op_events, programs)
            try:
                for reply in replies:
                    yield self._measurement(reply, threads, keep_outputs, repeats, tmp)
            finally:
                self._remove_run(run_dir)

    def _left_behind(self, programs: dict, artifacts: list[str], settings: dict) -> tuple[list, list]:
        """(replies, run directories) of runs this runner started, that a dropped connection
        left on the device, and that measured some of ``artifacts`` with ``settings``."""
        if not self._open_runs:
            return [], []
        runs = " ".join(shlex.quote(f"{d}/results.jsonl") for d in sorted(self._open_runs))
        out = self.link.check(f'for f in {runs}; do [ -f "$f" ] && cat "$f"; done; true')
        wanted = {programs[a]: a for a in artifacts}
        found = {}
        for line in out.splitlines():
            try:
                reply = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut in half by the drop
            same = all(reply.get(k) == v for k, v in settings.items())
            if "error" not in reply and same and reply.get("artifact") in wanted:
                reply["artifact"] = wanted[reply["artifact"]]
                found.setdefault(reply["artifact"], reply)
        # Every open run is spent now, with or without results: nothing else will read them.
        return [found[a] for a in artifacts if a in found], sorted(self._open_runs)

    def _remove_run(self, run_dir: str, *, check: bool = True) -> None:
        (self.link.check if check else self.link.shell)(f"rm -rf {shlex.quote(run_dir)}")
        self._open_runs.discard(run_dir)

    def outputs(self, artifact: str, input_sets: list, *, threads: int = 1,
                interpreter: str = "litert") -> list[list[np.ndarray]]:
        artifact = str(Path(artifact).resolve())
        self._check_artifacts([artifact])
        with tempfile.TemporaryDirectory(prefix="mobileprune-adb-") as tmp:
            sets = [save_inputs(tmp, arrays, f"set{k}_") for k, arrays in enumerate(input_sets)]
            if len(sets) == 1:  # the runner writes per-set outputs for two or more sets only
                sets = sets * 2
            programs = self._programs_on_device([artifact])
            replies, run_dir = self._invoke([artifact], None, sets, ["--threads", str(threads)], threads, True, False,
                                            programs)
            try:
                names = replies[0]["output_sets"][:len(input_sets)]
                return [[self._pull_array(name, tmp) for name in outs] for outs in names]
            finally:
                self._remove_run(run_dir)

    def _check_artifacts(self, paths: list[str]) -> None:
        for p in paths:
            if not Path(p).is_file():
                raise RunnerError(f"no such artifact: {p}")
            if Path(p).suffix != ".pte":
                raise RunnerError(f"{Path(p).name}: only .pte programs run on {self.device} so far (the "
                                  f".tflite path through LiteRT's benchmark_model is not built yet)")

    def _invoke(self, artifacts, reference, input_sets, flags, threads, keep_outputs, op_events, programs):
        """Push the runner and inputs, run the runner once; returns (JSON replies, run directory)."""
        runner = self._runner_on_device()
        local_inputs = [f for files in input_sets for f in files]
        run_dir = f"{self.remote_dir}/runs/{uuid.uuid4().hex[:12]}"
        self.link.check(f"mkdir -p {shlex.quote(run_dir)}/out")
        self._open_runs.add(run_dir)
        remote_inputs = {f: f"{run_dir}/{Path(f).name}" for f in local_inputs}
        for local, remote in remote_inputs.items():
            self.link.push(local, remote, 0o644)
        argv = [runner, *flags, "--results", f"{run_dir}/results.jsonl"]
        for a in artifacts:
            argv += ["--model", programs[a]]
        if reference:
            argv += ["--reference", programs[reference]]
        for files in input_sets:
            argv += ["--inputs", ",".join(remote_inputs[f] for f in files)]
        if keep_outputs:
            argv += ["--outputs-dir", f"{run_dir}/out"]
        if op_events:
            argv += ["--etdump-dir", f"{run_dir}/out"]
        pinned = self._pinned(threads)
        pin = f"taskset {sum(1 << c for c in pinned):x} " if pinned else ""
        limit = int(self.timeout_s)
        command = f"cd {shlex.quote(run_dir)} && timeout {limit} {pin}{' '.join(map(shlex.quote, argv))}"
        code, out = self.link.shell(command, timeout_s=self.timeout_s + 30)
        if code == TIMED_OUT:
            self._remove_run(run_dir, check=False)
            raise RunnerError(f"the runner on {self.device} was killed after {limit} s (the device's timeout): "
                              f"hung, or raise the runner's timeout_s")
        if code in (NOT_EXECUTABLE, NOT_FOUND):
            raise RunnerError(f"{self.device} cannot run {self.runner_binary} (exit {code}: {out.strip()[-300:]}): "
                              f"{BUILD_HINT}")
        replies = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        by_remote = {v: k for k, v in programs.items()}
        for reply in replies:
            reply["artifact"] = by_remote.get(reply["artifact"], reply["artifact"])
            if "error" in reply:
                raise RunnerError(f"{self.device} could not run {reply['artifact']}: {reply['error']}")
        if len(replies) < len(artifacts):
            raise RunnerError(f"the runner on {self.device} stopped after {len(replies)} of {len(artifacts)} "
                              f"programs (exit {code}): {out.strip()[-500:]}")
        return replies, run_dir

    def _pull_array(self, remote: str, tmp) -> np.ndarray:
        local = Path(tmp) / Path(remote).name
        self.link.pull(remote, local)
        return np.load(local)

    def _measurement(self, reply: dict, threads: int, keep_outputs: bool, repeats: int, tmp) -> Measurement:
        from .host_worker import etdump_events

        events = []
        if reply.get("etdump"):
            local = Path(tmp) / Path(reply["etdump"]).name
            self.link.pull(reply["etdump"], local)
            events = [OpEvent(e["name"], e["samples_ms"]) for e in etdump_events(str(local), repeats)]
        outputs = [self._pull_array(name, tmp) for name in reply.get("outputs", [])] if keep_outputs else None
        return Measurement(artifact=reply["artifact"], runtime=runtimes.for_artifact(reply["artifact"]).name,
                           threads=threads,
                           samples_ms=reply["samples_ms"], events=events, outputs=outputs,
                           reference_samples_ms=reply.get("reference_samples_ms", []),
                           ratios=reply.get("ratios", []))


__all__ = ["AdbRunner", "DeviceDisconnected", "binary_abi", "pinned_cores", "read_facts"]
