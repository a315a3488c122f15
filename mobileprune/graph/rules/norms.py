"""Rules for normalisation layers.

BatchNorm (and PReLU) act per channel: their parameters and running statistics are pass-through
slices of the incoming channels. LayerNorm over the channel dimension and GroupNorm compute
statistics across channels, so removing a channel changes every other channel's output: those
channels are frozen (honest, not guessed; see docs/analysis.md).
"""
from __future__ import annotations

from ..values import ParamView, T, ids_of, vector_along
from .elementwise import pointwise


def _pass_through(ctx, params: list, ids, where: str) -> None:
    for p in params:
        if p is None:
            continue
        if isinstance(p.value, ParamView) and len(p.shape) == 1:
            ctx.cut_view(p.value, 0, ids, "passthrough")
        else:
            ctx.freeze(ids, f"{where} parameter is computed, not a parameter")


def batch_norm(ctx, a: dict, out_shape: tuple):
    x: T = a["input"]
    ids = vector_along(ids_of(x), 1, x.shape[1])
    if ids is None:
        return ctx.unknown(a, "batch_norm input whose channels vary along another dimension")
    params = [a.get(k) for k in ("weight", "bias", "running_mean", "running_var")]
    _pass_through(ctx, params, ids, "batch_norm")
    return x.value


def prelu(ctx, a: dict, out_shape: tuple):
    x, w = a["self"], a["weight"]
    if w.shape[0] == 1:
        return pointwise(ctx, a, out_shape)  # one shared slope: broadcast like a scalar
    ids = vector_along(ids_of(x), 1, x.shape[1])
    if ids is None:
        return ctx.unknown(a, "prelu input whose channels vary along another dimension")
    _pass_through(ctx, [w], ids, "prelu")
    return x.value


def layer_norm(ctx, a: dict, out_shape: tuple):
    x: T = a["input"]
    k = len(a["normalized_shape"])
    rank = len(x.shape)
    if any(d >= rank - k for d in ctx.varying(x)):
        ctx.freeze(ids_of(x), "layer_norm normalizes over these channels")
    ctx.claim_as_fixed([a.get("weight"), a.get("bias")], "layer_norm")
    return x.value


def group_norm(ctx, a: dict, out_shape: tuple):
    x: T = a["input"]
    if ctx.varying(x):
        ctx.freeze(ids_of(x), "group_norm normalizes over groups of channels")
    ctx.claim_as_fixed([a.get("weight"), a.get("bias")], "group_norm")
    return x.value
