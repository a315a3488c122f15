"""save/load a pruned model as: how to build the original + the plan + the weights. No pickle.

A saved model is a directory with ``model.json`` (spec, input shapes, plan, versions) and
``weights.safetensors``. Loading rebuilds the original from its spec, re-runs the analysis,
checks the plan's fingerprint, slims, and loads the weights.
"""
from __future__ import annotations

import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .errors import MobilepruneError
from .graph import Analysis
from .plan import PrunePlan
from .slim import analyze, slim
from .spec import build

FORMAT = "mobileprune.pruned/1"


class StorageError(MobilepruneError, ValueError):
    """A saved model directory that cannot be loaded."""


def save(path, spec, plan: PrunePlan, model: nn.Module, input_shapes: list) -> Path:
    """Store a pruned ``model`` (the result of slim) built from ``spec`` with ``plan``.

    ``spec``: a model spec string (spec.py), or the definition of the original in memory: a
    factory function or an ``nn.Module`` class (or an instance of one whose class takes no
    arguments) defined at the top level of a .py file; it is recorded as ``file.py:name`` and
    must rebuild the original on load."""
    spec = spec_of(spec)
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


@dataclass
class Saved:
    """A saved pruned model, rebuilt: the pruned model and what it was made from."""

    model: nn.Module  # pruned, eval mode, saved weights loaded
    meta: dict  # model.json
    original: nn.Module  # rebuilt from the spec (its own initial weights)
    analysis: Analysis  # of the original, on inputs of the saved shapes
    plan: PrunePlan


def load(path) -> tuple[nn.Module, dict]:
    """Rebuild a saved pruned model; returns (model in eval mode, its metadata)."""
    saved = load_saved(path)
    return saved.model, saved.meta


def load_saved(path) -> Saved:
    """Rebuild a saved pruned model with its original, analysis and plan (one capture)."""
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
    try:
        state = load_file(str(path / "weights.safetensors"))
        model.load_state_dict(state, strict=True)
    except (OSError, SafetensorError, RuntimeError) as exc:
        raise StorageError(f"{path}/weights.safetensors cannot be loaded into the model its plan rebuilds "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]}); the saved directory is "
                           f"damaged or was written for another plan: save the pruned model again") from exc
    return Saved(model.eval(), meta, original, analysis, plan)


def spec_of(definition) -> str:
    """A spec string for ``definition`` (see ``save``)."""
    if isinstance(definition, str):
        return definition
    target = type(definition) if isinstance(definition, nn.Module) else definition
    name = getattr(target, "__qualname__", "")
    try:
        source = inspect.getsourcefile(target)
    except TypeError:
        source = None
    module = sys.modules.get(getattr(target, "__module__", ""), None)
    if not source or not name or "." in name or getattr(module, name, None) is not target:
        raise StorageError(f"cannot record how to rebuild {definition!r}: pass a spec string, or a factory "
                           f"function / nn.Module class defined at the top level of a .py file")
    if isinstance(definition, nn.Module):
        try:
            inspect.signature(target).bind()
        except TypeError:
            raise StorageError(f"{name} needs constructor arguments: pass a factory function that builds "
                               f"the original instead") from None
    return f"{Path(source).resolve()}:{name}"
