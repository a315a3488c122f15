"""save/load a pruned model as: how to build the original + the plan + the weights. No pickle.

A saved model is a directory with ``model.json`` (spec, input shapes, plan, versions) and
``weights.safetensors``. Loading rebuilds the original from its spec, re-runs the analysis,
checks the plan's fingerprint, slims, and loads the weights.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .graph import analyze
from .plan import PrunePlan
from .slim import slim
from .spec import build

FORMAT = "mobileprune.pruned/1"


class StorageError(ValueError):
    """A saved model directory that cannot be loaded."""


def save(path, spec: str, plan: PrunePlan, model: nn.Module, input_shapes: list) -> Path:
    """Store a pruned ``model`` (the result of slim) built from ``spec`` with ``plan``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "spec": spec, "input_shapes": [list(s) for s in input_shapes],
            "plan": plan.to_dict(), "mobileprune": __version__, "torch": torch.__version__}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "weights.safetensors"))
    (path / "model.json").write_text(json.dumps(meta, indent=1))
    return path


def is_saved(path) -> bool:
    return (Path(path) / "model.json").is_file()


def load(path) -> tuple[nn.Module, dict]:
    """Rebuild a saved pruned model; returns (model in eval mode, its metadata)."""
    path = Path(path)
    try:
        meta = json.loads((path / "model.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StorageError(f"{path} is not a saved mobileprune model: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise StorageError(f"{path}: unknown format {meta.get('format')!r}, expected {FORMAT}")
    original = build(meta["spec"]).eval()
    inputs = tuple(torch.zeros(s) for s in meta["input_shapes"])
    analysis = analyze(original, inputs)
    plan = PrunePlan.from_dict(meta["plan"])
    model = slim(original, analysis, plan, verify=False)
    state = load_file(str(path / "weights.safetensors"))
    model.load_state_dict(state, strict=True)
    return model.eval(), meta
