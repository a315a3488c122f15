"""Shared zoo check: analyse, prune ~30% of every prunable group in blocks of 8, slim, compare."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

import mobileprune as mp
from enliven import distinct_per_channel, enliven
from mobileprune.slim.slimming import _flat, relative_diff

RESULTS = Path(os.environ.get("MOBILEPRUNE_ZOO_RESULTS", Path(__file__).parent.parent / ".pytest_cache" / "zoo"))


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def check_model(name: str, model: torch.nn.Module, x: torch.Tensor, ratio=0.3, block=8, seed=0) -> dict:
    torch.manual_seed(seed)
    model = enliven(model, seed).eval()
    assert distinct_per_channel(model), "a parameter equal on every channel would hide a wrong cut"
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


def _has_train_only_modules(model, x) -> bool:
    return hasattr(model, "aux_logits") and bool(model.aux_logits)
