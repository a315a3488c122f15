"""Op kinds one by one: the groups the analysis finds, and slimmed == masked for each."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mobileprune as mp
from mobileprune.slim.slimming import check_equal

from enliven import enliven


def analyse_and_slim(model, *inputs, ratio=0.5, block=1, prunes=True):
    """Analyse, prune at random, slim and compare with the masked reference. ``prunes``: the
    model has prunable channels, and the plan must remove some (else the check says nothing)."""
    model = enliven(model).eval()
    analysis = mp.analyze(model, inputs or (torch.randn(1, 3, 8, 8),))
    plan = mp.PrunePlan.random(analysis, ratio, block, seed=1)
    slimmed = mp.slim(model, analysis, plan, verify=False)
    assert check_equal(model, slimmed, analysis, plan) <= 1e-4
    if prunes:
        assert plan.keep, "nothing was pruned: the comparison would hold for any slimming"
        assert _params(slimmed) < _params(model)
    return analysis, plan, slimmed


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def group_of(analysis, member: str):
    hits = [g for g in analysis.groups if any(m.startswith(member) for m in g.producers + g.consumers)]
    assert hits, f"no group mentions {member}"
    return hits


class ConcatThenAdd(nn.Module):
    """cat(a, b) + c: c's channels split into two groups coupled with a and b."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 16, 1), nn.Conv2d(3, 24, 1)
        self.out = nn.Conv2d(24, 4, 1)

    def forward(self, x):
        return self.out(torch.cat([self.a(x), self.b(x)], 1) + self.c(x))


def test_concat_feeding_add_splits_the_summand():
    analysis, plan, slimmed = analyse_and_slim(ConcatThenAdd())
    free = analysis.free_groups
    assert sorted(g.size for g in free) == [8, 16]
    g8 = next(g for g in free if g.size == 8)
    assert "a.weight[0]" in g8.producers and "c.weight[0]" in g8.producers
    assert slimmed.c.out_channels == slimmed.a.out_channels + slimmed.b.out_channels


class Shuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 8, 1)
        self.out = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], 1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        return self.out(y)


def test_channel_shuffle_couples_the_interleaved_channels():
    analysis, plan, slimmed = analyse_and_slim(Shuffle())
    (g,) = analysis.free_groups
    assert g.size == 8 and {"a.weight[0]", "b.weight[0]"} <= set(g.producers)
    assert slimmed.a.out_channels == slimmed.b.out_channels < 8


class NativeShuffle(Shuffle):
    def forward(self, x):
        return self.out(F.channel_shuffle(torch.cat([self.a(x), self.b(x)], 1), 2))


def test_aten_channel_shuffle():
    analysis, _, _ = analyse_and_slim(NativeShuffle())
    assert [g.size for g in analysis.free_groups] == [8]


class FlattenLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(x), 1))


def test_linear_after_flatten_cuts_every_feature_of_a_channel():
    analysis, plan, slimmed = analyse_and_slim(FlattenLinear(), torch.randn(1, 3, 4, 4))
    (g,) = analysis.free_groups
    assert g.consumers == ["fc.weight[1]"] and g.unit == 1
    assert slimmed.fc.in_features == slimmed.conv.out_channels * 16


