"""Capture a model with torch.export, turning its failures into one readable paragraph."""
from __future__ import annotations

import threading
import time

import torch
from torch import nn

from ..errors import MobilepruneError

# torch.export (and the lowerings built on it) is not thread-safe: two threads capturing at
# once failed here with "Trying to pop empty mode stack" and "a fake tensor in the exported
# program constant's list" (profiling two devices at once). Every capture and lowering in
# mobileprune holds this lock; measuring, which is most of a profile's time, does not.
EXPORT_LOCK = threading.RLock()


class CaptureError(MobilepruneError, RuntimeError):
    """torch.export could not capture the model; the message names the module and the cause."""


def capture(model: nn.Module, example_inputs: tuple, train: bool = False):
    """Export ``model`` (eval mode unless ``train``); returns (ExportedProgram, seconds)."""
    was_training = model.training
    model.train(train)
    stack: list[str] = []
    names = {m: n for n, m in model.named_modules()}

    # Why hooks: the exporter's exception rarely says which submodule it was in; a pre/post hook
    # pair records the innermost module still running when it failed.
    def enter(mod, _args):
        stack.append(names.get(mod, type(mod).__name__) or "<root>")

    def leave(mod, _args, _out):
        if stack:
            stack.pop()

    handles = [m.register_forward_pre_hook(enter) for m in model.modules()]
    handles += [m.register_forward_hook(leave) for m in model.modules()]
    start = time.perf_counter()
    try:
        with EXPORT_LOCK:
            ep = torch.export.export(model, tuple(example_inputs), strict=False)
    except Exception as exc:
        where = stack[-1] if stack else "<root>"  # modules still running when it failed
        mod = model.get_submodule(where) if where not in ("<root>",) and _has(model, where) else model
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CaptureError(
            f"torch.export could not capture {type(model).__name__}: it failed inside module "
            f"'{where}' ({type(mod).__name__}) with {type(exc).__name__}: {first}. mobileprune needs "
            f"a model torch.export can trace with fixed-shape example inputs; data-dependent "
            f"Python control flow, .item()/.tolist() on tensors and non-tensor outputs are the "
            f"usual causes. Rewrite that module or pass it as a separate model."
        ) from exc
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return ep, time.perf_counter() - start


def _has(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False
