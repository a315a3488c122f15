"""Lowering without re-walking the operator registry: torch.export's list of decomposable ops,
computed once per state of the registry instead of on every decomposition.

Why by hand: every ``ExportedProgram.run_decompositions`` (four per ExecuTorch lowering: ours in
rewrites.py, three inside ``to_edge_transform_and_lower``; litert-torch's conversion runs its own)
asks torch for every CompositeImplicitAutograd op in every namespace, walking the C++ dispatcher's
registrations once per namespace (about 40 walks of about 2,000 entries, 0.2 s per call). torch
caches the aten namespace's share itself (``_collect_all_valid_cia_ops_for_aten_namespace``) but
not the whole: ops registered later, through Python, add entries to the dispatcher. Profiling
lowers hundreds of micro-programs and every one paid it: on a 2-core AMD EPYC VM ten tiny
micro-programs lowered in 19.6 s without this and 13.9 s with it (the tiny net 4.6 s -> 3.1 s).

Kept exact: the result is recomputed whenever the dispatcher's CompositeImplicitAutograd
registrations change (the key is that list), and it is a fresh copy each time, as torch's is.
If torch renames what this replaces, nothing is installed and lowering is as slow as before.
"""
from __future__ import annotations

import threading

import torch

_LOCK = threading.Lock()
_MEMO: dict = {}
_INSTALLED = False
# The modules that call torch._export.utils._collect_all_valid_cia_ops by a name of their own.
_CALLERS = ("torch.export.exported_program", "torch.export.decomp_utils")


def _registrations() -> frozenset:
    return frozenset(torch._C._dispatch_get_registrations_for_dispatch_key("CompositeImplicitAutograd"))


def _cached(original):
    def collect_all_valid_cia_ops() -> set:
        key = _registrations()
        with _LOCK:
            if key not in _MEMO:
                _MEMO.clear()  # one state of the registry at a time: an old one never comes back
                _MEMO[key] = frozenset(original())
            return set(_MEMO[key])

    collect_all_valid_cia_ops.original = original
    return collect_all_valid_cia_ops


def install() -> bool:
    """Make torch.export's decompositions use the cached op list (idempotent). Returns whether
    it is in place."""
    global _INSTALLED
    import importlib

    with _LOCK:
        if _INSTALLED:
            return True
        try:
            utils = importlib.import_module("torch._export.utils")
            callers = [importlib.import_module(name) for name in _CALLERS]
            original = utils._collect_all_valid_cia_ops
        except (ImportError, AttributeError):
            return False
        if not all(getattr(m, "_collect_all_valid_cia_ops", None) is original for m in callers):
            return False  # a torch whose callers look it up differently: leave it alone
        cached = _cached(original)
        for module in (utils, *callers):
            module._collect_all_valid_cia_ops = cached
        _INSTALLED = True
        return True
