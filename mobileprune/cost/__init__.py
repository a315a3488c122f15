"""Stage: cost models. Map a width configuration to a differentiable torch scalar."""
from .base import CostModel, fractions_from_plan, fractions_from_probs
from .flops import FlopsCost
from .latency import LatencyCost, MissingConfigs
from .memory import MemoryCost

__all__ = ["CostModel", "FlopsCost", "LatencyCost", "MemoryCost", "MissingConfigs",
           "fractions_from_plan", "fractions_from_probs"]