class Grouped(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.pw = nn.Conv2d(3, 16, 1)
        self.g = nn.Conv2d(16, 32, 3, padding=1, groups=groups)
        self.bn = nn.BatchNorm2d(32)
        self.out = nn.Conv2d(32, 4, 1)

    def forward(self, x):
        return self.out(self.bn(self.g(self.pw(x))))


@pytest.mark.parametrize("groups", [16, 4])
def test_depthwise_and_grouped_convs_prune_whole_conv_groups(groups):
    analysis, plan, slimmed = analyse_and_slim(Grouped(groups))
    (g,) = analysis.free_groups
    assert g.size == groups and g.unit == 16 // groups
    assert slimmed.g.groups == len(plan.keep[g.id])
    assert slimmed.g.in_channels == slimmed.pw.out_channels


def test_group_width_constrains_the_block():
    analysis = mp.analyze(Grouped(4).eval(), (torch.randn(1, 3, 8, 8),))
    (g,) = analysis.free_groups
    assert g.unit == 4 and g.block_positions(8) == 2  # 8 channels = 2 conv groups of 4
    with pytest.raises(mp.PlanError, match="multiple of 2"):
        mp.PrunePlan({g.id: [0, 1, 2]}, block=8).validate(analysis)


class Transposed(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 12, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(12, 10, 2, stride=2)
        self.out = nn.Conv2d(10, 2, 1)

    def forward(self, x):
        return self.out(F.relu(self.up(F.relu(self.down(x)))))


def test_conv_transpose():
    analysis, _, slimmed = analyse_and_slim(Transposed())
    assert sorted(g.size for g in analysis.free_groups) == [10, 12]
    assert slimmed.up.in_channels == slimmed.down.out_channels


class SplitNarrow(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 16, 1)
        self.b = nn.Conv2d(8, 4, 1)
        self.c = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        y = self.a(x)
        left, right = y.chunk(2, dim=1)
        return self.b(left * right), self.c(y[:, 2:8])


def test_chunk_couples_pieces_and_slices_freeze_what_they_pin():
    analysis = mp.analyze(SplitNarrow().eval(), (torch.randn(1, 3, 4, 4),))
    frozen = [g for g in analysis.groups if g.frozen and "a.weight[0]" in g.producers]
    assert frozen and any("slice of channels at fixed positions" in r for g in frozen for r in g.reasons)
    assert any(r.startswith("network output") for g in analysis.groups for r in g.reasons)


class LayerNormChannelsLast(nn.Module):
    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.ln = nn.LayerNorm(8)
        self.fc1, self.fc2 = nn.Linear(8, 32), nn.Linear(32, 8)

    def forward(self, x):
        y = self.ln(self.dw(x).permute(0, 2, 3, 1))
        return x + self.fc2(F.gelu(self.fc1(y))).permute(0, 3, 1, 2)


def test_channels_last_layernorm_freezes_its_channels_mlp_stays_free():
    analysis, plan, slimmed = analyse_and_slim(LayerNormChannelsLast(), torch.randn(1, 8, 4, 4))
    (free,) = analysis.free_groups
    assert free.producers == ["fc1.bias[0]", "fc1.weight[0]"] and free.size == 32
    assert slimmed.fc1.out_features == slimmed.fc2.in_features < 32


class SEPReLUGroupNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.act = nn.PReLU(16)
        self.se1, self.se2 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.gn_conv = nn.Conv2d(16, 8, 1)
        self.gn = nn.GroupNorm(2, 8)
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        y = self.act(self.conv(x))
        y = y * torch.sigmoid(self.se2(F.relu(self.se1(F.adaptive_avg_pool2d(y, 1)))))
        y = F.interpolate(F.max_pool2d(y, 2), scale_factor=2)
        return self.out(self.gn(self.gn_conv(y)))


def test_squeeze_excite_prelu_upsample_and_groupnorm():
    analysis, _, slimmed = analyse_and_slim(SEPReLUGroupNorm(), torch.randn(1, 3, 8, 8))
    sizes = sorted(g.size for g in analysis.free_groups)
    assert sizes == [4, 16]  # conv/PReLU/SE-gate channels and the SE bottleneck
    (gn,) = [g for g in analysis.groups if "gn_conv.weight[0]" in g.producers]
    assert gn.frozen and "group_norm" in gn.reasons[0]
    assert slimmed.act.num_parameters == slimmed.conv.out_channels


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(12, 3, 3, 3))
        self.w2 = nn.Parameter(torch.randn(5, 12, 1, 1))

    def forward(self, x, y):
        h = F.relu(F.conv2d(x, self.w1, padding=1)) + y
        return F.conv2d(h, self.w2), h.mean((2, 3))


def test_functional_calls_several_inputs_and_outputs():
    analysis = mp.analyze(Functional().eval(), (torch.randn(1, 3, 4, 4), torch.randn(1, 12, 4, 4)))
    (g,) = [g for g in analysis.groups if "w1[0]" in g.producers]
    assert g.frozen  # joined with the second input, and a network output
    assert any("joined with a tensor" in r for r in g.reasons)


class Unknown(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.head(torch.cummax(self.conv(x), dim=2).values)


def test_unknown_op_freezes_with_op_and_location():
    analysis = mp.analyze(Unknown().eval(), (torch.randn(1, 3, 4, 4),))
    (g,) = [g for g in analysis.groups if "conv.weight[0]" in g.producers]
    assert g.frozen and "unknown op aten.cummax" in g.reasons[0] and "at <root>" in g.reasons[0]
    assert "cummax" in analysis.unknown_ops


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(2, 12, 3), nn.Conv1d(12, 3, 1)
        self.bn = nn.BatchNorm1d(12)

    def forward(self, x):
        return self.c2(F.hardswish(self.bn(self.c1(x))))


def test_conv1d_and_batchnorm1d():
    analysis, _, slimmed = analyse_and_slim(Conv1dNet(), torch.randn(1, 2, 16))
    assert [g.size for g in analysis.free_groups] == [12]
    assert slimmed.bn.num_features == slimmed.c1.out_channels


class AttributeWidth(nn.Module):
    """A width kept as a plain attribute and used in a reshape (ViT's hidden_dim trap)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.width = 8
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        y = self.conv(x).reshape(x.shape[0], self.width, -1).mean(2)
        return self.fc(y)


def test_width_in_a_plain_attribute_is_caught_by_verification():
    model = AttributeWidth().eval()
    analysis = mp.analyze(model, (torch.randn(1, 3, 4, 4),))
    plan = mp.PrunePlan.random(analysis, 0.5, 1, 0)
    assert plan.keep
    with pytest.raises(mp.SlimError, match="plain attribute"):
        mp.slim(model, analysis, plan)


class Padded(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3)
        self.b = nn.Conv2d(8, 4, 3)

    def forward(self, x):
        y = F.pad(self.a(x), (1, 1, 1, 1), mode="reflect")
        y = F.pad(y, (1, 1, 1, 1)) + F.pad(y, (1, 1, 1, 1), mode="replicate")
        return self.b(y.roll(1, dims=3).flip(2))


def test_padding_roll_and_flip_keep_channels():
    analysis, _, _ = analyse_and_slim(Padded())
    assert [g.size for g in analysis.free_groups] == [8]


class BNPReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.PReLU(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(self.act(self.bn(self.conv(x))))


def test_a_cut_at_the_wrong_positions_is_caught(monkeypatch):
    """The equivalence checks must see a slimming bug that keeps the first n channels of BatchNorm
    and PReLU weights instead of the kept ones: those weights start equal on every channel
    (1 and 0.25), which is why every model is enlivened before it is compared."""
    from mobileprune.slim import slimming

    real = slimming._replace

    def first_n(root, fqn, fn):
        owner = root.get_submodule(fqn.rpartition(".")[0])
        if isinstance(owner, (nn.BatchNorm2d, nn.PReLU)) and fqn.endswith("weight"):
            return real(root, fqn, lambda t: t[: fn(t).shape[0]].clone())
        return real(root, fqn, fn)

    monkeypatch.setattr(slimming, "_replace", first_n)
    with pytest.raises(mp.SlimError, match="differs from the masked reference"):
        analyse_and_slim(BNPReLU())
    fresh = BNPReLU().eval()  # without enlivening, the same bug goes unseen
    analysis = mp.analyze(fresh, torch.randn(1, 3, 8, 8))
    plan = mp.PrunePlan.random(analysis, 0.5, 1, seed=1)
    assert plan.keep and check_equal(fresh, mp.slim(fresh, analysis, plan, verify=False), analysis, plan) <= 1e-4
