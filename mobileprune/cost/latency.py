"""Latency from a DeviceProfile: per-layer interpolation between measured grid points, times the
profile's per-model calibration (whole-model latency / sum of the layers, see cost/calibrate.py).

Per layer kind the table holds op times on a grid of widths: (cin, cout) for conv/linear, one
width for the rest. The price of a width between grid points is the bilinear (or linear)
interpolation of its measured neighbours, which is exact for costs linear in cin, cout and
cin*cout, and differentiable in the expected widths. GEMM output widths are first rounded up to
the tile the profile measured for their kind (their time is a staircase in it, see
devices/blockprobe.py). Each kind's grid is first made monotone
from above (a wider layer is never priced cheaper: measurement noise must not give negative
gradients; a narrow point slower than a wider one is taken down to it, never the reverse).
A width outside the measured grid is never priced at zero: it raises MissingConfigs, or, with a
``measure`` callback (``--device``), is measured and appended to the profile.
"""
from __future__ import annotations

import bisect
from typing import Callable

import numpy as np
import torch

from ..devices import runtimes
from ..devices.microbench import grid_rows, row_from
from ..devices.latency_table import DeviceProfile
from ..errors import MobilepruneError
from ..graph.kinds import kind
from ..graph.layers import SIGNATURE_FIELDS, Layer, layers
from .base import LayerCost
from .calibrate import calibrate


class MissingConfigs(MobilepruneError, LookupError):
    """Layers whose widths the profile does not cover; ``rows`` says what to measure."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        shown = ", ".join(r["key"] for r in rows[:3])
        super().__init__(f"the profile has no measurements around {len(rows)} layer configuration(s) "
                         f"(e.g. {shown}); run `mobileprune profile` for this model or pass --device "
                         f"to measure them on demand")


class _Grid:
    """One layer kind's measured times on a (cin, cout) grid, monotone in both widths."""

    def __init__(self, rows) -> None:
        self.cins = sorted(set(int(c) for c in rows["cin"]))
        self.couts = sorted(set(int(c) for c in rows["cout"]))
        t = np.full((len(self.cins), len(self.couts)), np.nan)
        for ci, co, ms in zip(rows["cin"], rows["cout"], rows["ms"]):
            t[self.cins.index(int(ci)), self.couts.index(int(co))] = ms
        # Monotone from above: a point costs at most what any point at least as wide in both
        # widths measured (NaN = not measured stays NaN). Noise on a shared machine only ever
        # slows a run down, so of two measurements that disagree the lower is the truer; the
        # envelope from below let one slow narrow row raise every wider price up to the full
        # width (fashion:resnet_w0.5's unpruned net rose from 0.999 to 1.255 ms of prediction
        # once 134 narrow rows were measured on demand).
        filled = np.where(np.isnan(t), np.inf, t)[::-1, ::-1]
        filled = np.minimum.accumulate(np.minimum.accumulate(filled, axis=0), axis=1)[::-1, ::-1]
        self.t = np.where(np.isnan(t), np.nan, filled)

    @staticmethod
    def _sides(axis: list, v: float):
        """Grid indices at or below v (nearest first) and at or above v (nearest first)."""
        below = [i for i in range(len(axis) - 1, -1, -1) if axis[i] <= v + 1e-6]
        above = [i for i in range(len(axis)) if axis[i] >= v - 1e-6]
        return below, above

    def cell(self, ci: float, co: float, two_d: bool) -> tuple:
        """What the bracket of (ci, co) depends on: how many grid points lie at or below and
        strictly below each width. Widths in the same cell share one bracket (bracket())."""
        return (bisect.bisect_right(self.cins, ci + 1e-6), bisect.bisect_left(self.cins, ci - 1e-6),
                *((bisect.bisect_right(self.couts, co + 1e-6), bisect.bisect_left(self.couts, co - 1e-6))
                  if two_d else ()))

    def bracket(self, ci: float, co: float, two_d: bool):
        """The measured rectangle a width pair is interpolated in: (x0, x1, y0, y1, t00, t01, t10,
        t11), t[ab] the time at (x_a, y_b); one width is the degenerate rectangle y0 == y1.
        The table of a kind merges several layers' grids, so only some pairs exist: take the
        closest complete rectangle. A width on a grid point is bracketed by the point below it
        (same value, but a slope: a pruner starting at full width needs a gradient there).
        None if no measured points surround the query."""
        lo_i, hi_i = self._sides(self.cins, ci)
        if not two_d:  # one width: measured on the diagonal
            lo = [i for i in lo_i if self.couts.count(self.cins[i]) and not np.isnan(self._at(i, i))]
            hi = [i for i in hi_i if self.couts.count(self.cins[i]) and not np.isnan(self._at(i, i))]
            if not lo or not hi:
                return None
            i0 = lo[1] if lo[0] == hi[0] and len(lo) > 1 else lo[0]
            a, b = self._at(i0, i0), self._at(hi[0], hi[0])
            return (self.cins[i0], self.cins[hi[0]], 0.0, 0.0, a, a, b, b)
        measured = ~np.isnan(self.t)
        couts = np.array(self.couts, dtype=float)
        best = None
        on_grid = lo_i[0] if lo_i and hi_i and lo_i[0] == hi_i[0] else None
        for i0 in lo_i:
            for i1 in hi_i:
                both = measured[i0] & measured[i1]
                below = np.nonzero(both & (couts <= co + 1e-6))[0]
                above = np.nonzero(both & (couts >= co - 1e-6))[0]
                if not len(below) or not len(above):
                    continue
                j0, j1 = below[-1], above[0]
                if j0 == j1 and len(below) > 1:
                    j0 = below[-2]
                # Rank: a width measured on the grid is an end of its bracket (never interpolated
                # over) when such a rectangle is complete; then fewest degenerate sides; then the
                # tightest rectangle.
                rank = (on_grid is not None and on_grid not in (i0, i1), (i0 == i1) + (j0 == j1),
                        self.cins[i1] - self.cins[i0] + couts[j1] - couts[j0])
                if best is None or rank < best[0]:
                    best = (rank, i0, i1, j0, j1)
        if best is None:
            return None
        _, i0, i1, j0, j1 = best
        c = self.t[np.ix_([i0, i1], [j0, j1])]
        return (self.cins[i0], self.cins[i1], float(couts[j0]), float(couts[j1]),
                c[0, 0], c[0, 1], c[1, 0], c[1, 1])

    def _at(self, i: int, j_of_cin: int) -> float:
        return self.t[i, self.couts.index(self.cins[j_of_cin])]


