"""Saved pruned models rebuild from spec + plan + weights (no pickle); slimmed models export."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision

import mobileprune as mp
from mobileprune.spec import SpecError, build


def test_save_load_round_trip(tmp_path):
    spec = "torchvision:mobilenet_v3_small"
    model = build(spec).eval()
    x = torch.randn(1, 3, 96, 96)
    analysis = mp.analyze(model, x)
    plan = mp.PrunePlan.random(analysis, 0.4, 8, seed=2)
    slimmed = mp.slim(model, analysis, plan)
    with torch.no_grad():  # train-like change to the weights: load must restore them, not re-init
        for p in slimmed.parameters():
            p.add_(0.01)
    mp.save(tmp_path / "m", spec, plan, slimmed, [tuple(x.shape)])
    files = sorted(f.name for f in (tmp_path / "m").iterdir())
    assert files == ["model.json", "weights.safetensors"]
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["spec"] == spec and meta["plan"]["keep"]
    loaded, _ = mp.load(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(loaded(x), slimmed(x))


def test_file_factory_spec(tmp_path):
    src = tmp_path / "net.py"
    src.write_text("import torch.nn as nn\n"
                   "def make():\n    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1))\n")
    model = build(f"{src}:make")
    assert isinstance(model, torch.nn.Sequential)
    with pytest.raises(SpecError, match="no callable 'nope'"):
        build(f"{src}:nope")
    with pytest.raises(SpecError, match="neither 'torchvision' nor an existing .py file"):
        build("missing.py:make")


def test_models_of_a_file_spec_stay_picklable_whatever_is_loaded_after(tmp_path):
    """A file is imported once per process, and two files of one name never replace each other:
    a model built before another file (or the same one) is loaded still pickles by name, as a
    peers.py run saves its pruned nets (it failed in CI with "not the same object")."""
    import pickle

    first, second = tmp_path / "a" / "net.py", tmp_path / "b" / "net.py"
    for src, width in ((first, 8), (second, 4)):
        src.parent.mkdir()
        src.write_text("import torch.nn as nn\nclass Net(nn.Sequential):\n    def __init__(self):\n"
                       f"        super().__init__(nn.Conv2d(3, {width}, 3))\ndef make():\n    return Net()\n")
    import sys

    model = build(f"{first}:make")
    build(f"{second}:make"), build(f"{first}:make")
    sys.modules.pop(type(model).__module__)  # as code that cleans up modules might
    build(f"{first}:make")
    assert type(pickle.loads(pickle.dumps(model))) is type(model)
    assert type(build(f"{second}:make")) is not type(model)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('half-written')\n")
    with pytest.raises(SpecError, match="half-written"):
        build(f"{broken}:make")
    broken.write_text("import torch.nn as nn\ndef make():\n    return nn.ReLU()\n")
    assert isinstance(build(f"{broken}:make"), torch.nn.ReLU)  # a failed import is not kept


def test_load_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "model.json").write_text('{"format": "something-else"}')
    with pytest.raises(mp.storage.StorageError, match="unknown format"):
        mp.load(tmp_path)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "shufflenet_v2_x1_0"])
def test_slimmed_model_passes_torch_export(name):
    torch.set_num_threads(1)
    model = torchvision.models.get_model(name).eval()
    x = torch.randn(1, 3, 224, 224)
    analysis = mp.analyze(model, x)
    slimmed = mp.slim(model, analysis, mp.PrunePlan.random(analysis, 0.3, 8, seed=0))
    ep = torch.export.export(slimmed, (x,))
    with torch.no_grad():
        assert torch.allclose(ep.module()(x), slimmed(x), atol=1e-5)


def test_a_model_built_in_memory_is_saved_with_its_definition(tmp_path):
    """save() takes the original's definition instead of a spec string: a factory function or an
    nn.Module class from a .py file, recorded as file.py:name; what cannot be rebuilt is refused."""
    import importlib.util

    src = tmp_path / "mynet.py"
    src.write_text("import torch.nn as nn\n"
                   "class Net(nn.Sequential):\n"
                   "    def __init__(self):\n"
                   "        super().__init__(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 4, 1))\n"
                   "def make():\n    return Net()\n")
    spec = importlib.util.spec_from_file_location("mynet", src)
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules["mynet"] = module
    spec.loader.exec_module(module)
    x = torch.randn(1, 3, 16, 16)
    for definition in (module.make, module.Net, module.Net()):
        model = module.make().eval()
        analysis = mp.analyze(model, x)
        plan = mp.PrunePlan.random(analysis, 0.5, 4, seed=0)
        slimmed = mp.slim(model, analysis, plan)
        mp.save(tmp_path / "saved", definition, plan, slimmed, [tuple(x.shape)])
        meta = json.loads((tmp_path / "saved" / "model.json").read_text())
        assert meta["spec"].endswith("mynet.py:" + ("make" if definition is module.make else "Net"))
        loaded, _ = mp.load(tmp_path / "saved")
        with torch.no_grad():
            assert torch.equal(loaded(x), slimmed(x))
    with pytest.raises(mp.storage.StorageError, match="cannot record how to rebuild"):
        mp.save(tmp_path / "bad", lambda: module.Net(), plan, slimmed, [tuple(x.shape)])


def test_a_saved_model_is_captured_once_by_predict_and_export(tmp_path, monkeypatch):
    """Loading a saved dir for predict/export rebuilds, analyses (torch.export) and slims once."""
    from mobileprune import predict as predict_mod, storage

    spec = "torchvision:mobilenet_v3_small"
    model = build(spec).eval()
    x = torch.randn(1, 3, 64, 64)
    analysis = mp.analyze(model, x)
    plan = mp.PrunePlan.random(analysis, 0.4, 8, seed=2)
    mp.save(tmp_path / "m", spec, plan, mp.slim(model, analysis, plan), [tuple(x.shape)])
    calls = []
    real = storage.analyze
    monkeypatch.setattr(storage, "analyze", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(predict_mod, "analyze", lambda *a, **k: calls.append(1) or real(*a, **k))
    ref = predict_mod.resolve(str(tmp_path / "m"))
    assert len(calls) == 1 and ref.plan.keep == plan.keep and ref.spec == spec
