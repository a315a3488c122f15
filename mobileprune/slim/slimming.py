"""``slim(model, analysis, plan) -> nn.Module``: the same model with channels physically removed.

Parameters and buffers are cut along every dim the analysis recorded; module attributes that
describe widths (in/out channels, groups, features) are then re-derived from the new shapes.
With ``verify=True`` (default) the result is run beside ``masked()`` on the analysis' example
inputs; a mismatch (e.g. a width stored as a plain attribute and used in a reshape) raises
SlimError instead of returning a wrong model.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..errors import MobilepruneError
from ..graph import Analysis
from ..plan import PrunePlan
from .masking import masked


class SlimError(MobilepruneError, RuntimeError):
    """The slimmed model does not compute what the masked model does."""


def slim(model: nn.Module, analysis: Analysis, plan: PrunePlan, verify: bool = True,
         rtol: float = 1e-4) -> nn.Module:
    removed = plan.removed(analysis)
    out = copy.deepcopy(model)
    before = {n: _widths(m) for n, m in out.named_modules()}
    with torch.no_grad():
        for c in analysis.cuts:
            keep = np.nonzero(~removed(c.ids))[0]
            if len(keep) == len(c.ids):
                continue
            _replace(out, c.fqn, lambda t: t.index_select(c.dim, torch.as_tensor(keep)).clone())
    for name, mod in out.named_modules():
        _update_attributes(mod, before[name])
    if verify and plan.keep:
        check_equal(model, out, analysis, plan, rtol)
    return out


def check_equal(model, slimmed, analysis: Analysis, plan: PrunePlan, rtol: float = 1e-4) -> float:
    """Relative max difference of slimmed vs masked outputs; raises SlimError above rtol."""
    ref = masked(model, analysis, plan).eval()
    slimmed_was = slimmed.training
    slimmed.eval()
    try:
        with torch.no_grad():
            want = _flat(ref(*analysis.example_inputs))
            got = _flat(slimmed(*analysis.example_inputs))
    except RuntimeError as exc:
        raise SlimError(f"the slimmed model fails on the example inputs: {str(exc).splitlines()[0]}. "
                        f"A width is probably stored as a plain attribute in the model code; freeze "
                        f"the groups it concerns or make the code derive it from tensor shapes.") from exc
    finally:
        slimmed.train(slimmed_was)
    err = relative_diff(want, got)
    if err > rtol:
        raise SlimError(f"slimmed output differs from the masked reference by {err:.3g} (relative, "
                        f"tolerance {rtol}); the analysis missed a coupling, please report the model")
    return err


def relative_diff(want: list, got: list) -> float:
    if len(want) != len(got) or any(a.shape != b.shape for a, b in zip(want, got)):
        return float("inf")
    scale = max((a.abs().max().item() for a in want if a.numel()), default=0.0) or 1.0
    return max(((a - b).abs().max().item() for a, b in zip(want, got) if a.numel()), default=0.0) / scale


def _flat(out) -> list:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _flat(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _flat(v)]
    return []


def _replace(root: nn.Module, fqn: str, fn) -> None:
    owner_name, _, attr = fqn.rpartition(".")
    owner = root.get_submodule(owner_name)
    old = getattr(owner, attr)
    new = fn(old.data if isinstance(old, nn.Parameter) else old)
    if isinstance(old, nn.Parameter):
        setattr(owner, attr, nn.Parameter(new, requires_grad=old.requires_grad))
    else:
        owner.register_buffer(attr, new, persistent=attr not in owner._non_persistent_buffers_set)


def _widths(mod: nn.Module) -> dict:
    w = getattr(mod, "weight", None)
    return {"weight_shape": tuple(w.shape) if isinstance(w, torch.Tensor) else None,
            "groups": getattr(mod, "groups", None)}


def _update_attributes(mod: nn.Module, before: dict) -> None:
    """Re-derive the width attributes of standard layers from their (cut) parameters."""
    w = getattr(mod, "weight", None)
    if isinstance(mod, nn.modules.conv._ConvNd) and before["weight_shape"]:
        old, groups = before["weight_shape"], before["groups"]
        if groups > 1:  # whole conv groups were removed along weight dim 0
            mod.groups = groups * w.shape[0] // old[0]
        if mod.transposed:  # weight [in, out/groups, ...]
            mod.in_channels, mod.out_channels = w.shape[0], w.shape[1] * mod.groups
        else:  # weight [out, in/groups, ...]
            mod.out_channels, mod.in_channels = w.shape[0], w.shape[1] * mod.groups
    elif isinstance(mod, nn.Linear):
        mod.out_features, mod.in_features = w.shape
    elif isinstance(mod, nn.modules.batchnorm._NormBase):
        ref = w if w is not None else mod.running_mean
        if ref is not None:
            mod.num_features = ref.shape[0]
    elif isinstance(mod, nn.PReLU):
        mod.num_parameters = w.shape[0]
