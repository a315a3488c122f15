"""Code a user names as ``path/to/file.py:name``: a model factory (spec.py) or a data factory
(data.py), imported from its file once per process.

Its own module so that model specs and data sources can both load user code without either
importing the other (spec.py builds the Fashion-MNIST family, whose trainer loads data).
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from pathlib import Path

from .errors import MobilepruneError


class SpecError(MobilepruneError, ValueError):
    """A model spec that cannot be turned into a model."""


USAGE = ("MODEL is torchvision:NAME (e.g. torchvision:resnet18), pretrained:efficientnet_lite0 or "
         "path/to/file.py:factory")

_LOADING = threading.RLock()
_LOADED: dict = {}  # module name -> the module load_file imported


def load_factory(spec: str):
    """The callable ``name`` of ``path/to/file.py:name`` (model factories, data factories)."""
    path, _, name = spec.rpartition(":")
    factory = getattr(load_file(spec), name, None)
    if not callable(factory):
        raise SpecError(f"{path} has no callable {name!r}")
    return factory


def load_file(spec: str):
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
