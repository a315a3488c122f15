"""Bad input gets one clear paragraph, never a wrong model or a traceback wall."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import mobileprune as mp


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.branchy = Branchy()

    def forward(self, x):
        return self.branchy(self.conv(x))


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.export cannot capture this
            return x
        return -x


def test_uncapturable_model_names_the_module():
    with pytest.raises(mp.CaptureError) as info:
        mp.analyze(DataDependent(), torch.randn(1, 3, 4, 4))
    msg = str(info.value)
    assert "'branchy' (Branchy)" in msg and "\n" not in msg


@pytest.fixture(scope="module")
def resnet():
    model = torchvision.models.resnet18().eval()
    return model, mp.analyze(model, torch.randn(1, 3, 64, 64))


def test_plan_on_a_frozen_group_is_refused(resnet):
    _, analysis = resnet
    frozen = next(g for g in analysis.groups if g.frozen)
    with pytest.raises(mp.PlanError, match="frozen"):
        mp.PrunePlan({frozen.id: [0]}, block=1).validate(analysis)


def test_plan_breaking_the_block_is_refused(resnet):
    _, analysis = resnet
    g = analysis.free_groups[0]
    with pytest.raises(mp.PlanError, match="multiple of 8"):
        mp.PrunePlan({g.id: list(range(10))}, block=8).validate(analysis)


def test_plan_outside_the_group_size_is_refused(resnet):
    model, analysis = resnet
    g = analysis.free_groups[0]
    with pytest.raises(mp.PlanError, match=f"within 0..{g.size - 1}"):
        mp.slim(model, analysis, mp.PrunePlan({g.id: [0, g.size]}))
    with pytest.raises(mp.PlanError, match="cannot remove every channel"):
        mp.slim(model, analysis, mp.PrunePlan({g.id: []}))
    with pytest.raises(mp.PlanError, match="has groups"):
        mp.PrunePlan({10_000: [0]}).validate(analysis)


def test_plan_for_another_model_is_refused(resnet):
    _, analysis = resnet
    other = mp.analyze(torchvision.models.mobilenet_v2().eval(), torch.randn(1, 3, 64, 64))
    with pytest.raises(mp.PlanError, match="fingerprint"):
        mp.PrunePlan.random(other, 0.3, 8).validate(analysis)


def test_plan_json_round_trip_and_garbage(resnet):
    _, analysis = resnet
    plan = mp.PrunePlan.random(analysis, 0.4, 8, seed=3)
    assert mp.PrunePlan.from_json(plan.to_json()) == plan
    with pytest.raises(mp.PlanError, match="not a PrunePlan"):
        mp.PrunePlan.from_dict({"keep": {"x": [1]}})
