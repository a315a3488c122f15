"""int8 export (ExecuTorch-XNNPACK through PT2E): an artifact is checked against the
fake-quantized model it was built from, on a data source's held-out images, and refused when it
does not compute what that model computes."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

import mobileprune as mp
from mobileprune.data import load_data
from mobileprune.devices import runtimes
from mobileprune.devices.latency_table import DeviceProfile, ProfileError
from mobileprune.errors import SettingsError
from mobileprune.export import ExportConfig, ExportError
from mobileprune.export.parity import batches
from mobileprune.prune import PruneError
from mobileprune.spec import build

from conftest import TINY, TINY_SHAPE
from in_process import run_cli

NET = "fashion:resnet_w0.5"  # trained weights ship with the package: its top-1 means something
SHAPE = (1, 1, 128, 128)


@pytest.fixture(scope="module")
def fashion():
    return load_data("fashion-mnist", SHAPE)


@pytest.mark.long
def test_int8_export_passes_its_checks_and_reports_top1(tmp_path, capsys):
    out = run_cli(capsys, "export", NET, "--formats", "pte-int8,tflite-int8", "--data", "fashion-mnist",
                  "--check-images", "200", "--out", tmp_path)  # (1000 by default; 200 keep the test short)
    assert out.returncode == 0, out.stderr
    artifacts = json.loads((tmp_path / "manifest.json").read_text())["artifacts"]
    assert [a["path"] for a in artifacts] == ["model.int8.pte", "model.int8.tflite"]
    params = sum(p.numel() for p in build(NET).parameters())
    for artifact in artifacts:
        assert artifact["status"] == "ok" and artifact["dtype"] == "int8" and (tmp_path / artifact["path"]).exists()
        parity = artifact["parity"]
        assert parity["images"] == 200 and parity["inputs"] == 203  # 200 held-out images and 3 random inputs
        assert parity["rel_diff"] <= parity["tolerance"] == 0.05
        assert parity["top1_agreement"] >= parity["min_top1_agreement"] == 0.99
        top1 = artifact["top1"]
        assert top1["images"] == 200 and top1["float_model"] - 0.05 <= top1["artifact"] <= 1.0, top1
        assert artifact["quantization"]["calibration_images"] == 256
        assert artifact["size_bytes"] < 2 * params  # int8 weights: a float32 program holds 4 bytes each
    assert artifacts[0]["delegation"]["delegated_share"] > 0.95  # XNNPACK's int8 kernels, not the portable ones
    assert "litert" in artifacts[1]["checked_with"]
    assert out.stdout.count("held-out images") == 2


def test_the_post_training_quantizer_builds_the_stock_xnnpack_quantizers_program():
    """Our XNNPACK quantizer skips the conv+BatchNorm patterns (quantization-aware training's;
    BatchNorm is folded before annotation here): the .int8.pte it leads to is the stock
    quantizer's, byte for byte, on a net with conv+BN(+ReLU), depthwise, SE, add and linear."""
    import hashlib

    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    from mobileprune.devices import quantize
    from mobileprune.devices.programs import lower_pte

    model, inputs = build(TINY).eval(), (torch.randn(TINY_SHAPE),)
    stock = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    programs = [quantize._quantized(model, inputs, None, stock, fold=True), quantize.int8_xnnpack(model, inputs)]
    digests = [hashlib.sha256(lower_pte(q, inputs).to_executorch().buffer).hexdigest() for q in programs]
    assert digests[0] == digests[1]
    assert any("quantize_per_tensor" in str(n.target) for n in programs[1].graph.nodes)  # it is int8


@pytest.mark.long
def test_a_miscalibrated_int8_artifact_is_refused(tmp_path, fashion):
    """An artifact built from activations calibrated on inputs twenty times too small (their
    ranges saturate) against the fake-quantized model calibrated as export does: refused, and
    its file renamed so no app build picks it up."""
    from mobileprune.devices.quantize import int8_xnnpack

    model, x = build(NET).eval(), torch.randn(SHAPE)
    shrunk = [(images / 20,) for images, _ in batches(fashion.train, 32, 1)]
    real = runtimes.get("executorch-int8")

    def miscalibrated(module, example_inputs, nhwc=False):  # ignores the reference it is given
        return real.build(int8_xnnpack(model, example_inputs, shrunk), example_inputs, nhwc)

    runtimes.register(dataclasses.replace(real, name="int8-miscalibrated", export_format="pte-int8-bad",
                                          suffix=".bad.int8.pte", build=miscalibrated))
    try:
        with pytest.raises(ExportError, match="pte-int8-bad: (relative diff|top-1 agreement)") as failed:
            mp.export(model, x, tmp_path, ("pte-int8-bad",), config=ExportConfig(data_images=50), data=fashion)
    finally:
        runtimes.unregister("int8-miscalibrated")
    artifact, = failed.value.manifest["artifacts"]
    assert artifact["status"] == "failed" and artifact["path"] == "model.bad.int8.pte.failed"
    assert (tmp_path / "model.bad.int8.pte.failed").exists() and not (tmp_path / "model.bad.int8.pte").exists()


