"""Stage: finetune. Recover a pruned model's accuracy with a chain of teachers (hierarchical
knowledge distillation), in train/loop.py's loop, on one process or under torchrun."""
from .chain import FinetuneConfig, FinetuneError, FinetuneResult, check_teachers, finetune
from .distill import Distillation, kd_loss

__all__ = ["Distillation", "FinetuneConfig", "FinetuneError", "FinetuneResult", "check_teachers", "finetune", "kd_loss"]
