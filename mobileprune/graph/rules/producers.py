"""Rules for ops that start a new channel space: convolutions and linear layers.

A producer's output channels are fresh atoms; its input channels are consumed (the weight's
input dimension is cut by the incoming atoms). Grouped and depthwise convolutions couple input to
output: every channel of one conv group, in and out, becomes one atom, so a conv group is kept
or removed whole and the slimmed conv simply has fewer groups.
"""
from __future__ import annotations

import numpy as np

from ..atoms import UNTRACKED
from ..values import ParamView, T, Tracked, ids_of, vector_along


def _whole_param(t: T | None) -> ParamView | None:
    """The parameter itself (not a slice or computed tensor), else None."""
    if t is None or not isinstance(t.value, ParamView):
        return None
    pv = t.value
    if len(pv.fqns) == 1 and tuple(pv.dims) == tuple(range(len(pv.param_shape))) and tuple(t.shape) == tuple(pv.param_shape):
        return pv
    return None


def _channels_in(ctx, x: T, dim: int) -> np.ndarray:
    vec = vector_along(ids_of(x), dim, x.shape[dim])
    if vec is None:
        ctx.freeze(ids_of(x), "input channels vary along another dimension")
        return np.full(x.shape[dim], UNTRACKED, dtype=np.int64)
    return vec


def _place(vec: np.ndarray, dim: int, rank: int) -> Tracked:
    shape = [1] * rank
    shape[dim] = len(vec)
    return Tracked(vec.reshape(shape))


def _cut_bias(ctx, bias: T | None, out_ids: np.ndarray) -> bool:
    if bias is None:
        return True
    pv = _whole_param(bias)
    if pv is None:
        return False
    ctx.cut_view(pv, 0, out_ids, "producer")
    return True


def convolution(ctx, a: dict, out_shape: tuple):
    x, w, bias = a["input"], a["weight"], a.get("bias")
    transposed = bool(a.get("transposed", False)) or ctx.op.startswith("conv_transpose")
    groups = int(a.get("groups", 1) or 1)
    pw = _whole_param(w)
    if pw is None:
        return ctx.unknown(a, "convolution whose weight is computed, not a parameter")
    cdim = 1 if len(x.shape) == len(w.shape) else 0  # batched vs unbatched input
    in_ids = _channels_in(ctx, x, cdim)
    cout = out_shape[cdim]
    w_in, w_out = (0, 1) if transposed else (1, 0)
    if groups == 1:
        out_ids = ctx.fresh(cout)
        ctx.cut_view(pw, w_in, in_ids, "consumer")
        ctx.cut_view(pw, w_out, out_ids, "producer")
    else:
        out_ids = _grouped(ctx, pw, in_ids, cout, groups, transposed)
    if not _cut_bias(ctx, bias, out_ids):
        ctx.freeze(out_ids, "convolution bias is computed, not a parameter")
    return _place(out_ids, cdim, len(out_shape))


def _grouped(ctx, pw: ParamView, in_ids: np.ndarray, cout: int, groups: int, transposed: bool):
    cin_g, cout_g = len(in_ids) // groups, cout // groups
    group_atoms = ctx.fresh(groups)
    out_ids = np.repeat(group_atoms, cout_g)
    if ctx.module_type_of(pw.fqns[0]) is None:
        # F.conv2d(x, w, groups=G) in user code: slimming cannot rewrite the literal G.
        ctx.freeze(out_ids, "grouped convolution called functionally (groups cannot be updated)")
        ctx.freeze(in_ids, "grouped convolution called functionally (groups cannot be updated)")
    ctx.atoms.union_arrays(np.repeat(group_atoms, cin_g), in_ids)
    fed_fixed = (in_ids.reshape(groups, cin_g) < 0).any(axis=1)
    if fed_fixed.any():
        ctx.freeze(group_atoms[fed_fixed], "conv group fed by channels that cannot be removed")
    # The weight's per-group input dimension is never cut; whole groups go along the group dim.
    ctx.cut_view(pw, 0, in_ids if transposed else out_ids, "producer")
    return out_ids


def linear(ctx, a: dict, out_shape: tuple):
    x, w, bias = a["input"], a["weight"], a.get("bias")
    pw = _whole_param(w)
    if pw is None:
        return ctx.unknown(a, "linear whose weight is computed, not a parameter")
    last = len(x.shape) - 1
    in_ids = _channels_in(ctx, x, last)
    out_ids = ctx.fresh(out_shape[-1])
    ctx.cut_view(pw, 1, in_ids, "consumer")
    ctx.cut_view(pw, 0, out_ids, "producer")
    if not _cut_bias(ctx, bias, out_ids):
        ctx.freeze(out_ids, "linear bias is computed, not a parameter")
    return _place(out_ids, len(out_shape) - 1, len(out_shape))
