"""Micro-benchmarks: one priced layer at one width, as a small program for the runtime.

``grid_rows(layers, block, fractions)`` lists the table rows a model needs: every layer at
widths on a grid of multiples of ``block`` (the smallest prunable width, fractions of the full
width, the full width), so any width a pruner picks lies between measured neighbours. The
program that measures a row is its layer kind's (graph/kinds.py).
"""
from __future__ import annotations

from itertools import product

from ..graph.kinds import kind
from ..graph.layers import Layer, Width, signature

DEFAULT_FRACTIONS = (0.25, 0.5, 0.75)


def row_key(op: str, attrs: dict, cin: int, cout: int) -> str:
    s = signature(op, attrs)
    return (f"{op}|k{s['k']}|s{s['stride']}|p{s['padding']}|d{s['dilation']}|{s['h']}x{s['w']}"
            f"|{s['act'] or '-'}|g{s['group_width']}|{s['pattern'] or '-'}|{cin}x{cout}")


def grid(w: Width, block: int, fractions=DEFAULT_FRACTIONS) -> list[int]:
    full = w.full
    if not w.per_group:
        return [full]
    lo = max(block, w.fixed)
    pts = {lo, full}
    for f in fractions:
        v = int(round(full * f / block)) * block
        if lo < v < full:
            pts.add(v)
    return sorted(p for p in pts if p <= full)


def grid_rows(layer_list: list[Layer], block: int, fractions=DEFAULT_FRACTIONS) -> list[dict]:
    """Rows (dicts with key, op, attributes, cin, cout) to measure, deduplicated, in order."""
    rows: dict[str, dict] = {}
    for layer in layer_list:
        gw = layer.attrs.get("group_width", 0)
        if kind(layer.op).two_widths:
            pairs = product(grid(layer.cin, block, fractions), grid(layer.cout, block, fractions))
        else:
            pairs = ((c, c) for c in grid(layer.cout, block, fractions))
        for cin, cout in pairs:
            if gw and (cin % gw or cout % gw):
                continue  # a grouped conv keeps whole conv groups
            key = row_key(layer.op, layer.attrs, cin, cout)
            rows.setdefault(key, row_from(layer.op, layer.attrs, cin, cout))
    return list(rows.values())


def row_from(op: str, attrs: dict, cin: int, cout: int) -> dict:
    return {"key": row_key(op, attrs, cin, cout), **signature(op, attrs), "cin": cin, "cout": cout}


def program(row: dict):
    """(nn.Module, example inputs) measuring one row."""
    return kind(row["op"]).program(row)


# XNNPACK's operators at a micro-program's edges, absent inside a delegated model: layout
# transposes, and in an int8 program the conversions of its float inputs and outputs (inside an
# int8 model, activations stay int8 from one op to the next).
BOUNDARY_OPS = ("Transpose", "Convert")


def op_and_boundary_ms(events) -> tuple[float, float]:
    """(op ms, boundary ms) of a micro-benchmark: the operators at the program's edges
    (BOUNDARY_OPS) are the boundary, everything else is the op."""
    op = sum(e.median_ms for e in events if not e.name.startswith(BOUNDARY_OPS))
    boundary = sum(e.median_ms for e in events if e.name.startswith(BOUNDARY_OPS))
    return op, boundary
