"""The Runner protocol: run an artifact (.pte or .tflite) on a device and measure it.

HostRunner (this machine) implements it now; an ADB runner for phones implements the same.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol

import numpy as np

from ..errors import MobilepruneError
from .identity import DeviceIdentity


class RunnerError(MobilepruneError, RuntimeError):
    """The device could not run an artifact (missing file, runtime error, device gone)."""


@dataclass
class OpEvent:
    """One operator as the runtime's profiler names it, e.g. 'Convolution (NHWC, F32) DWConv #1'."""

    name: str
    samples_ms: list

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)


@dataclass
class Measurement:
    artifact: str
    runtime: str  # a name in devices.runtimes.RUNTIMES
    threads: int
    samples_ms: list  # wall time of one forward call, unprofiled
    events: list = field(default_factory=list)  # OpEvent, in execution order (ETDump, .pte only)
    outputs: list | None = None  # numpy arrays of the last run, when asked for
    reference_samples_ms: list = field(default_factory=list)  # the reference's calls, when timed in turns
    ratios: list = field(default_factory=list)  # per turn: target median / reference median
    process: dict = field(default_factory=dict)  # host: {"pid", "ready_at", "timed": [start, end]} (wall clock)

    @property
    def reference_ratio(self) -> float | None:
        """The target's latency in units of the reference's, when it was timed in turns with one."""
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def spread(self) -> float:
        """p90 / p10 of the samples: 1.05 is a quiet machine, above 1.2 a noisy one."""
        q = np.percentile(self.samples_ms, [10, 90])
        return float(q[1] / q[0]) if q[0] > 0 else float("inf")

    def to_dict(self) -> dict:
        return {"artifact": self.artifact, "runtime": self.runtime, "threads": self.threads,
                "median_ms": self.median_ms, "spread": self.spread, "samples_ms": self.samples_ms,
                "events": [{"name": e.name, "median_ms": e.median_ms} for e in self.events],
                "reference_ratio": self.reference_ratio}


class Runner(Protocol):
    device: str  # how the device is reached: host, adb:SERIAL, ...

    def identity(self) -> "DeviceIdentity":
        """Which device this is (devices/identity.py): what a profile made here records, and what
        a profile is compared with before anything is measured against it."""
        ...

    def run_many(self, artifacts: Iterable[str], *, threads: int = 1, warmup: int = 5,
                 repeats: int = 50, op_events: bool = False,
                 inputs: list | None = None, keep_outputs: bool = False,
                 reference: str | None = None) -> Iterator[Measurement]:
        """Measure each artifact in turn, yielding as soon as one is done. With ``reference`` (an
        artifact of the same format), each is timed in turns with it in one process and the
        Measurement carries the per-turn ratios (see ``SpeedReference``)."""
        ...

    def run(self, artifact: str, **kwargs) -> Measurement:
        ...

    def run_in_fresh_processes(self, artifact: str, processes: int, **kwargs) -> list[Measurement]:
        """``artifact`` measured (as ``run``) once in each of ``processes`` fresh processes, one
        after another: how latencies are measured (measure_artifact)."""
        ...

    def outputs(self, artifact: str, input_sets: list, *, threads: int = 1,
                interpreter: str = "litert") -> list[list[np.ndarray]]:
        """The artifact's outputs for each input set (a tuple of arrays), without timing.
        ``interpreter`` picks the .tflite interpreter ("litert", or "tensorflow" where the device
        has it); .pte files always run on ExecuTorch."""
        ...


def measure_artifact(runner: Runner, path, threads: int = 1, processes: int = 5, repeats: int = 50,
                     reference: "SpeedReference | None" = None) -> dict:
    """An artifact's latency as profiles are calibrated and checked with.

    Without ``reference``, ``ms`` is the lowest per-process median over ``processes`` fresh
    processes. Why the lowest: on shared VMs other tenants only ever add time, in episodes that
    hold a whole process (seen here: one mobilenet_v2 program at 5.9 to 9.7 ms per process within
    a minute, min and median alike); ``median`` and ``max`` of the process medians show the spread.

    With a ``reference`` (see ``SpeedReference``), ``ms`` is speed-normalized: the median over
    processes of (artifact / reference, timed in turns) times the reference's latency stored in
    the profile, i.e. the artifact's latency at the speed the device had when the profile was
    made. ``raw_ms`` keeps the lowest process median of the wall-clock times, ``ratio`` the ratio.
    """
    runs = runner.run_in_fresh_processes(str(path), processes, threads=threads, repeats=repeats,
                                         reference=str(reference.path) if reference else None)
    medians = [m.median_ms for m in runs]
    result = {"ms": round(min(medians), 4), "median": round(statistics.median(medians), 4),
              "max": round(max(medians), 4), "processes": processes, "repeats": repeats, "threads": threads,
              "device": runner.device}
    if reference is not None:
        ratios = [m.reference_ratio for m in runs]
        ratio = statistics.median(ratios)
        result.update(raw_ms=result["ms"], ratio=round(ratio, 5), ratio_spread=round(max(ratios) / min(ratios), 4),
                      ms=round(ratio * reference.ms, 4), reference_ms=reference.ms, normalized=True)
    return result


def ratios_in_turns(runner: Runner, target, others: list, threads: int = 1, processes: int = 5,
                    repeats: int = 50) -> list[float]:
    """``target``'s latency over each of ``others``', timed against each other: in each of
    ``processes`` fresh processes, ``target`` is loaded once and every other program is timed
    in turns with it; per other, the median over processes of the per-process median of the
    turns' ratios. The estimate ``measure_artifact(runner, target, reference=other)`` gives
    per other, in ``processes`` processes instead of ``processes`` per other (a fresh process
    costs 3.5 s of imports on a 2-core AMD EPYC VM, more than a small net's timing)."""
    per_other: list[list[float]] = [[] for _ in others]
    for _ in range(processes):
        runs = runner.run_many([str(o) for o in others], threads=threads, repeats=repeats, reference=str(target))
        for k, m in enumerate(runs):  # each turn's ratio is other / target: inverted
            per_other[k].append(statistics.median(1 / r for r in m.ratios))
    return [statistics.median(v) for v in per_other]


@dataclass
class SpeedReference:
    """A fixed program the device runs in turns with every measured artifact, and its latency
    when the profile was made: measured latencies become ``ratio * ms``, comparable across hours
    on a machine whose speed drifts (see host_worker._time_paired for the evidence)."""

    path: str
    ms: float
