"""Pruning to a budget: methods that score blocks of channels, one selection, one loop."""
from ..train.loop import CheckpointError, TrainConfig
from .api import Method, Output, PruneError, PruneResult, Target, prune
from .budget import Budget, BudgetError
from .measured_rounds import MeasuredRounds
from .methods import METHODS

__all__ = ["METHODS", "Budget", "BudgetError", "CheckpointError", "MeasuredRounds", "Method", "Output", "PruneError",
           "PruneResult", "Target", "TrainConfig", "prune"]
