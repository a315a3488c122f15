"""Knowledge distillation as a method of the training loop (train/loop.py): the teacher's
softened outputs on the same batch, a KL term added to the student's cross-entropy.

ACPLI fine-tunes a pruned network with loss = CE + 5 x KD, one teacher at a time along a chain
of growing teachers. The KD term is Hinton's: KL(softmax(t / T) || softmax(s / T)) x T^2 (the
T^2 keeps its gradients on the scale of the cross-entropy's as T changes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * t * t


class Distillation:
    """A loop method: ``weight`` x kd_loss against ``teacher`` (eval mode, frozen, no_grad)."""

    def __init__(self, teacher: nn.Module, weight: float = 5.0, temperature: float = 4.0) -> None:
        # Frozen by running it under no_grad and keeping it out of the optimiser; its parameters'
        # requires_grad is left as the caller has it (the teacher is often the original model,
        # which the caller may prune or train next).
        self.teacher = teacher.eval()
        self.weight, self.temperature = weight, temperature
        self._last = float("nan")

    def parameters(self) -> list:
        return []

    def extra_loss(self, step: int, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        self.teacher.to(inputs.device)
        with torch.no_grad():
            target = self.teacher(inputs)
        loss = self.weight * kd_loss(outputs, target, self.temperature)
        self._last = float(loss.detach())
        return loss

    def after_backward(self, step: int) -> None:
        pass

    def after_step(self, step: int) -> None:
        pass

    def finished(self) -> bool:
        return False

    def status(self) -> dict:
        return {"kd": self._last}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
