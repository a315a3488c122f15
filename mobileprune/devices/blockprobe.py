"""Find the channel tiles a device computes in, by measuring them.

A GEMM-based convolution computes output channels in register tiles (XNNPACK's NR: 8 on many
ARM cores, 16 or 32 with AVX2/AVX-512 on x86), so its time is a staircase in the output width:
on one AVX-512 host a 3x3 conv at 28x28 with 64 inputs took 0.32 ms for every width from 40 to
64 and 0.48 ms from 72 to 96. Pruning to 40 channels then saves nothing over 64, and a cost
model interpolating between 32 and 64 prices 40 far too cheaply. Depthwise kernels tile their
channels too, by a step of their own (on that host 56 channels cost more than 64).

The probe sweeps each probed kind's width in steps of 8 and returns, per kind, the largest
block whose in-between widths cost (nearly) as much as the block multiple above them. The
conv's tile is the device's block: the step the pruner keeps channels in. Every kind's tile is
stored in the profile (``tiles``), and the latency cost rounds that kind's widths up to it.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from .builds import build_all
from .microbench import op_and_boundary_ms, row_from
from .runner import Runner

CANDIDATES = (64, 32, 16, 8)
SWEEP = tuple(range(8, 136, 8))
# kind -> (attributes, fixed input width or None for one-width kinds)
PROBES = {
    "conv": (dict(k=3, stride=1, padding=1, dilation=1, h=28, w=28, act="relu", group_width=0), 64),
    "dwconv": (dict(k=3, stride=1, padding=1, dilation=1, h=56, w=56, act="relu", group_width=0), None),
}


def probe_rows(kind: str, widths=SWEEP) -> list[dict]:
    attrs, cin = PROBES[kind]
    return [row_from(kind, attrs, cin or c, c) for c in widths]


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


def probe_tiles(runner: Runner, runtime, build_dir: Path, threads: int = 1, processes: int = 3,
                repeats: int = 30, widths=SWEEP) -> tuple[dict[str, int], dict[str, dict[int, float]]]:
    """Measure every probed kind's sweep (``widths``, multiples of 8) in ``processes`` fresh
    processes; returns ({kind: tile}, {kind: {width: median ms}})."""
    tiles, sweeps = {}, {}
    rows = {kind: probe_rows(kind, widths) for kind in PROBES}
    paths = iter(build_all([r for kind in PROBES for r in rows[kind]], runtime, build_dir))
    for kind in PROBES:
        width_of = {str(next(paths).resolve()): int(r["cout"]) for r in rows[kind]}
        samples: dict[int, list[float]] = {c: [] for c in width_of.values()}
        for _ in range(processes):
            for m in runner.run_many(list(width_of), threads=threads, repeats=repeats,
                                     op_events=runtime.per_op_events):
                samples[width_of[m.artifact]].append(op_and_boundary_ms(m.events)[0] if m.events else m.median_ms)
        sweeps[kind] = {c: round(statistics.median(v), 4) for c, v in samples.items()}
        tiles[kind] = choose_block(sweeps[kind])
    return tiles, sweeps
