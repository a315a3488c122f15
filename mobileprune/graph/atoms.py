"""Channel atoms: the smallest units the analysis can keep or remove.

Every output channel of a producer (conv, linear) is one atom, numbered from 0. Coupling rules
(residual adds, depthwise convs, concat feeding an add, ...) merge atoms with a union-find;
after propagation, every root stands for one channel *position* that must be kept or removed as
a whole. Hand-written because the merge has to carry freeze reasons along and be vectorised over
numpy id arrays; no union-find library does both.
"""
from __future__ import annotations

import numpy as np

UNTRACKED = -1  # a channel the analysis does not own (network input, constant): never removed


def unique(a: np.ndarray) -> np.ndarray:
    """Sorted unique values; sort-based because np.unique's hash path costs ~0.2 ms per call."""
    s = np.sort(np.asarray(a).ravel())
    if s.size == 0:
        return s
    return s[np.concatenate(([True], s[1:] != s[:-1]))]


class Atoms:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.frozen: dict[int, list[str]] = {}  # root -> reasons

    def alloc(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra  # the older atom stays root: keeps group order stable
        moved = self.frozen.pop(rb, None)
        if moved:
            self.frozen.setdefault(ra, []).extend(r for r in moved if r not in self.frozen.get(ra, []))

    def union_arrays(self, a: np.ndarray, b: np.ndarray) -> None:
        """Union a[i] with b[i] wherever both are tracked (arrays broadcast together)."""
        a, b = np.broadcast_arrays(a, b)
        both = (a >= 0) & (b >= 0) & (a != b)
        if not both.any():
            return
        keys = unique(a[both] * (1 << 32) + b[both])  # unique (a, b) pairs, cheaply
        for x, y in zip((keys >> 32).tolist(), (keys & ((1 << 32) - 1)).tolist()):
            self.union(x, y)

    def roots(self, ids: np.ndarray) -> np.ndarray:
        """Map every tracked id to its root; UNTRACKED stays UNTRACKED."""
        ids = np.asarray(ids)
        out = np.full(ids.shape, UNTRACKED, dtype=np.int64)
        mask = ids >= 0
        if mask.any():
            tracked = ids[mask]
            uniq = unique(tracked)
            found = np.array([self.find(u) for u in uniq.tolist()], dtype=np.int64)
            out[mask] = found[np.searchsorted(uniq, tracked)]
        return out

    def freeze(self, ids: np.ndarray, reason: str) -> None:
        for r in unique(self.roots(ids)).tolist():
            if r >= 0:
                reasons = self.frozen.setdefault(r, [])
                if reason not in reasons:
                    reasons.append(reason)

    def reasons(self, root: int) -> list[str]:
        return self.frozen.get(self.find(root), [])
