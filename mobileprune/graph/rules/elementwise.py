"""Rules for elementwise ops: activations (one tensor) and joins (add, sub, mul, where, ...).

A join merges the channel atoms its operands carry at the same position (residual add,
squeeze-excite mul, concat feeding an add all reduce to this). An operand that cannot shrink
(a network input, a constant, a computed tensor) freezes the channels it spans; a parameter
spanning a channel dimension (layer scale, positional embedding) becomes a pass-through slice.
"""
from __future__ import annotations

import numpy as np

from ..atoms import UNTRACKED
from ..values import ParamView, T, Tracked, align_right, compact, ids_of, tensor_args, vector_along


def unary(ctx, a: dict, out_shape: tuple):
    """One tensor in, the same channels out (values change per element only)."""
    tensors = tensor_args(a)
    if len(tensors) != 1:
        return pointwise(ctx, a, out_shape)
    t = tensors[0]
    if isinstance(t.value, ParamView):
        ctx.claim(t.value)  # f(param) sliced == f(param slice): the view carries on
    return t.value


def pointwise(ctx, a: dict, out_shape: tuple):
    tensors = tensor_args(a)
    if len(tensors) == 1 and tuple(tensors[0].shape) == tuple(out_shape):
        return unary(ctx, a, out_shape)
    rank = len(out_shape)
    merged = merge(ctx, [t for t in tensors if t.tracked], rank)
    if merged is None:
        return _param_arithmetic(ctx, tensors, out_shape)
    varying = [d for d, n in enumerate(merged.shape) if n > 1]
    for t in tensors:
        _fit_operand(ctx, t, merged, varying, rank, out_shape)
    return Tracked(merged)


def _param_arithmetic(ctx, tensors: list[T], out_shape: tuple):
    """w * rsqrt(var + eps) and friends: parameters of one shape combine into one view that
    slims all of them alike (FrozenBatchNorm2d computes its scale and shift this way)."""
    views = [t.value for t in tensors if isinstance(t.value, ParamView)]
    alike = views and len(views) == len(tensors) and all(
        tuple(t.shape) == tuple(out_shape) and t.value.dims == views[0].dims
        and t.value.param_shape == views[0].param_shape for t in tensors)
    if not alike:
        ctx.claim_as_fixed(tensors, "arithmetic between parameters")
        return None
    fqns = tuple(dict.fromkeys(f for v in views for f in v.fqns))
    ctx.claim(ParamView(fqns, views[0].dims, views[0].param_shape))
    return ParamView(fqns, views[0].dims, views[0].param_shape)


def merge(ctx, tracked: list[T], rank: int) -> np.ndarray | None:
    """Union the atoms that meet at the same element; None if no operand is tracked."""
    if not tracked:
        return None
    arrays = [align_right(t.tracked.ids, rank) for t in tracked]
    merged = arrays[0]
    for other in arrays[1:]:
        ctx.atoms.union_arrays(merged, other)
        merged, other = np.broadcast_arrays(merged, other)
        merged = np.where(merged >= 0, merged, other)
    return compact(ctx.atoms.roots(merged))


def _fit_operand(ctx, t: T, merged, varying, rank, out_shape) -> None:
    """Check one operand against the merged channels along every channel dimension."""
    shape = (1,) * (rank - len(t.shape)) + tuple(t.shape)
    offset = rank - len(t.shape)
    cut = False
    for d in varying:
        if shape[d] == 1:
            continue  # broadcast along this channel dimension: shrinks for free
        vec = vector_along(merged, d, out_shape[d])
        if vec is None:
            ctx.freeze(merged, "channels vary along several dimensions of an elementwise op")
            return
        if isinstance(t.value, ParamView) and t.value.dims[d - offset] is not None:
            ctx.cut_view(t.value, t.value.dims[d - offset], vec, "passthrough")
            cut = True
            continue
        own = vector_along(ids_of(t), d, out_shape[d]) if t.tracked else None
        fixed = np.full(len(vec), True) if own is None else (own == UNTRACKED)
        if fixed.any():
            ctx.freeze(vec[fixed], "joined with a tensor whose channels cannot be removed")
    if isinstance(t.value, ParamView) and not cut:
        ctx.claim_as_fixed([t], "elementwise op")
