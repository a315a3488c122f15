"""The Runner protocol: run an artifact (.pte or .tflite) on a device and measure it.

HostRunner (this machine) implements it now; an ADB runner for phones implements the same.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol

import numpy as np


class RunnerError(RuntimeError):
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
    runtime: str  # "executorch" | "tflite"
    threads: int
    samples_ms: list  # wall time of one forward call, unprofiled
    events: list = field(default_factory=list)  # OpEvent, in execution order (ETDump, .pte only)
    outputs: list | None = None  # numpy arrays of the last run, when asked for

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
                "events": [{"name": e.name, "median_ms": e.median_ms} for e in self.events]}


class Runner(Protocol):
    device: str

    def run_many(self, artifacts: Iterable[str], *, threads: int = 1, warmup: int = 5,
                 repeats: int = 50, op_events: bool = False,
                 inputs: list | None = None, keep_outputs: bool = False) -> Iterator[Measurement]:
        """Measure each artifact in turn, yielding as soon as one is done."""
        ...

    def run(self, artifact: str, **kwargs) -> Measurement:
        ...

    def outputs(self, artifact: str, input_sets: list, *, threads: int = 1,
                interpreter: str = "litert") -> list[list[np.ndarray]]:
        """The artifact's outputs for each input set (a tuple of arrays), without timing.
        ``interpreter`` picks the .tflite interpreter ("litert", or "tensorflow" where the device
        has it); .pte files always run on ExecuTorch."""
        ...


def measure_artifact(runner: Runner, path, threads: int = 1, processes: int = 5, repeats: int = 50) -> dict:
    """An artifact's latency as profiles are calibrated and checked with.

    ``ms`` is the lowest per-process median over ``processes`` fresh processes. Why the lowest:
    on shared VMs other tenants only ever add time, in episodes that hold a whole process (seen
    here: one mobilenet_v2 program at 5.9 to 9.7 ms per process within a minute, min and median
    alike); a median over 3 processes still lands in one often, the lowest of 5 rarely does.
    ``median`` and ``max`` of the process medians show the spread.
    """
    medians = [runner.run(str(path), threads=threads, repeats=repeats).median_ms for _ in range(processes)]
    return {"ms": round(min(medians), 4), "median": round(statistics.median(medians), 4),
            "max": round(max(medians), 4), "processes": processes, "repeats": repeats, "threads": threads,
            "device": runner.device}
