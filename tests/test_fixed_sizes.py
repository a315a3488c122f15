"""Sizes that the model's code fixes (split sizes, view shapes held in plain attributes) are
constants in the captured graph; they must freeze exactly the groups they touch, say which
constant did it, and leave the rest of the model prunable (slimmed == masked)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mobileprune as mp
from mobileprune.slim.slimming import check_equal

from enliven import enliven
from models.fixed_sizes import CrossStage, FixedFlatten, MultiScale

MODELS = str(Path(__file__).parent / "models" / "fixed_sizes.py")


def _check(model, x):
    model = enliven(model).eval()
    analysis = mp.analyze(model, x)
    plan = mp.PrunePlan.random(analysis, 0.5, 1, seed=0)
    assert plan.keep, "the rest of the model must still prune"
    slimmed = mp.slim(model, analysis, plan)  # verifies slimmed == masked
    assert check_equal(model, slimmed, analysis, plan) <= 1e-4
    assert sum(p.numel() for p in slimmed.parameters()) < sum(p.numel() for p in model.parameters())
    return analysis, plan, slimmed


def _pinned(analysis):
    return [g for g in analysis.groups if any("fixed in the model code" in r for r in g.reasons)]


def test_multi_scale_split_of_a_fixed_width_freezes_the_split_and_prunes_the_rest():
    analysis, plan, slimmed = _check(MultiScale(), torch.randn(1, 3, 16, 16))
    pinned = _pinned(analysis)
    assert pinned and all("split into pieces of 8 channels" in r for g in pinned for r in g.reasons[-1:])
    assert all("conv1" in " ".join(g.producers) or "convs" in " ".join(g.producers) for g in pinned)
    free = {g.name() for g in analysis.free_groups}
    assert any(n.startswith("stem") for n in free) and any(n.startswith("conv3") for n in free)
    assert slimmed.conv1[0].out_channels == 32  # the split's input keeps its width


def test_cross_stage_split_into_fixed_halves_freezes_only_the_halves():
    analysis, plan, slimmed = _check(CrossStage(), torch.randn(1, 3, 16, 16))
    pinned = _pinned(analysis)
    assert pinned and all("split into pieces of 16 channels" in g.reasons[-1] for g in pinned)
    assert all(g.producers[0].startswith("stem") for g in pinned)
    assert slimmed.stem[0].out_channels == 32
    assert {g.name().split(".")[0] for g in analysis.free_groups} >= {"block", "fuse"}


def test_the_same_stage_chunked_follows_the_plan():
    """chunk(2) takes its sizes from the tensor: nothing freezes, the halves prune together."""
    analysis, plan, slimmed = _check(CrossStage(chunked=True), torch.randn(1, 3, 16, 16))
    assert not _pinned(analysis)
    stem = next(g for g in analysis.groups if g.name().startswith("stem"))
    assert not stem.frozen


def test_a_flatten_to_a_fixed_width_freezes_what_it_flattens():
    analysis, plan, slimmed = _check(FixedFlatten(), torch.randn(1, 3, 4, 4))
    (pinned,) = _pinned(analysis)
    assert "reshape of (1, 8, 4, 4) to (1, 128)" in pinned.reasons[-1]
    assert any(p.startswith("features.1") for p in pinned.producers)


@pytest.mark.parametrize("name, shape", [("MultiScale", "1,3,16,16"), ("CrossStage", "1,3,16,16"),
                                         ("FixedFlatten", "1,3,4,4")])
def test_the_cli_report_names_the_constant(name, shape, capsys):
    from mobileprune import cli

    assert cli.main(["analyze", f"{MODELS}:{name}", "--input-shape", shape, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    reasons = [r for g in data["groups"] if g["frozen"] for r in g["reasons"]]
    assert any("fixed in the model code" in r and ("split into pieces of" in r or "reshape of" in r)
               for r in reasons), reasons
