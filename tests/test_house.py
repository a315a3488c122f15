"""The house rules a newcomer relies on, read from the source as test_imports.py reads imports:
settings travel as small objects, not as long parameter lists (no public function of the
product takes more than 8 parameters; self, *args/**kwargs and dataclass constructors not
counted), and the CLI parses and prints (its stage work lives in the library, where a test or a
notebook calls it without a subprocess), and each extension point is one registry entry
(a runtime flavour registered alone is exported, checked and measured)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mobileprune"
MOST = 8


def _too_long(package: Path) -> dict[str, int]:
    found = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                a = node.args
                named = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                if len(named) > MOST:
                    found[f"{path.relative_to(package).as_posix()}:{node.name}"] = len(named)
    return found


def test_no_public_function_takes_more_than_eight_parameters():
    assert _too_long(PACKAGE) == {}


def test_the_count_sees_keyword_only_parameters(tmp_path):
    (tmp_path / "m.py").write_text("def f(a, b, *, c, d, e, f, g, h, i, **kw):\n    pass\n\n"
                                   "def _g(a, b, c, d, e, f, g, h, i):\n    pass\n\n"
                                   "class C:\n    def m(self, a, b, c, d, e, f, g, h):\n        pass\n")
    assert _too_long(tmp_path) == {"m.py:f": 9}


# What only a stage may do: set up torch.distributed, write or delete files, save models.
STAGE_WORK = ("torch.distributed", ".write_text(", ".write_bytes(", ".unlink(", "rmtree(", "torch.save(", "save(")


def test_the_cli_holds_no_stage_logic():
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        source = path.read_text()
        assert not [w for w in STAGE_WORK if w in source], (path.name, [w for w in STAGE_WORK if w in source])


def test_a_runtime_flavour_is_one_registry_entry(tmp_path):
    """A stand-in flavour, ExecuTorch's portable kernels without the XNNPACK delegate, added
    through runtimes.register alone: export builds it under its own suffix, checks its parity by
    running it in the measuring worker with the functions its entry names, and measures it; its
    artifacts are told from ExecuTorch-XNNPACK's by their whole suffix, though both are .pte."""
    import torch

    import mobileprune as mp
    from mobileprune.devices import runtimes
    from mobileprune.devices.programs import write_atomic
    from mobileprune.spec import build

    from conftest import TINY, TINY_SHAPE

    def portable(module, example_inputs, nhwc=False):
        from executorch.exir import to_edge

        return to_edge(torch.export.export(module.eval(), tuple(example_inputs))).to_executorch().buffer, None

    xnnpack = runtimes.get("executorch")
    flavour = runtimes.Runtime(
        "executorch-portable", "ExecuTorch portable kernels", ".portable.pte", "executorch", per_op_events=False,
        fused_activations=frozenset(), channels_last_kinds=frozenset(),
        lower=lambda module, inputs, path, channels_last=False: write_atomic(portable(module, inputs)[0], path),
        build=portable, interpreters=("executorch",), worker=xnnpack.worker)
    runtimes.register(flavour)
    try:
        assert flavour.export_format == "portable-pte"
        assert runtimes.for_artifact(tmp_path / "model.portable.pte") is flavour
        assert runtimes.for_artifact(tmp_path / "model.pte") is xnnpack
        with pytest.raises(ValueError, match="suffix"):
            runtimes.register(runtimes.Runtime(**{**flavour.__dict__, "name": "other", "export_format": "other"}))
        model, x = build(TINY).eval(), torch.randn(TINY_SHAPE)
        manifest = mp.export(model, (x,), tmp_path, ("portable-pte",),
                             config=mp.ExportConfig(images=0, measure=True, processes=1))
        (entry,) = manifest["artifacts"]
        assert entry["status"] == "ok" and entry["path"] == "model.portable.pte" and entry["delegation"] is None
        assert entry["parity"]["passed"] and entry["checked_with"] == ["executorch"] and entry["latency_ms"] > 0
    finally:
        runtimes.unregister("executorch-portable")
    assert "portable-pte" not in runtimes.formats()


def test_a_cost_model_is_one_registry_entry():
    """A stand-in cost model, the kept channels of every group, added through the cost registry
    alone: mobileprune.prune takes a budget in it and meets it, and predict prices the pruned
    model in it as prune's report did."""
    import torch

    import mobileprune as mp
    from mobileprune.cost import registry
    from mobileprune.predict import ModelRef, predict
    from mobileprune.prune import PruneError
    from mobileprune.spec import build

    from conftest import TINY, TINY_SHAPE

    class KeptChannels:
        unit = "channels"

        def __init__(self, analysis):
            self.sizes = {g.id: g.size for g in analysis.groups}

        def __call__(self, fractions=None):
            fractions = fractions or {}
            return sum(torch.as_tensor(fractions.get(gid, 1.0), dtype=torch.float64) * size
                       for gid, size in self.sizes.items())

    registry.register("channels", registry.CostEntry(lambda analysis, inputs: KeptChannels(analysis)))
    try:
        with pytest.raises(ValueError, match="registered already"):
            registry.register("channels", registry.CostEntry(lambda analysis, inputs: KeptChannels(analysis)))
        result = mp.prune(build(TINY).eval(), torch.randn(TINY_SHAPE), method="l1",
                          target=mp.Target(budget="80%", cost="channels"), output=mp.Output(show=False))
        predicted = result.report["predicted"]
        assert predicted["after"] <= predicted["budget"] < predicted["before"]
        assert predicted["before"] == sum(KeptChannels(result.analysis).sizes.values())
        ref = ModelRef(TINY, build(TINY).eval(), result.analysis, result.plan, result.model)
        priced = predict(ref, None, cost="channels")
        assert priced == {"cost": "channels", "unit": "channels", "predicted": predicted["after"],
                          "original": predicted["before"]}
    finally:
        registry.unregister("channels")
    with pytest.raises(PruneError, match="unknown cost 'channels'"):
        mp.prune(build(TINY).eval(), torch.randn(TINY_SHAPE), method="l1",
                 target=mp.Target(budget="80%", cost="channels"), output=mp.Output(show=False))


def test_a_model_source_is_one_registry_entry(tmp_path):
    """A stand-in model source added through spec.register alone: its specs build, give their
    input shape, and a model pruned under one is saved and rebuilt from the spec and the plan."""
    import torch
    from torch import nn

    import mobileprune as mp
    from mobileprune import spec

    def small(name: str) -> nn.Module:
        if name != "two-convs":
            raise spec.SpecError(f"no model {name!r} here")
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))

    spec.register("house", spec.ModelSource(small, lambda name: (1, 3, 32, 32)))
    try:
        with pytest.raises(ValueError, match="registered already"):
            spec.register("house", spec.ModelSource(small))
        assert spec.default_input_shape("house:two-convs") == (1, 3, 32, 32)
        with pytest.raises(spec.SpecError, match="no model 'other'"):
            spec.build("house:other")
        x = torch.randn(spec.default_input_shape("house:two-convs"))
        result = mp.prune(spec.build("house:two-convs").eval(), x, method="l1",
                          target=mp.Target(budget="60%", cost="flops"),
                          output=mp.Output(out=tmp_path / "pruned", spec="house:two-convs", show=False))
        reloaded, meta = mp.load(tmp_path / "pruned")
        assert meta["spec"] == "house:two-convs"
        with torch.no_grad():
            assert torch.allclose(reloaded(x), result.model(x), atol=1e-6)
    finally:
        spec.unregister("house")
