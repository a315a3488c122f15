"""Stage: apply a PrunePlan, either as a mask (the reference) or physically (slim)."""
from .masking import masked
from .pins import analyze
from .slimming import SlimError, slim

__all__ = ["SlimError", "analyze", "masked", "slim"]
