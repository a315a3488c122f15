"""Cost models: latency from a measured profile (gradients, missing configurations, on-demand
measurement), FLOPs and memory."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import mobileprune as mp
from mobileprune.cost import FlopsCost, LatencyCost, MemoryCost, MissingConfigs, fractions_from_plan, fractions_from_probs
from mobileprune.devices.measuring import ProfilingConfig, on_demand
from mobileprune.devices import HostRunner
from mobileprune.devices.latency_table import DeviceProfile, ProfileMeta

from conftest import TINY, TINY_SHAPE
from in_process import run_cli


@pytest.fixture(scope="module")
def tiny(tiny_profile):
    """The tiny model's real profile (conftest.py), the model and its analysis."""
    model = mp.spec.build(TINY).eval()
    return tiny_profile, model, mp.analyze(model, torch.randn(TINY_SHAPE))


def _probs(analysis, value=0.6):
    return {g.id: torch.full((g.size,), value, dtype=torch.float64, requires_grad=True)
            for g in analysis.groups if g.prunable(8)}


@pytest.mark.parametrize("cost_cls", [LatencyCost, FlopsCost, MemoryCost])
def test_gradient_wrt_keep_probabilities_is_finite_and_positive(tiny, cost_cls):
    profile, _, analysis = tiny
    cost = cost_cls(analysis, profile) if cost_cls is LatencyCost else cost_cls(analysis)
    probs = _probs(analysis)
    value = cost(fractions_from_probs(probs))
    value.backward()
    grads = {g: p.grad for g, p in probs.items()}
    assert torch.isfinite(value) and value > 0
    assert all(torch.isfinite(v).all() and (v >= 0).all() for v in grads.values())
    assert sum(float(v.sum()) for v in grads.values()) > 0
    if cost_cls is not LatencyCost:  # analytic costs: strictly positive for every group
        assert all((v > 0).all() for v in grads.values())
    assert float(cost(fractions_from_probs(_probs(analysis, 0.55)))) < float(cost())


@pytest.mark.long
def test_a_pruned_variant_is_predicted_within_a_stated_tolerance(tiny, tmp_path):
    """Independent data: a pruned variant measured whole, here and now, in turns with the
    original; the predicted share of latency the pruning keeps must match the
    measured share within 0.25. The tiny model is mostly per-layer overhead (a half-width plan
    measured at 0.85 of the original on an AMX Xeon): without the fixed share the profile
    measures with a half-width variant of its own (cost/calibrate.py) the table predicted 0.52
    and this failed at a bound of 0.3 (make test, 2026-12-06). Why 0.25: the fixed share and the
    rows are measured with few repeats beside a parallel test suite (two runs' shares: 0.39, 0.65). It fails for a cost that ignores
    the widths (share 1.0: the first assertion). Without the fixed share it failed in one run
    (0.52 against 0.83) and passed in another (tried on purpose, 2026-12-06 evening): at this size
    the bound cannot tell that mutation reliably; test_a_fixed_share_stays_when_pruning_shrinks_the_layers
    checks the arithmetic. The plan is
    narrower than the half-width variant the fixed share was measured with (the head at 8 of 32
    channels, not 16): the prediction is checked away from its calibration point."""
    from mobileprune.devices import runtimes
    from mobileprune.devices.runner import SpeedReference, measure_artifact

    from mobileprune import profiling

    profile, model, analysis = tiny
    # the tests' profile leaves the fixed share out (conftest.py): measured here, as profiling does
    profile = profiling.calibrate_models(_copy(profile, tmp_path / "p.csv", fixed_shares={}), {TINY: (model, analysis)},
                                         HostRunner(), ProfilingConfig(repeats=5, processes=3), log=lambda *_: None)
    plan = mp.PrunePlan.random(analysis, 0.75, 8, seed=3)  # (narrower than the calibration's half-width variant)
    cost = LatencyCost(analysis, profile, model_key=TINY)
    predicted_share = float(cost(fractions_from_plan(analysis, plan))) / float(cost())
    runtime = runtimes.get(profile.meta.runtime)
    # The pruned net timed in turns with the original, as peers.py compares two plans: a load
    # that comes and goes slows both alike. (Measured apart, beside the other test worker, the
    # pruned net once came out 0.906 of the original's, and a load between two measurements made
    # it 1.6x the original: make test, 2026-12-05.)
    nets = (model, mp.slim(model, analysis, plan))
    original, pruned = [runtime.lower(net, tuple(analysis.example_inputs), tmp_path / f"net{i}{runtime.suffix}")
                        for i, net in enumerate(nets)]
    measured = measure_artifact(HostRunner(), pruned, processes=5, reference=SpeedReference(str(original), 1.0))
    measured_share = measured["ratio"]
    assert predicted_share < 0.95 and measured_share < 0.95, (predicted_share, measured)
    assert abs(predicted_share - measured_share) <= 0.25, (predicted_share, measured_share, measured)


