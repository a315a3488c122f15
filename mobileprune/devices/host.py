"""HostRunner: run .pte (ExecuTorch, XNNPACK) and .tflite (LiteRT) artifacts on this machine."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from . import host_worker, runtimes
from .host_worker import READY, etdump_events
from .identity import DeviceIdentity, host_identity
from .runner import Measurement, OpEvent, RunnerError

# The worker started as a script, not as ``-m mobileprune.devices.host_worker``: ``-m`` runs the
# package's __init__ first, which imports torch and the whole library (about 3 s of CPU per
# fresh process on a 2-core Xeon VM, and a .tflite worker needs neither). The worker imports
# only the standard library and numpy at module level; ``-P`` keeps its own folder off sys.path,
# so no module of devices/ can shadow a standard one (devices/profile.py, as latency_table.py
# was named until 2026-12-06, shadowed ``profile``, which cProfile imports).
WORKER = [sys.executable, "-P", host_worker.__file__]
SCRATCH = "mobileprune-run-"  # + the pid of the process that made it: a folder for a worker's files
ORPHAN_AGE_S = 3600  # a scratch folder of a dead process this old is removed by the next runner


def scratch_dir() -> tempfile.TemporaryDirectory:
    """A temporary folder for one request's files. Removed when the request ends, but not when
    the process is killed (SIGKILL; tests kill profiling runs on purpose): so each is named after
    its process, and folders of processes no longer alive, older than ORPHAN_AGE_S, go first."""
    remove_orphans()
    return tempfile.TemporaryDirectory(prefix=f"{SCRATCH}{os.getpid()}-")


def remove_orphans(now: float | None = None) -> list[Path]:
    """Remove the scratch folders whose process is gone (by pid; a pid reused by a live process
    keeps its folder) and that were last changed ORPHAN_AGE_S ago; returns those removed."""
    now = time.time() if now is None else now
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH}*-*"):
        pid = folder.name[len(SCRATCH):].split("-", 1)[0]
        try:
            old = now - folder.stat().st_mtime > ORPHAN_AGE_S
        except OSError:
            continue  # removed meanwhile
        if pid.isdigit() and old and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class HostRunner:
    device = "host"

    def __init__(self, timeout_s: float = 600.0) -> None:
        self.timeout_s = timeout_s

    def identity(self) -> DeviceIdentity:
        return host_identity()

    def run(self, artifact: str, **kwargs) -> Measurement:
        return next(iter(self.run_many([artifact], **kwargs)))

    def outputs(self, artifact: str, input_sets: list, *, threads: int = 1,
                interpreter: str = "litert") -> list[list[np.ndarray]]:
        """The artifact's outputs for each input set (a tuple of arrays), computed without timing;
        ``interpreter`` "tensorflow" runs a .tflite with tf.lite.Interpreter instead of LiteRT."""
        artifact = str(Path(artifact).resolve())
        with scratch_dir() as tmp:
            files = [save_inputs(tmp, arrays, f"set{k}_") for k, arrays in enumerate(input_sets)]
            request = {"artifacts": [artifact], "code": worker_code([artifact]), "threads": threads,
                       "input_sets": files, "outputs_dir": tmp, "interpreter": interpreter}
            reply = self._ask(request)[0]
            return [[np.load(f) for f in names] for names in reply["output_sets"]]

    def _ask(self, request: dict) -> list[dict]:
        env = dict(os.environ, OMP_NUM_THREADS=str(request["threads"]))
        try:
            proc = subprocess.run(WORKER, input=json.dumps(request), capture_output=True, text=True, env=env,
                                  timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise RunnerError(f"host worker timed out after {self.timeout_s:.0f} s") from None
        replies = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        for reply in replies:
            if "error" in reply:
                raise RunnerError(f"host could not run {reply['artifact']}: {reply['error']}")
        if len(replies) < len(request["artifacts"]):
            tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
            raise RunnerError(f"host worker stopped (exit {proc.returncode}): {tail}")
        return replies

    def run_many(self, artifacts: Iterable[str], *, threads: int = 1, warmup: int = 5,
                 repeats: int = 50, op_events: bool = False, inputs: list | None = None,
                 keep_outputs: bool = False, reference: str | None = None) -> Iterator[Measurement]:
        yield from self._serve(self._start(threads), artifacts, threads=threads, warmup=warmup, repeats=repeats,
                               op_events=op_events, inputs=inputs, keep_outputs=keep_outputs, reference=reference)

    def run_in_fresh_processes(self, artifact: str, processes: int, **kwargs) -> list[Measurement]:
        """``artifact`` measured once in each of ``processes`` fresh processes, one after another.
        The processes start together and import their runtime side by side (5-7 s for torch and
        ExecuTorch, most of a measurement's time when started one by one); the first is sent its
        request only when all are ready, so no process imports while another is timing."""
        preload = ",".join(runtimes.for_artifact(artifact).worker.preload)
        workers = [self._start(kwargs.get("threads", 1), preload=preload) for _ in range(processes)]
        try:
            for proc in workers:
                self._wait_ready(proc)
            return [list(self._serve(proc, [artifact], **kwargs))[0] for proc in workers]
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    @staticmethod
    def _start(threads: int, preload: str | None = None) -> subprocess.Popen:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        return subprocess.Popen([*WORKER, *(["--preload", preload] if preload is not None else [])],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)

    @staticmethod
    def _wait_ready(proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            if line.strip() == READY:
                return
        err = proc.stderr.read()[-2000:].strip()
        raise RunnerError(f"host worker stopped before it was ready (exit {proc.wait()}): "
                          f"{err.splitlines()[-1] if err else ''}")

    def _serve(self, proc: subprocess.Popen, artifacts: Iterable[str], *, threads: int = 1, warmup: int = 5,
               repeats: int = 50, op_events: bool = False, inputs: list | None = None,
               keep_outputs: bool = False, reference: str | None = None) -> Iterator[Measurement]:
        """Send a started worker its one request and yield its measurements as they come."""
        artifacts = [str(Path(a).resolve()) for a in artifacts]
        try:
            if reference is not None and not Path(reference).is_file():
                raise RunnerError(f"no such reference program: {reference}")
            with scratch_dir() as tmp:
                input_files = save_inputs(tmp, inputs, "in") if inputs is not None else None
                request = {"artifacts": artifacts, "code": worker_code(artifacts), "threads": threads,
                           "warmup": warmup, "repeats": repeats,
                           "op_events": op_events, "etdump_dir": tmp, "inputs": input_files,
                           "outputs_dir": tmp if keep_outputs else None,
                           "reference": str(Path(reference).resolve()) if reference else None}
                proc.stdin.write(json.dumps(request))
                proc.stdin.close()
                done = 0
                for line in proc.stdout:
                    if not line.startswith("{"):
                        continue  # runtime chatter on stdout
                    reply = json.loads(line)
                    done += 1
                    if "error" in reply:
                        raise RunnerError(f"host could not run {reply['artifact']}: {reply['error']}")
                    yield self._measurement(reply, threads, keep_outputs)
                proc.wait(timeout=self.timeout_s)
                if done < len(artifacts):
                    err = proc.stderr.read()[-2000:]
                    raise RunnerError(f"host worker stopped after {done} of {len(artifacts)} artifacts "
                                      f"(exit {proc.returncode}): {err.strip().splitlines()[-1] if err.strip() else ''}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    @staticmethod
    def _measurement(reply: dict, threads: int, keep_outputs: bool) -> Measurement:
        path = reply["artifact"]
        outputs = [np.load(f) for f in reply.get("outputs", [])] if keep_outputs else None
        return Measurement(
            artifact=path, runtime=runtimes.for_artifact(path).name,
            threads=threads, samples_ms=reply["samples_ms"],
            events=[OpEvent(e["name"], e["samples_ms"]) for e in etdump_events(**reply["etdump"])]
            if reply.get("etdump") else [],
            outputs=outputs, reference_samples_ms=reply.get("reference_samples_ms", []),
            ratios=reply.get("ratios", []), process=reply.get("process", {}))


def worker_code(artifacts: list[str]) -> list[dict]:
    """Per artifact, the functions the worker runs it with: its runtime's WorkerCode (an
    artifact of no registered runtime is refused here, before a process starts)."""
    return [{"run": c.run, "outputs": c.outputs} for c in (runtimes.for_artifact(a).worker for a in artifacts)]


def save_inputs(directory, arrays, prefix: str) -> list[str]:
    """Write input arrays as float32 .npy files for the worker; returns their paths in order."""
    paths = []
    for i, arr in enumerate(arrays):
        f = Path(directory) / f"{prefix}{i}.npy"
        np.save(f, np.ascontiguousarray(arr, dtype=np.float32))
        paths.append(str(f))
    return paths
