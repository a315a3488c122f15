"""Export: artifacts run on this machine's runtimes and match eager PyTorch, or are refused."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import mobileprune as mp
from mobileprune.devices.identity import DeviceIdentity, compare, host_identity
from mobileprune import cli
from mobileprune.devices import HostRunner
from mobileprune.spec import build

HERE = Path(__file__).parent
TINY = f"{HERE / 'models' / 'tiny.py'}:make"
X = torch.randn(1, 3, 64, 64)


@pytest.fixture(scope="module")
def pruned_tiny(tmp_path_factory):
    """The tiny model slimmed with a random plan, saved, and its saved directory."""
    model = build(TINY).eval()
    analysis = mp.analyze(model, X)
    plan = mp.PrunePlan.random(analysis, 0.5, 8, seed=1)
    slimmed = mp.slim(model, analysis, plan)
    saved = mp.save(tmp_path_factory.mktemp("saved") / "tiny", TINY, plan, slimmed, [tuple(X.shape)])
    return slimmed, plan, saved


@pytest.mark.long
def test_manifest_describes_every_artifact(tmp_path, pruned_tiny):
    slimmed, plan, _ = pruned_tiny
    other = DeviceIdentity("host", {"cpu": "Some Other CPU", "arch": "x86_64", "isa": ["avx2"], "cores": 8})
    prediction = {"predicted_ms": 1.25, "profile": "p.csv", "runtime": "ExecuTorch-XNNPACK",
                  **compare(other, host_identity()).to_dict(), "profile_identity": other.to_dict()}
    manifest = mp.export(slimmed, (X,), tmp_path, ("pte", "tflite"), config=mp.ExportConfig(measure=True, processes=2),
                         origin=mp.ModelOrigin(TINY, plan, prediction))
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert manifest["passed"] and manifest["model"]["pruned"]
    assert manifest["model"]["plan_fingerprint"] == plan.fingerprint and len(manifest["model"]["plan_sha256"]) == 64
    assert manifest["inputs"] == [{"name": "input_0", "shape": [1, 3, 64, 64], "dtype": "float32", "layout": "NCHW"}]
    assert manifest["outputs"][0]["shape"] == [1, 10]
    assert {"mobileprune", "torch", "executorch", "ai-edge-litert", "litert-torch"} <= set(manifest["versions"])
    predicted = manifest["predicted_latency_ms"]  # for another device than the one measured here: said so
    assert predicted["ms"] == 1.25 and predicted["profile"] == "p.csv" and predicted["device_match"] is False
    assert predicted["profile_device"].startswith("host Some Other CPU")
    assert predicted["this_device"] == host_identity().describe()
    assert any(d.startswith("cpu: Some Other CPU vs") for d in predicted["differences"])
    assert manifest["parity_inputs"]["images"] == 4  # real ImageNet samples, resized to 64x64
    pte, tfl = manifest["artifacts"]
    assert (pte["format"], tfl["format"]) == ("pte", "tflite")
    for a in (pte, tfl):
        assert a["status"] == "ok" and (tmp_path / a["path"]).is_file()
        assert a["size_bytes"] == (tmp_path / a["path"]).stat().st_size
        assert a["parity"]["passed"] and a["parity"]["rel_diff"] <= 1e-4 and a["parity"]["inputs"] == 7
        assert a["parity"]["top1_agreement"] == 1.0
        assert 0 < a["latency_ms"] == a["latency"]["ms"] <= a["latency"]["median"] <= a["latency"]["max"]
        assert a["latency"]["processes"] == 2
    assert pte["delegation"]["delegated_share"] == 1.0 and pte["delegation"]["subgraphs"] == 1
    assert tfl["delegation"] is None and tfl["checked_with"][0] == "litert"
    if importlib.util.find_spec("tensorflow"):  # `make` installs the tensorflow extra
        assert tfl["checked_with"] == ["litert", "tensorflow"]


def _with_broken_build(monkeypatch, runtime_name: str) -> None:
    """The runtime's export build (its registry entry) replaced by one that builds the program
    from other weights of the same architecture, for this test."""
    import dataclasses

    from mobileprune.devices import runtimes

    real = runtimes.get(runtime_name)

    def broken(model, inputs, nhwc=False):
        return real.build(build(TINY).eval(), inputs, nhwc)  # same architecture, other weights

    monkeypatch.setitem(runtimes.RUNTIMES, runtime_name, dataclasses.replace(real, build=broken))


def test_a_broken_artifact_is_refused(tmp_path, monkeypatch, pruned_tiny):
    """Inject a lowering that builds the program from perturbed weights: parity must catch it,
    the file must not stay under its shipping name, and the CLI must exit non-zero."""
    _with_broken_build(monkeypatch, "executorch")
    model = build(TINY).eval()
    with pytest.raises(mp.ExportError, match="parity failed") as err:
        mp.export(model, (X,), tmp_path, ("pte",))
    entry = err.value.manifest["artifacts"][0]
    assert entry["status"] == "failed" and not entry["parity"]["passed"] and entry["parity"]["rel_diff"] > 1e-2
    assert not (tmp_path / "model.pte").exists() and (tmp_path / "model.pte.failed").exists()
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["passed"] is False and on_disk["artifacts"][0]["status"] == "failed"

    assert cli.main(["export", TINY, "--formats", "pte", "--out", str(tmp_path / "cli"),
                     "--input-shape", "1,3,64,64"]) == 1
    assert json.loads((tmp_path / "cli" / "manifest.json").read_text())["passed"] is False


def test_nhwc_tflite_takes_channels_last_input(tmp_path, pruned_tiny):
    slimmed, _, _ = pruned_tiny
    manifest = mp.export(slimmed, (X,), tmp_path, ("tflite",), config=mp.ExportConfig(nhwc=True))
    (entry,) = manifest["artifacts"]
    assert entry["layout"] == "NHWC" and entry["parity"]["passed"]
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tmp_path / entry["path"]))
    assert list(interp.get_input_details()[0]["shape"]) == [1, 64, 64, 3]
    (out,) = HostRunner().outputs(str(tmp_path / entry["path"]), [(X.permute(0, 2, 3, 1).numpy(),)])[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, slimmed(X).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.long
def test_a_reloaded_pruned_model_exports_identically(tmp_path, pruned_tiny):
    slimmed, plan, saved = pruned_tiny
    reloaded, _ = mp.load(saved)
    # (without TensorFlow's second opinion on the .tflite: bytes are compared here, and
    # test_manifest_describes_every_artifact checks that opinion; each costs a TensorFlow import)
    config, origin = mp.ExportConfig(tf_check=False), mp.ModelOrigin(plan=plan)
    first = mp.export(slimmed, (X,), tmp_path / "a", ("pte", "tflite"), config=config, origin=origin)
    second = mp.export(reloaded, (X,), tmp_path / "b", ("pte", "tflite"), config=config, origin=origin)
    for a, b in zip(first["artifacts"], second["artifacts"]):
        assert a["sha256"] == b["sha256"], f"{a['format']} differs after save/load"
    assert first["model"]["plan_sha256"] == second["model"]["plan_sha256"]


class _NeedsRewrites(nn.Module):
    """mean without keepdim, chunk and hardsigmoid: each split XNNPACK's delegate before rewriting."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.gate = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        b = b * nn.functional.hardsigmoid(self.gate(b.mean((2, 3), keepdim=True)))
        return self.fc(torch.cat([a, b], 1).mean((2, 3)))


