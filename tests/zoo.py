"""Shared zoo check: analyse, prune ~30% of every prunable group in blocks of 8, slim, compare."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

import mobileprune as mp
from mobileprune.slim.slimming import _flat, relative_diff

RESULTS = Path(os.environ.get("MOBILEPRUNE_ZOO_RESULTS", Path(__file__).parent.parent / ".pytest_cache" / "zoo"))


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def check_model(name: str, model: torch.nn.Module, x: torch.Tensor, ratio=0.3, block=8, seed=0) -> dict:
    torch.manual_seed(seed)
    model = enliven(model).eval()
    analysis = mp.analyze(model, x)
    plan = mp.PrunePlan.random(analysis, ratio, block, seed)
    slimmed, want, diff = slim_and_compare(model, analysis, plan, x)
    row = {
        "model": name, "groups": len(analysis.groups), "frozen": len(analysis.groups) - len(analysis.free_groups),
        "pruned_groups": len(plan.keep), "params_before": count(model), "params_after": count(slimmed),
        "rel_diff": diff,
        "frozen_reasons": sorted({r.split(":")[0] for g in analysis.groups if g.frozen for r in g.reasons}),
        "export_s": round(analysis.export_seconds, 2), "analysis_s": round(analysis.analysis_seconds, 3),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(row))
    assert row["rel_diff"] <= 1e-4, row
    assert max(t.abs().max().item() for t in want) > 0, "degenerate output: the check would be vacuous"
    if any(g.prunable(block) for g in analysis.groups):
        assert plan.keep and row["params_after"] < row["params_before"], row
    if _has_train_only_modules(model, x):
        # Aux heads run only in train mode: the slimmed model must still run there.
        slimmed.train()
        with torch.no_grad():
            slimmed(torch.cat([x, x]))
    return row


def slim_and_compare(model, analysis, plan, x):
    """(slimmed model, masked outputs, relative max difference of slimmed vs masked)."""
    slimmed = mp.slim(model, analysis, plan, verify=False)
    with torch.no_grad():
        want = _flat(mp.masked(model, analysis, plan)(x))
        got = _flat(slimmed(x))
    return slimmed, want, relative_diff(want, got)


def enliven(model: torch.nn.Module) -> torch.nn.Module:
    """Give zero-initialised weights (ViT's head, some biases) and BN statistics random values,
    so that a missed cut shows up as a difference instead of hiding behind zeros."""
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().max() == 0:
                p.normal_(0, 0.02)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _has_train_only_modules(model, x) -> bool:
    return hasattr(model, "aux_logits") and bool(model.aux_logits)
