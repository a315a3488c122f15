"""Find the channel block a device prefers by measuring it.

A GEMM-based convolution computes output channels in register tiles (XNNPACK's NR: 8 on many
ARM cores, 16 or 32 with AVX2/AVX-512 on x86), so its time is a staircase in the output width:
on one AVX-512 host a 3x3 conv at 28x28 with 64 inputs took 0.32 ms for every width from 40 to
64 and 0.48 ms from 72 to 96. Pruning to 40 channels then saves nothing over 64, and a cost
model interpolating between 32 and 64 prices 40 far too cheaply. The probe sweeps the output
width in steps of 8 and returns the largest block whose in-between widths cost (nearly) as much
as the block multiple above them: the step the pruner should keep channels in, and the step the
latency cost rounds output widths up to.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from .microbench import row_from
from .runner import Runner

CANDIDATES = (64, 32, 16, 8)
SWEEP = tuple(range(8, 136, 8))
_PROBE_ATTRS = dict(k=3, stride=1, padding=1, dilation=1, h=28, w=28, act="relu", group_width=0)
_PROBE_CIN = 64


def probe_rows() -> list[dict]:
    return [row_from("conv", _PROBE_ATTRS, _PROBE_CIN, c) for c in SWEEP]


def choose_block(times: dict[int, float], flat: float = 0.95) -> int:
    """The largest candidate block b such that widths halfway between multiples of b typically
    (median ratio) cost at least ``flat`` times the multiple above them: a staircase, where
    rounding up to b loses nothing real (a cost linear in the width gives ratios of 0.75-0.94).
    A median, not every width: single points on these VMs jump by 30%."""
    for b in CANDIDATES[:-1]:
        ratios = [times[w] / times[w + b // 2] for w in times
                  if w > b and w % b == b // 2 and w + b // 2 in times]
        if ratios and statistics.median(ratios) >= flat:
            return b
    return min(CANDIDATES)


def probe_block(runner: Runner, runtime: str, build_dir: Path, threads: int = 1, processes: int = 3,
                repeats: int = 30) -> tuple[int, dict[int, float]]:
    """Measure the sweep in ``processes`` fresh processes; returns (block, {cout: median ms})."""
    from .microbench import op_and_boundary_ms
    from .profiler import build

    rows = probe_rows()
    cout_of = {str(build(r, runtime, Path(build_dir)).resolve()): int(r["cout"]) for r in rows}
    samples: dict[int, list[float]] = {c: [] for c in cout_of.values()}
    for _ in range(processes):
        for m in runner.run_many(list(cout_of), threads=threads, repeats=repeats,
                                 op_events=runtime == "executorch"):
            samples[cout_of[m.artifact]].append(op_and_boundary_ms(m.events)[0] if m.events else m.median_ms)
    times = {c: round(statistics.median(v), 4) for c, v in samples.items()}
    return choose_block(times), times