def test_configuration_outside_the_table_is_reported_or_measured(tiny, tmp_path):
    profile, _, analysis = tiny
    drop = profile.table["key"].str.startswith("dwconv")
    partial = DeviceProfile(profile.meta, profile.table[~drop].reset_index(drop=True))
    partial.save(tmp_path / "partial.csv")
    partial = DeviceProfile.load(tmp_path / "partial.csv")
    with pytest.raises(MissingConfigs, match="dwconv"):
        LatencyCost(analysis, partial)()
    cost = LatencyCost(analysis, partial, measure=on_demand(partial, HostRunner(), repeats=5))
    assert float(cost()) > 0
    reread = DeviceProfile.load(tmp_path / "partial.csv")
    assert reread.table["key"].str.startswith("dwconv").sum() == drop.sum()


@pytest.fixture(scope="module")
def small():
    """Three small layers at 16x16 whose groups are 8 channels wide: the tests of on-demand
    measurement price them with the tiny net's profile, which has none of their rows, so every
    row they need is measured, and they need few (the tiny net's layers needed about 80, two
    minutes of lowering and measuring, for the same behaviour)."""
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    return mp.analyze(model, torch.randn(1, 3, 16, 16))


def _copy(profile, path, **meta) -> DeviceProfile:
    DeviceProfile(ProfileMeta(**{**asdict(profile.meta), **meta}), profile.table.copy()).save(path)
    return DeviceProfile.load(path)


def test_widths_below_the_grid_are_measured_with_their_tile(tiny, small, tmp_path):
    """Pruning at a block smaller than the profile's (one channel per group here, under a conv
    tile of 4) needs rows below the grid's first point, at the exact widths and at the widths
    rounded up to the tile: on demand, both are measured and the price exists."""
    profile, _, _ = tiny
    tiled = _copy(profile, tmp_path / "tiled.csv", tiles={"conv": 4, "dwconv": 4})
    one_channel = {g.id: torch.tensor(1 / g.size, dtype=torch.float64) for g in small.groups if g.prunable(1)}
    with pytest.raises(MissingConfigs):
        LatencyCost(small, tiled)(one_channel)
    cost = LatencyCost(small, tiled, measure=on_demand(tiled, HostRunner(), repeats=5))
    assert 0 < float(cost(one_channel)) < float(cost())
    measured = {(r.op, r.cin, r.cout) for r in tiled.table.itertuples()}
    assert {("conv", 3, 1), ("conv", 3, 4)} <= measured  # the first conv: its own width and its tile's


def test_fractional_widths_below_the_grid_are_measured_around(tiny, small, tmp_path):
    """A gate's expected width is fractional and, at a block of 1 or 2, below the grid's first
    point (2.5 of 8 channels): on demand the whole widths either side are measured, and the
    price exists and lies between theirs (a block-2 gates run on fashion:mobilenet_w1 at 30%
    stopped on such widths). A missing layer's grid is measured again from one pruning block up,
    so later plans, whatever their widths from one block up, measure nothing more (a
    measured-rounds search at block 2 measured a few rows for each plan it priced, for 10 min)."""
    profile, _, _ = tiny
    copy = _copy(profile, tmp_path / "p.csv")
    groups = [g for g in small.groups if g.prunable(1)]
    at = lambda width: {g.id: torch.tensor(width / g.size, dtype=torch.float64) for g in groups}  # noqa: E731
    cost = LatencyCost(small, copy, measure=on_demand(copy, HostRunner(), repeats=5), measure_step=4)
    fractional = float(cost(at(2.5)))  # below one step of 4: measured at 2 and 4
    assert float(cost(at(2))) <= fractional <= float(cost(at(4))) and fractional > 0
    rows = len(copy.table)
    rng = np.random.default_rng(0)
    for _ in range(20):  # plans with every group at its own width, from one step (4) up
        widths = {g.id: torch.tensor(rng.uniform(4, g.size) / g.size, dtype=torch.float64) for g in groups}
        assert float(cost(widths)) > 0
    assert len(copy.table) == rows  # bracketed by what is there: nothing measured