def test_rewrites_keep_the_whole_program_in_xnnpack_and_exact(tmp_path):
    model = _NeedsRewrites().eval()
    manifest = mp.export(model, (torch.randn(1, 3, 16, 16),), tmp_path, ("pte",), config=mp.ExportConfig(images=0))
    (entry,) = manifest["artifacts"]
    assert entry["delegation"]["delegated_share"] == 1.0, entry["delegation"]
    assert entry["delegation"]["subgraphs"] == 1
    assert entry["parity"]["rel_diff"] < 1e-6


def test_bench_cli_measures_an_artifact(tmp_path, capsys, pruned_tiny):
    slimmed, _, _ = pruned_tiny
    mp.export(slimmed, (X,), tmp_path, ("pte",), config=mp.ExportConfig(images=0))
    assert cli.main(["bench", str(tmp_path / "model.pte"), "--device", "host", "--repeats", "5",
                     "--processes", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 < result["ms"] <= result["median"] and result["processes"] == 2 and result["device"] == "host"
    assert cli.main(["bench", str(tmp_path / "manifest.json")]) == 2


@pytest.mark.slow
def test_pretrained_efficientnet_lite0_pruned_keeps_top1_in_both_formats(tmp_path):
    """Real ImageNet weights, pruned: both artifacts agree with eager PyTorch on the top-1 class
    of all 20 sample images, preprocessed as the model was trained. (Parity in the export on
    random inputs only, and LiteRT's verdict without TensorFlow's second opinion, which
    test_manifest_describes_every_artifact checks: the images' agreement is checked here, on
    the model's own preprocessing, which export's parity images do not use.)"""
    from mobileprune.pretrained import PREPROCESSING, imagenet_samples

    model = build("pretrained:efficientnet_lite0").eval()
    x = torch.randn(1, 3, 224, 224)
    analysis = mp.analyze(model, x)
    plan = mp.PrunePlan.random(analysis, 0.2, 8, seed=0)
    pruned = mp.slim(model, analysis, plan)
    images, labels = imagenet_samples(224, *PREPROCESSING["efficientnet_lite0"])
    with torch.no_grad():
        eager_top1 = pruned(images).argmax(1)
    config = mp.ExportConfig(images=0, tf_check=False)
    manifest = mp.export(pruned, (x,), tmp_path, ("pte", "tflite"), config=config, origin=mp.ModelOrigin(plan=plan))
    sets = [(images[i:i + 1].numpy(),) for i in range(len(images))]
    assert len(sets) == 20
    for entry in manifest["artifacts"]:
        assert entry["status"] == "ok" and entry["parity"]["passed"] and entry["parity"]["inputs"] == 3
        got = HostRunner().outputs(str(tmp_path / entry["path"]), sets)
        top1 = torch.tensor([int(np.argmax(o[0])) for o in got])
        assert torch.equal(top1, eager_top1), entry["format"]


def test_export_cli_takes_a_saved_pruned_model(tmp_path, pruned_tiny):
    _, plan, saved = pruned_tiny
    assert cli.main(["export", str(saved), "--formats", "tflite", "--out", str(tmp_path), "--nhwc"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["model"]["spec"] == TINY and manifest["model"]["plan_fingerprint"] == plan.fingerprint
    (entry,) = manifest["artifacts"]
    assert entry["layout"] == "NHWC" and entry["status"] == "ok" and (tmp_path / "model.tflite").is_file()
    assert cli.main(["export", str(saved), "--formats", "onnx", "--out", str(tmp_path)]) == 2


def test_a_broken_tflite_is_refused(tmp_path, monkeypatch):
    """The same refusal for .tflite: a converter that produced a program of other weights."""
    _with_broken_build(monkeypatch, "tflite")
    with pytest.raises(mp.ExportError, match="parity failed") as err:  # LiteRT's verdict (no TensorFlow import)
        mp.export(build(TINY).eval(), (X,), tmp_path, ("tflite",), config=mp.ExportConfig(tf_check=False))
    (entry,) = err.value.manifest["artifacts"]
    assert entry["status"] == "failed" and entry["parity"]["rel_diff"] > 1e-2
    assert entry["checked_with"][0] == "litert"
    assert not (tmp_path / "model.tflite").exists() and (tmp_path / "model.tflite.failed").exists()


def test_a_damaged_saved_model_is_a_clear_error(tmp_path, pruned_tiny, capsys):
    """A corrupt weights file: one paragraph and exit 2 from the CLI, no traceback, no artifact."""
    import shutil

    _, _, saved = pruned_tiny
    damaged = tmp_path / "damaged"
    shutil.copytree(saved, damaged)
    weights = damaged / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert cli.main(["export", str(damaged), "--formats", "pte", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "weights.safetensors cannot be loaded" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "model.pte").exists()
    with pytest.raises(mp.storage.StorageError, match="save the pruned model again"):
        mp.load(damaged)
