"""Pruning to a budget: methods that score blocks of channels, one selection, one loop."""
from .api import PruneError, PruneResult, prune
from .budget import Budget, BudgetError
from ..train.loop import CheckpointError, TrainConfig
from .measured_rounds import MeasuredRounds
from .methods import METHODS

__all__ = [
           "METHODS",
           "Budget",
           "BudgetError",
           "CheckpointError",
           "MeasuredRounds",
           "PruneError",
           "PruneResult",
           "TrainConfig",
           "prune",
]