def test_a_profile_asked_for_no_fixed_shares_is_calibrated_whole_only(shared_tiny_profile):
    """ProfilingConfig(fixed_share=False), as the tests' shared profile is made: each model's
    whole latency and overhead are recorded (predictions need them), no fixed share."""
    reread = DeviceProfile.load(shared_tiny_profile.path).meta
    assert TINY in reread.overheads_ms and TINY in reread.measured_ms and TINY not in reread.fixed_shares


def test_a_model_is_calibrated_whole_in_turns_with_the_reference(tiny, tmp_path, monkeypatch):
    """Calibration measures each profiled model whole, in turns with the speed reference; the
    reference itself (the tiny net is its own in the tests' profile) is taken at the reference's
    own latency, measured already. Under another name the same net is measured: about the
    reference's latency (its ratio to itself is 1; wide bounds for a noisy VM). Beside each, a
    half-width variant is measured for the model's fixed share."""
    from mobileprune import profiling

    profile, model, analysis = tiny
    reference_ms = profile.meta.reference["ms"]
    copy = _copy(profile, tmp_path / "p.csv", overheads_ms={}, measured_ms={}, layer_counts={}, fixed_shares={},
                 reference={**profile.meta.reference, "model": TINY})  # (stated here: what this test is about)
    renamed = "the tiny net under another name"
    measured = []

    def measure_model(net, *args, **kwargs):
        measured.append(net)
        return real(net, *args, **kwargs)

    real = profiling.measure_model
    monkeypatch.setattr(profiling, "measure_model", measure_model)
    other = mp.spec.build(TINY).eval()  # the same net, other weights
    assert profiling._is_the_reference(TINY, analysis, copy.meta), (copy.meta.reference, TINY,
                                                                     [x.shape for x in analysis.example_inputs])
    profiling.calibrate_models(copy, {TINY: (model, analysis), renamed: (other, analysis)}, HostRunner(),
                               ProfilingConfig(repeats=5), log=lambda *_: None)
    assert len(measured) == 3 and measured[1] is other and model not in measured  # the reference is not measured again
    assert [type(net) for net in measured] == [type(model)] * 3  # (its variant and the other's: slimmed copies)
    reread = DeviceProfile.load(tmp_path / "p.csv").meta
    assert reread.measured_ms[TINY] == round(reference_ms, 4)
    assert 0.5 < reread.measured_ms[renamed] / reference_ms < 2, (reread.measured_ms, reference_ms)
    assert all(0 <= reread.fixed_shares[k] <= 0.9 for k in (TINY, renamed)), reread.fixed_shares
    assert reread.overheads_ms[renamed] == pytest.approx(reread.measured_ms[renamed] - float(LatencyCost(
        analysis, copy).layers_total()), abs=2e-4)