def test_int8_export_without_data_is_refused_before_building(tmp_path):
    with pytest.raises(SettingsError, match="give data"):
        mp.export(build(NET).eval(), torch.randn(SHAPE), tmp_path, ("pte", "pte-int8"))
    assert not list(tmp_path.iterdir())


def _profile_as(tmp_path, runtime: str, dtype: str):
    """A copy of a shipped float profile whose metadata says ``runtime`` and ``dtype``."""
    shipped = Path(__file__).parents[1] / "device_profiles" / "host-amd-epyc-f25m1-executorch-1t"
    meta = json.loads(shipped.with_suffix(".json").read_text())
    copy = tmp_path / f"{runtime}-{dtype}"
    shutil.copy(shipped.with_suffix(".csv"), copy.with_suffix(".csv"))
    copy.with_suffix(".json").write_text(json.dumps({**meta, "runtime": runtime, "dtype": dtype}))
    return copy.with_suffix(".csv")


def test_a_latency_budget_is_never_priced_by_a_profile_of_another_dtype(tmp_path, capsys):
    float_profile = _profile_as(tmp_path, "executorch", "float32")
    int8_profile = _profile_as(tmp_path, "executorch-int8", "int8")
    out = run_cli(capsys, "prune", TINY, "--method", "l1", "--profile", float_profile, "--dtype", "int8",
                  "--out", tmp_path / "a")
    assert out.returncode == 2 and "is a float32 table" in out.stderr and "--runtime executorch-int8" in out.stderr
    with pytest.raises(PruneError, match="is an? int8 table"):
        mp.prune(build(TINY).eval(), torch.randn(TINY_SHAPE), method="l1",
                 target=mp.Target(budget="50%", profile=int8_profile, dtype="float32"), output=mp.Output(show=False))
    assert not (tmp_path / "a").exists()
    # a FLOPs budget counts the same in any dtype: an int8 intent there is a mistake, said as such
    out = run_cli(capsys, "prune", TINY, "--method", "l1", "--cost", "flops", "--dtype", "int8", "--out", tmp_path / "b")
    assert out.returncode == 2 and "a flops budget with no profile counts the same in any dtype" in out.stderr
    assert not (tmp_path / "b").exists()
    # a profile whose rows claim another dtype than its runtime computes in is corrupt, not priced
    with pytest.raises(ProfileError, match="computes in int8"):
        DeviceProfile.load(_profile_as(tmp_path, "executorch-int8", "float32"))


@pytest.mark.long
def test_an_int8_profile_is_measured_in_int8_and_measured_rounds_measure_int8(shared_tiny_int8_profile, tmp_path,
                                                                               monkeypatch):
    """A profile made for the executorch-int8 runtime is an int8 table, and pruning to it with
    measured rounds lowers and measures each plan as an int8 program, never as a float one."""
    from mobileprune.devices import HostRunner

    profile = DeviceProfile.load(shared_tiny_int8_profile.path)
    assert (profile.meta.runtime, profile.meta.dtype) == ("executorch-int8", "int8") and len(profile.table) > 5
    from mobileprune.devices import measuring

    lowered, measured = [], []  # (runtime, file name) of every program lowered; every artifact measured

    def spied(runtime):
        def lower(module, example_inputs, path, channels_last=False):
            lowered.append((runtime.name, Path(path).name))
            return runtime.lower(module, example_inputs, path, channels_last)
        return dataclasses.replace(runtime, lower=lower)

    def measure(path, *args, **kwargs):
        measured.append(Path(path).name)
        return real_measure(path, *args, **kwargs)

    real_measure = measuring.measure_artifact_for_profile
    monkeypatch.setattr(measuring, "measure_artifact_for_profile", measure)
    for name in ("executorch", "executorch-int8"):
        monkeypatch.setitem(runtimes.RUNTIMES, name, spied(runtimes.get(name)))
    copy = DeviceProfile(profile.meta, profile.table.copy())
    copy.save(tmp_path / "tiny-int8.csv")  # rows measured on demand go to a copy
    result = mp.prune(build(TINY).eval(), torch.randn(TINY_SHAPE), method="l1",
                      target=mp.Target(budget="85%", profile=copy, device=HostRunner(), dtype="int8",
                                       measured=mp.MeasuredRounds(rounds=2, processes=1)),
                      output=mp.Output(show=False))
    rounds = result.report["measured"]["rounds"]
    assert rounds and all(r["measured"] > 0 for r in rounds)
    # the original and every plan measured as int8 programs; nothing lowered as float (timing
    # programs already lowered, e.g. the original's while profiling, come from the cache)
    assert len(measured) == 1 + len(rounds) and all(name.endswith(".int8.pte") for name in measured)
    assert {name for name, _ in lowered} <= {"executorch-int8"}
