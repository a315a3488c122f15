"""Property: for random architectures and random plans, slimmed == masked.

CI runs 500 examples (MOBILEPRUNE_PROPERTY_EXAMPLES overrides; the documented long profile is
`MOBILEPRUNE_PROPERTY_EXAMPLES=10000 .venv/bin/python -m pytest tests/test_property.py`).
"""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mobileprune as mp
from enliven import enliven
from random_nets import RandomNet, net_specs
from zoo import slim_and_compare

EXAMPLES = int(os.environ.get("MOBILEPRUNE_PROPERTY_EXAMPLES", "500"))


@pytest.mark.long
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(spec=net_specs(), ratio=st.sampled_from([0.2, 0.5, 0.8]), block=st.sampled_from([1, 2, 4]),
       seed=st.integers(0, 1000))
def test_slimmed_equals_masked_on_random_nets(spec, ratio, block, seed):
    steps, in_channels, size = spec
    torch.manual_seed(seed)
    model = enliven(RandomNet(steps, in_channels, size), seed).eval()  # distinct per-channel values
    x = torch.randn(2, in_channels, size, size)
    analysis = mp.analyze(model, x)
    plan = mp.PrunePlan.random(analysis, ratio, block, seed)
    assume(plan.keep)  # a plan that prunes nothing would pass any slimming
    slimmed, _, diff = slim_and_compare(model, analysis, plan, x)
    assert diff <= 1e-4
    assert sum(p.numel() for p in slimmed.parameters()) < sum(p.numel() for p in model.parameters())
