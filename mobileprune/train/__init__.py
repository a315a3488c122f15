"""Training: the one loop that pruning methods, fine-tuning and the Fashion trainer share."""
from .loop import CheckpointError, LoopError, TrainConfig, train

__all__ = ["CheckpointError", "LoopError", "TrainConfig", "train"]