def _round_up(c: torch.Tensor, tile: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """The width a GEMM really computes: output channels come in register tiles of the device's
    block (devices/blockprobe.py), so 40 of 64 channels cost what 64 do when the tile is 32.
    Capped at the full width, which is measured as it is. Per layer; tile 0 = not tiled."""
    safe = torch.where(tile > 0, tile, torch.ones_like(tile))
    up = torch.minimum(torch.ceil(c / safe - 1e-9) * safe, full)
    return torch.where(tile > 0, up, c)


def _widths_around(width: float, step: int, full: int) -> tuple[int, ...]:
    """The channel counts a width lies between: itself when whole, else the multiples of
    ``step`` either side (below one step, the whole width under it; at most ``full``)."""
    if float(width).is_integer():
        return (int(width),)
    low = int(np.floor(width / step)) * step or max(1, int(np.floor(width)))
    high = int(np.ceil(width / step)) * step
    return tuple(sorted({min(full, low), min(full, high)}))


def _bilinear(x: torch.Tensor, y: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Interpolate every layer in its bracket (rows of ``b`` as _Grid.bracket returns them); a
    degenerate side (x0 == x1) takes the value at x0 with no slope along it."""
    x0, x1, y0, y1, t00, t01, t10, t11 = b.unbind(1)
    u = torch.where(x1 > x0, (x - x0) / torch.where(x1 > x0, x1 - x0, torch.ones_like(x0)), 0 * x)
    v = torch.where(y1 > y0, (y - y0) / torch.where(y1 > y0, y1 - y0, torch.ones_like(y0)), 0 * y)
    lo = t00 + u * (t10 - t00)
    hi = t01 + u * (t11 - t01)
    return lo + v * (hi - lo)


def staircase_prices(rows, two_widths: bool, tile: int | None, cin: float, widths, full: int) -> list:
    """The uncalibrated price LatencyCost gives one layer configuration at each output width of
    ``widths`` (for a one-width kind the width is its input width too): rounded up to ``tile``
    (at most ``full``), interpolated on the monotone grid of ``rows`` (one signature of a
    table). None where the table does not bracket a width. For the report's staircases."""
    grid, out = _Grid(rows), []
    ups = _round_up(torch.tensor([float(w) for w in widths], dtype=torch.float64),
                    torch.tensor(float(tile or 0), dtype=torch.float64), torch.tensor(float(full), dtype=torch.float64))
    for up in ups.tolist():
        ci = cin if two_widths else up
        b = grid.bracket(ci, up, two_widths)
        out.append(None if b is None else float(_bilinear(*(torch.tensor([float(v)], dtype=torch.float64)
                                                            for v in (ci, up)), torch.tensor([b], dtype=torch.float64))))
    return out


class LatencyCost(LayerCost):
    """Calibrated latency of a width configuration, differentiable in the kept fractions.

    A pruning loop calls it (and its backward) every step, so pricing is a few tensor ops over
    all layers: the widths are one matrix product (WidthMatrix), each layer's measured bracket is
    looked up in a cache keyed by its grid cell (a Python search of the table only when a width
    enters a cell it has not been in), and the interpolation is vectorised."""

    unit = "ms"

    def __init__(self, analysis, profile: DeviceProfile, model_key: str | None = None, layer_list=None,
                 measure: Callable[[list], None] | None = None, calibration: str = "scale",
                 exclude: tuple = (), measure_step: int | None = None) -> None:
        if layer_list is None:  # priced as the profile's runtime executes them (its fusions)
            layer_list = layers(analysis, runtimes.get(profile.meta.runtime).fused_activations)
        super().__init__(analysis, layer_list)
        self.profile = profile
        self.measure = measure  # rows -> None: measures them and appends them to the profile
        # A fractional width the table cannot bracket (a gate's expected width) is measured at
        # the multiples of this step either side of it (the pruning block): at step 1 a width
        # drifting down through a training run would ask for a new row at nearly every step.
        # None: not pruning (e.g. predict --device): the profile's grid and the widths asked.
        self.pruning_block = measure_step
        self.two_widths = [kind(layer.op).two_widths for layer in self.layers]
        self.tiles = torch.tensor([float(self.tile(layer) or 0) for layer in self.layers], dtype=torch.float64)
        # One width: the tile applies to it (cin is cout); two: only the output width is tiled.
        self.in_tiles = torch.where(torch.tensor(self.two_widths, dtype=torch.bool), 0.0, self.tiles)
        self.full_in = torch.tensor([float(layer.cin.full) for layer in self.layers], dtype=torch.float64)
        self.full_out = torch.tensor([float(layer.cout.full) for layer in self.layers], dtype=torch.float64)
        self._build()
        full, missing = self._prices(None)  # the full-width sum as the table is now (calibrate's scale)
        self.calibration, self.scale, self.overhead_ms = calibrate(
            profile.meta, model_key, calibration, exclude, n_layers=len(self.layers),
            layers_ms=None if missing else float(full.sum()))

    def _build(self) -> None:
        grids = {tuple(sig): _Grid(rows) for sig, rows in self.profile.table.groupby(list(SIGNATURE_FIELDS))}
        self.layer_grids = [grids.get(tuple(layer.signature().values())) for layer in self.layers]
        self._brackets: dict = {}  # (layer index, cell) -> bracket or None

    def __call__(self, fractions: dict | None = None) -> torch.Tensor:
        return self.layers_total(fractions) * self.scale + self.overhead_ms

    def layers_total(self, fractions: dict | None = None) -> torch.Tensor:
        for attempt in (0, 1):
            prices, missing = self._prices(fractions)
            if not missing:
                return prices.sum()
            rows = self._rows_for(missing)
            if self.measure is None or attempt:
                raise MissingConfigs(rows)
            self.measure(rows)
            self._build()
        raise AssertionError("unreachable")

    def per_layer(self, fractions: dict | None = None) -> list[tuple[Layer, float]]:
        prices, missing = self._prices(fractions)
        if missing:
            raise MissingConfigs(self._rows_for(missing))
        return list(zip(self.layers, prices.detach().tolist()))

    def _prices(self, fractions):
        """Uncalibrated price of every layer (a tensor), or the layers the table cannot price.
        Tiled layers take the value at their tiled widths and the slope at their own widths
        (straight-through: a staircase has no slope to give a pruner)."""
        cin, cout = self.widths(fractions)
        with torch.no_grad():
            tcin = _round_up(cin, self.in_tiles, self.full_in)
            tcout = _round_up(cout, self.tiles, self.full_out)
        own, tiled, missing = [], [], []
        for i, (ci, co, tci, tco) in enumerate(zip(cin.detach().tolist(), cout.detach().tolist(), tcin.tolist(), tcout.tolist())):
            b, bt = self._bracket(i, ci, co), self._bracket(i, tci, tco)
            if b is None or bt is None:
                missing.append((self.layers[i], (ci, co), (tci, tco)))
            else:
                own.append(b)
                tiled.append(bt)
        if missing:
            return None, missing
        if not own:
            return torch.zeros(0, dtype=torch.float64), []
        price = _bilinear(cin, cout, torch.tensor(own, dtype=torch.float64))
        at_tile = _bilinear(tcin, tcout, torch.tensor(tiled, dtype=torch.float64))
        return price + (at_tile - price).detach(), []

    def _bracket(self, i: int, ci: float, co: float):
        grid = self.layer_grids[i]
        if grid is None:
            return None
        two = self.two_widths[i]
        key = (i, grid.cell(ci, co, two))
        if key not in self._brackets:
            self._brackets[key] = grid.bracket(ci, co, two)
        return self._brackets[key]

    def tile(self, layer: Layer) -> int | None:
        """The channel tile the profile's device computes this layer's output width in (measured
        by the block probe), or None where the kind follows no probed staircase."""
        probed = kind(layer.op).tiles
        return self.profile.meta.tiles.get(probed) if probed else None

    def _rows_for(self, missing) -> list[dict]:
        """What to measure so every missing layer is bracketed: its grid, its grid again with
        the pruning block (``measure_step``, when given) as the smallest width when that is
        below the profile's block, and the widths asked for, as they are and rounded up to the layer's
        tile. A fractional width (a gate's expected width, 5.3 channels) is bracketed by the
        multiples of ``measure_step`` either side of it (capped at the full width).

        Why the whole grid at the pruning block: a two-width layer is priced inside a measured
        rectangle, and rows at only the widths asked for complete the rectangle of that plan
        alone, so the next plan asked for more (at block 2, a measured-rounds search on
        fashion:mobilenet_w1 measured rows for 10 minutes, a few per plan it priced). With every
        pair of grid widths measured, any width from one block up is bracketed, at a bounded
        cost of (grid points)^2 rows per layer, once."""
        rows = {}
        for layer, *widths in missing:
            block = self.profile.meta.block
            for grid_block in sorted({block, min(self.pruning_block or block, block)}):
                for r in grid_rows([layer], grid_block):
                    rows.setdefault(r["key"], r)
            two, step = kind(layer.op).two_widths, max(1, int(self.pruning_block or 1))
            for cin, cout in widths:
                for ci in _widths_around(cin, step, layer.cin.full):
                    for co in (_widths_around(cout, step, layer.cout.full) if two else (ci,)):
                        r = row_from(layer.op, layer.attrs, ci, co)
                        rows.setdefault(r["key"], r)
        return list(rows.values())
