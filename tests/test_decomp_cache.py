"""The cached list of decomposable ops (devices/decomp_cache.py) is torch's own list: the same
set, recomputed when an op is registered later, and programs lowered with it are the same bytes."""
from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from mobileprune.devices import decomp_cache
from mobileprune.devices.programs import to_pte


def _modules():
    return [importlib.import_module(name) for name in ("torch._export.utils", *decomp_cache._CALLERS)]


@pytest.fixture()
def cached():
    assert decomp_cache.install()
    collect = importlib.import_module("torch._export.utils")._collect_all_valid_cia_ops
    assert all(m._collect_all_valid_cia_ops is collect for m in _modules())
    return collect


def test_the_cached_op_list_is_torchs_and_follows_ops_registered_later(cached):
    assert cached() == cached.original()
    assert cached() is not cached()  # a fresh set each time: a caller may change its copy

    library = torch.library.Library("mobileprune_decomp_test", "DEF")  # noqa: TOR901 - a throwaway op
    library.define("scaled(Tensor x) -> Tensor")
    library.impl("scaled", lambda x: x * 2, "CompositeImplicitAutograd")
    op = torch.ops.mobileprune_decomp_test.scaled.default
    assert op in cached.original()
    assert op in cached()
    assert cached() == cached.original()


def test_a_program_lowered_with_the_cached_list_is_the_same_program(cached, tmp_path, monkeypatch):
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.Hardswish(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()
    x = torch.randn(1, 8, 16, 16)
    with_cache = to_pte(model, (x,), tmp_path / "cached.pte").read_bytes()
    for module in _modules():
        monkeypatch.setattr(module, "_collect_all_valid_cia_ops", cached.original)
    without = to_pte(model, (x,), tmp_path / "plain.pte").read_bytes()
    assert with_cache == without
