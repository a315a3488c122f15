"""Walk a captured graph once, applying the rule table to every node.

The tracer is the ``ctx`` the rules see: it allocates atoms, records which parameter slices
follow which atoms (cuts), freezes atoms with a located reason, and tracks parameters whose
every use must agree on their size.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.fx import Node

from .atoms import Atoms
from .rules import CREATION, IGNORED, MIXING, RULES
from .values import ParamView, T, ids_of, tensor_args as _tensors


@dataclass
class Cut:
    """Parameter ``fqn`` is indexed along ``dim`` by the channels whose atoms are ``ids``."""

    fqn: str
    dim: int
    role: str  # producer | consumer | passthrough
    ids: np.ndarray
    where: str


def op_name(target) -> str:
    if isinstance(target, torch._ops.OpOverload):
        name = target.overloadpacket.__name__
    else:
        name = getattr(target, "__name__", str(target))
    return name[:-1] if name.endswith("_") and not name.startswith("_") else name


class Tracer:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.atoms = Atoms()
        self.cuts: list[Cut] = []
        self.fixed_params: dict[str, str] = {}  # fqn -> why its size must not change
        self.unknown_ops: dict[str, list[str]] = {}  # op -> locations
        self.node: Node | None = None
        self.op = ""
        self._claimed: set[str] = set()
        self.values: dict = {}  # node name -> value, of the first (eval-mode) graph
        self.pins: list = []  # (ids, why): channels whose sizes the graph holds as constants

    # ---- what rules call ---------------------------------------------------------------
    @property
    def where(self) -> str:
        stack = (self.node.meta.get("nn_module_stack") or {}) if self.node is not None else {}
        path = list(stack.values())[-1][0] if stack else ""
        return f"aten.{self.op} at {path or '<root>'} (node {self.node.name if self.node else '?'})"

    def fresh(self, n: int) -> np.ndarray:
        return self.atoms.alloc(n)

    def cut(self, fqn: str, dim: int, ids: np.ndarray, role: str) -> None:
        self._claimed.add(fqn)
        self.cuts.append(Cut(fqn, dim, role, np.asarray(ids, dtype=np.int64).copy(), self.where))

    def claim(self, view: ParamView) -> None:
        """The rule accounted for this parameter use (it carries the view on)."""
        self._claimed.update(view.fqns)

    def cut_view(self, view: ParamView, param_dim: int, ids: np.ndarray, role: str) -> None:
        for fqn in view.fqns:
            self.cut(fqn, param_dim, ids, role)

    def claim_as_fixed(self, tensors, why: str) -> None:
        for t in tensors:
            if t is not None and isinstance(t.value, ParamView):
                for fqn in t.value.fqns:
                    self._claimed.add(fqn)
                    self.fixed_params.setdefault(fqn, f"used by {why}: {self.where}")

    def freeze(self, ids, why: str) -> None:
        self.atoms.freeze(np.asarray(ids), f"{why}: {self.where}")

    def pin(self, ids, why: str) -> None:
        """These channels pass an op whose sizes are constants in the captured graph (a split
        size, a view shape). Whether the model's code computes them from the tensor (they follow
        a plan) or holds them in plain attributes (they do not) is invisible in the graph, so
        the groups are tried by slimming after the analysis (slim/pins.py)."""
        self.pins.append((np.asarray(ids).copy(), f"{why}: {self.where}"))

    def varying(self, t: T) -> list[int]:
        return t.tracked.varying() if t.tracked else []

    def module_type_of(self, param_fqn: str):
        """The conv module owning ``param_fqn`` if this node is that module's own call."""
        owner = param_fqn.rsplit(".", 1)[0] if "." in param_fqn else ""
        stack = self.node.meta.get("nn_module_stack") or {}
        here = list(stack.values())[-1][0] if stack else ""
        try:
            mod = self.model.get_submodule(owner)
        except AttributeError:
            return None
        if here == owner and isinstance(mod, nn.modules.conv._ConvNd):
            return type(mod)
        return None

    def unknown(self, a: dict, why: str | None = None):
        """Freeze every channel of every tensor argument; the result is untracked."""
        if why is None:
            why = f"unknown op aten.{self.op}"
            self.unknown_ops.setdefault(self.op, []).append(self.where)
        for t in _tensors(a):
            if t.tracked:
                self.freeze(ids_of(t), why)
        self.claim_as_fixed(_tensors(a), why)
        val = self.node.meta.get("val")
        return [None] * len(val) if isinstance(val, (list, tuple)) else None

    # ---- the walk ---------------------------------------------------------------------------
    def run(self, ep) -> None:
        sig = ep.graph_signature
        params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        env: dict[Node, object] = {}
        for node in ep.graph.nodes:
            self.node = node
            if node.op == "placeholder":
                fqn = params.get(node.name)
                val = node.meta.get("val")
                env[node] = ParamView((fqn,), tuple(range(val.dim())), tuple(val.shape)) if fqn else None
            elif node.op == "call_function":
                env[node] = self._call(node, env)
            elif node.op == "output":
                self.op = "output"
                for t in _tensors({"out": _bind_value(node.args[0], env)}):
                    if t.tracked:
                        self.freeze(ids_of(t), "network output")
                    self.claim_as_fixed([t], "network output")
            else:
                env[node] = None
        if not self.values:
            self.values = {n.name: v for n, v in env.items()}

    def _call(self, node: Node, env):
        target = node.target
        self.op = op_name(target)
        if target is operator.getitem:
            seq, idx = env.get(node.args[0]), node.args[1]
            return seq[idx] if isinstance(seq, (list, tuple)) else None
        if not isinstance(target, torch._ops.OpOverload):
            self.op = str(target)
            return self.unknown(_bind_generic(node, env))
        a = _bind(node, env)
        val = node.meta.get("val")
        out_shape = [tuple(v.shape) for v in val] if isinstance(val, (list, tuple)) else (
            tuple(val.shape) if isinstance(val, torch.Tensor) else ())
        self._claimed = set()
        if self.op in IGNORED or self.op in CREATION:
            out = None
        elif self.op in MIXING:
            out = self.unknown(a, f"aten.{self.op} mixes channels")
        elif self.op in RULES:
            out = RULES[self.op](self, a, out_shape)
        else:
            out = self.unknown(a)
        for t in _tensors(a):  # a parameter this rule did not account for must keep its size
            for fqn in t.value.fqns if isinstance(t.value, ParamView) else ():
                if fqn not in self._claimed:
                    self.fixed_params.setdefault(fqn, f"used by {self.where}")
        return out


def _bind_value(v, env):
    if isinstance(v, Node):
        val = v.meta.get("val")
        if isinstance(val, torch.Tensor):
            return T(env.get(v), tuple(val.shape), v)
        return env.get(v) if isinstance(env.get(v), (list, tuple)) else val
    if isinstance(v, (list, tuple)):
        return [_bind_value(x, env) for x in v]
    return v


def _bind(node: Node, env) -> dict:
    """Arguments by schema name, defaults filled in, tensors as T."""
    out = {}
    for i, arg in enumerate(node.target._schema.arguments):
        if i < len(node.args) and not arg.kwarg_only:
            v = node.args[i]
        elif arg.name in node.kwargs:
            v = node.kwargs[arg.name]
        elif arg.has_default_value():
            v = arg.default_value
        else:
            v = None
        out[arg.name] = _bind_value(v, env)
    return out


def _bind_generic(node: Node, env) -> dict:
    a = {f"arg{i}": _bind_value(v, env) for i, v in enumerate(node.args)}
    a.update({k: _bind_value(v, env) for k, v in node.kwargs.items()})
    return a