def test_predict_cli_json(tiny, capsys):
    profile, _, _ = tiny
    out = run_cli(capsys, "predict", TINY, "--profile", profile.path, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["measured_ms"] is None and data["predicted_ms"] > 0
    out = run_cli(capsys, "predict", TINY, "--profile", profile.path, "--measure", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    m = data["measurement"]  # timed in turns with the profile's reference, which profiling measured
    assert m["normalized"] and m["reference_ms"] == profile.meta.reference["ms"] > 0
    assert data["measured_ms"] == pytest.approx(m["ratio"] * m["reference_ms"], rel=1e-3) and m["raw_ms"] > 0


def test_predict_a_saved_pruned_model(tiny, tmp_path, capsys):
    profile, model, analysis = tiny
    plan = mp.PrunePlan.random(analysis, 0.5, 8, seed=0)
    assert plan.keep
    mp.save(tmp_path / "pruned", TINY, plan, mp.slim(model, analysis, plan), [TINY_SHAPE])
    runs = {}
    for name, target in (("full", TINY), ("pruned", str(tmp_path / "pruned"))):
        for cost in ("latency", "flops"):  # flops: no profile needed
            out = run_cli(capsys, "predict", target, *(("--profile", profile.path) if cost == "latency" else ()),
                          "--cost", cost, "--json")
            assert out.returncode == 0, out.stderr
            runs[name, cost] = json.loads(out.stdout)
    for cost, unit in (("latency", "ms"), ("flops", "kFPP")):
        full, pruned = runs["full", cost], runs["pruned", cost]
        assert full["unit"] == pruned["unit"] == unit
        assert pruned["predicted"] < full["predicted"] == full["original"] == pytest.approx(pruned["original"])
    assert runs["pruned", "latency"]["predicted"] == runs["pruned", "latency"]["predicted_ms"]
    out = run_cli(capsys, "predict", TINY, "--json")  # a latency without a profile: refused, saying what to give
    assert out.returncode == 2 and "needs a device profile" in out.stderr and "Traceback" not in out.stderr


def test_gemm_widths_are_priced_at_the_measured_tile(tiny):
    """With a measured conv tile of 16, 9 of 16 output channels cost what 16 do (a GEMM computes
    whole register tiles), and the price still has a gradient (straight-through)."""
    profile, _, analysis = tiny
    coarse = DeviceProfile(ProfileMeta(**{**asdict(profile.meta), "tiles": {"conv": 16, "dwconv": 16}}), profile.table)
    fine = LatencyCost(analysis, profile)
    blocky = LatencyCost(analysis, coarse, layer_list=fine.layers)
    head = next(layer for layer in fine.layers if layer.op == "conv" and layer.cout.full == 32)
    (gid,) = head.cout.per_group
    for f in (0.5, 1.0):  # 16 and 32 channels: multiples of the block are priced as they are
        at = {gid: torch.tensor(f, dtype=torch.float64)}
        assert _price(blocky, head, at) == pytest.approx(_price(fine, head, at))
    just_over = {gid: torch.tensor(17 / 32, dtype=torch.float64, requires_grad=True)}
    assert _price(blocky, head, just_over) == pytest.approx(_price(fine, head, {gid: torch.tensor(1.0)}))
    assert _price(fine, head, just_over) <= _price(blocky, head, just_over)
    blocky(just_over).backward()
    assert torch.isfinite(just_over[gid].grad) and just_over[gid].grad > 0


def _price(cost, layer, fractions) -> float:
    return next(ms for lay, ms in cost.per_layer(fractions) if lay is layer)


def test_a_full_width_configuration_has_a_gradient(tiny):
    """Pruners start from keep-probabilities near 1: the full width is a grid point, and the price
    must still slope there (bracketed from below), or the latency term gives no signal."""
    profile, _, analysis = tiny
    probs = _probs(analysis, 1.0)
    LatencyCost(analysis, profile)(fractions_from_probs(probs)).backward()
    assert sum(float(p.grad.sum()) for p in probs.values()) > 0


def test_a_measured_width_is_priced_from_its_raw_row(tiny):
    """At full width every layer sits on a measured point: its price is that row's ms from the CSV,
    or, where a row of the same kind at least as wide in both widths measured faster (noise, or
    another layer's wider row), that faster value (a wider layer is never priced cheaper)."""
    from mobileprune.devices.microbench import row_key
    from mobileprune.graph.kinds import kind

    profile, _, analysis = tiny
    raw = pd.read_csv(profile.path).set_index("key")["ms"]
    for layer, ms in LatencyCost(analysis, profile).per_layer():
        cout = layer.cout.full if kind(layer.op).two_widths else layer.cin.full
        own = raw[row_key(layer.op, layer.attrs, layer.cin.full, cout)]
        if ms != pytest.approx(own):
            prefix = row_key(layer.op, layer.attrs, 0, 0).rsplit("|", 1)[0] + "|"
            widths = {k: tuple(int(v) for v in k.rsplit("|", 1)[1].split("x")) for k in raw.index
                      if k.startswith(prefix)}
            wider = raw[[k for k, (ci, co) in widths.items() if ci >= layer.cin.full and co >= cout]]
            assert ms < own and ms == pytest.approx(wider.min()), layer.op


def _scaled_rows(profile, analysis, factor: float, wider: bool):
    """Copies of each layer's full-width row, ``factor`` x its ms, at widths no row has: a little
    over half its widths (narrower) or a little over twice them (wider)."""
    from mobileprune.devices.microbench import row_from
    from mobileprune.graph.kinds import kind

    table = profile.table.set_index("key")
    rows = []
    for layer in LatencyCost(analysis, profile).layers:
        two = kind(layer.op).two_widths
        ci, co = layer.cin.full, layer.cout.full if two else layer.cin.full
        own = table.loc[row_from(layer.op, layer.attrs, ci, co)["key"]]
        ci2, co2 = (2 * ci + 1, 2 * co + 1) if wider else (ci // 2 + 1, co // 2 + 1)
        row = {**own.to_dict(), **row_from(layer.op, layer.attrs, ci2, co2 if two else ci2)}
        if ci2 < ci or wider:
            rows.append({**row, "ms": float(own["ms"]) * factor})
    rows = pd.DataFrame(rows).drop_duplicates("key")
    return rows[~rows["key"].isin(profile.table["key"])]


def test_rows_added_later_leave_the_unpruned_model_at_its_measured_latency(tiny):
    """A profile grows: rows measured on demand at narrow widths, another model's wider layers.
    On a shared machine a narrow row can read slower than the full width (resnet_w0.5 on an Intel
    Xeon: 134 on-demand rows raised its unpruned prediction from 0.999 to 1.255 ms, so every
    budget in % resolved against a net 26% slower than it is). A slow narrow row must not move any
    full-width price; faster wider rows may, but the model's calibration scale follows the table,
    so the unpruned model is still predicted at its measured whole-model latency."""
    profile, _, analysis = tiny
    measured = profile.meta.measured_ms[TINY]
    before = [ms for _, ms in LatencyCost(analysis, profile).per_layer()]
    assert float(LatencyCost(analysis, profile, model_key=TINY)()) == pytest.approx(measured)

    slow_narrow = _scaled_rows(profile, analysis, 3.0, wider=False)
    grown = DeviceProfile(profile.meta, pd.concat([profile.table, slow_narrow], ignore_index=True))
    assert [ms for _, ms in LatencyCost(analysis, grown).per_layer()] == pytest.approx(before)
    assert float(LatencyCost(analysis, grown, model_key=TINY)()) == pytest.approx(measured)

    fast_wide = _scaled_rows(profile, analysis, 0.9, wider=True)
    grown = DeviceProfile(profile.meta, pd.concat([profile.table, fast_wide], ignore_index=True))
    cost = LatencyCost(analysis, grown, model_key=TINY)
    assert sum(ms for _, ms in cost.per_layer()) < 0.95 * sum(before)
    assert float(cost()) == pytest.approx(measured)
    assert float(cost(fractions_from_probs(_probs(analysis, 0.5))).detach()) < measured


def test_a_fixed_share_stays_when_pruning_shrinks_the_layers():
    """A model measured at 2 ms whose half-width variant, its layers predicted at 0.5 of the
    original's, measured 0.6 of it: a fifth of its latency does not shrink with the widths. The
    scale calibration then predicts the original at what it measured and any variant at
    0.2 + 0.8 x its layers' share; a model the profile never measured keeps the median scale."""
    from mobileprune.cost.calibrate import calibrate, fixed_share

    assert fixed_share(0.5, 0.6) == pytest.approx(0.2)
    assert fixed_share(0.5, 0.45) == 0.0 and fixed_share(0.95, 0.97) is None  # noise; too close to tell
    meta = ProfileMeta(device="host", cpu="x", runtime="executorch", runtime_version="0", threads=1,
                       measured_ms={"m": 2.0, "n": 3.0}, overheads_ms={"m": 0.4, "n": 1.0}, fixed_shares={"m": 0.2})
    layers = 1.6  # the table's sum for "m" now
    mode, scale, overhead = calibrate(meta, "m", "scale", layers_ms=layers)
    assert mode == "scale" and layers * scale + overhead == pytest.approx(2.0)
    assert (0.5 * layers * scale + overhead) / 2.0 == pytest.approx(0.6)
    assert calibrate(meta, "other", "scale")[1:] == (pytest.approx(np.median([2.0 / 1.6, 3.0 / 2.0])), 0.0)


def test_per_layer_calibration_fits_a_scale_and_a_cost_per_layer():
    """Whole-model latencies that are 1.1 x the table sum + 8 us per layer: the fit recovers both
    for a model the profile never measured, reproduces a calibrated model exactly, and keeps the
    per-layer term when pruning shrinks the table sum; with too few models it falls back to the
    scale."""
    from mobileprune.cost.calibrate import calibrate

    sums, counts = {"a": 5.0, "b": 20.0, "c": 2.0, "d": 9.0}, {"a": 60, "b": 40, "c": 110, "d": 80}
    measured = {k: 1.1 * sums[k] + 0.008 * counts[k] for k in sums}
    measured["d"] *= 1.05  # d runs 5% slower than the fit: its own residual
    meta = ProfileMeta(device="host", cpu="x", runtime="executorch", runtime_version="0", threads=1,
                       measured_ms=measured, overheads_ms={k: measured[k] - sums[k] for k in sums},
                       layer_counts=counts)
    mode, scale, overhead = calibrate(meta, None, "per-layer", exclude=("d",), n_layers=50)
    assert mode == "per-layer" and scale == pytest.approx(1.1) and overhead == pytest.approx(0.4)
    mode, scale, overhead = calibrate(meta, "d", "per-layer", n_layers=counts["d"])
    assert sums["d"] * scale + overhead == pytest.approx(measured["d"])
    assert overhead > 0.008 * counts["d"]  # the fixed term stays (and carries d's residual)
    assert calibrate(meta, None, "per-layer", exclude=("a", "b"), n_layers=50)[0] == "scale"
    with pytest.raises(ValueError, match="unknown calibration"):
        calibrate(meta, None, "fancy")
