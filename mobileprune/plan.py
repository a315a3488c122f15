"""PrunePlan: which channel positions each group keeps. JSON in, JSON out.

Block rule (docs/analysis.md): a pruned group keeps a whole number of blocks of ``block``
channels; a group may always be kept whole, even when its size is not a multiple of the block
(the remainder is kept, never rounded away), and a group no larger than one block is never
pruned.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import numpy as np

from .errors import MobilepruneError
from .graph import Analysis


class PlanError(MobilepruneError, ValueError):
    """A plan that does not fit the analysis it is applied to."""


@dataclass
class PrunePlan:
    keep: dict[int, list[int]]  # group id -> kept positions (groups not listed keep everything)
    block: int = 1
    fingerprint: str = ""
    meta: dict = field(default_factory=dict)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def full(cls, analysis: Analysis, block: int = 1) -> "PrunePlan":
        return cls({}, block, analysis.fingerprint())

    @classmethod
    def random(cls, analysis: Analysis, ratio: float, block: int = 1, seed: int = 0) -> "PrunePlan":
        """Remove about ``ratio`` of every prunable group, in whole blocks, at random."""
        if not 0 <= ratio < 1:
            raise PlanError(f"ratio must be in [0, 1), got {ratio}")
        rng = random.Random(seed)
        keep = {}
        for g in analysis.groups:
            if not g.prunable(block):
                continue
            step = g.block_positions(block)
            n = max(step, int(round(g.size * (1 - ratio) / step)) * step)
            if n < g.size:
                keep[g.id] = sorted(rng.sample(range(g.size), n))
        return cls(keep, block, analysis.fingerprint(), {"ratio": ratio, "seed": seed})

    # ---- checks -------------------------------------------------------------------------------
    def validate(self, analysis: Analysis) -> None:
        if self.fingerprint and self.fingerprint != analysis.fingerprint():
            raise PlanError(
                f"plan was made for a model with channel-group fingerprint {self.fingerprint}, "
                f"this model has {analysis.fingerprint()}: same architecture and input shape?")
        groups = {g.id: g for g in analysis.groups}
        for gid, kept in self.keep.items():
            g = groups.get(gid)
            if g is None:
                raise PlanError(f"plan names group {gid}, the analysis has groups 0..{len(groups) - 1}")
            if g.frozen:
                raise PlanError(f"group {gid} ({g.name()}) is frozen and cannot be pruned: "
                                f"{'; '.join(g.reasons[:2])}")
            if len(set(kept)) != len(kept) or any(not 0 <= i < g.size for i in kept):
                raise PlanError(f"group {gid} ({g.name()}): kept positions must be distinct "
                                f"and within 0..{g.size - 1}")
            if not kept:
                raise PlanError(f"group {gid} ({g.name()}): a plan cannot remove every channel")
            step = g.block_positions(self.block)
            if len(kept) != g.size and len(kept) % step:
                raise PlanError(
                    f"group {gid} ({g.name()}) keeps {len(kept)} positions x {g.unit} channels; "
                    f"with block {self.block} it must keep a multiple of {step} positions "
                    f"or all {g.size}")

    def removed(self, analysis: Analysis):
        """A function ids -> bool array: True where the channel's position is pruned."""
        roots = self.pruned_roots(analysis)
        top = max((int(c.ids.max()) for c in analysis.cuts if c.ids.size), default=-1)
        lookup = np.zeros(top + 2, dtype=bool)  # slot 0 is UNTRACKED (-1): never removed
        lookup[np.array(sorted(roots), dtype=np.int64) + 1] = True
        return lambda ids: lookup[np.asarray(ids) + 1]

    def pruned_roots(self, analysis: Analysis) -> set[int]:
        self.validate(analysis)
        out = set()
        for g in analysis.groups:
            if g.id in self.keep:
                kept = set(self.keep[g.id])
                out.update(r for i, r in enumerate(g.roots) if i not in kept)
        return out

    # ---- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"keep": {str(k): v for k, v in sorted(self.keep.items())}, "block": self.block,
                "fingerprint": self.fingerprint, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "PrunePlan":
        try:
            return cls({int(k): [int(i) for i in v] for k, v in d["keep"].items()},
                       int(d.get("block", 1)), str(d.get("fingerprint", "")), dict(d.get("meta", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"not a PrunePlan: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "PrunePlan":
        return cls.from_dict(json.loads(text))
