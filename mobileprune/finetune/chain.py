"""Fine-tuning with a chain of teachers (ACPLI's hierarchical knowledge distillation).

One stage per teacher, in order (e.g. the unpruned original, then a larger sibling), each for
``epochs_per_teacher`` epochs of loss = cross-entropy + ``kd_weight`` x KD(teacher); no teachers
is plain fine-tuning (one stage of cross-entropy). Adam with an exponentially decaying learning
rate; after every epoch the BatchNorm running statistics are re-estimated on ``bn_batches``
training batches (batchnorm.py: a short fine-tuning leaves them stale), then the held-out split
is scored and a stage stops early when it has not improved for ``patience`` epochs, keeping its
best weights for the next stage.

Everything runs in train/loop.py's loop (one loop in the codebase), so the same call runs under
torchrun with DistributedDataParallel. A checkpoint is written after every epoch and every stage
(rank 0 only): a run started again with the same arguments resumes from where it stopped, and
ends with the same weights as an uninterrupted run.
"""
from __future__ import annotations

import copy
import json
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSplits, top1
from ..errors import MobilepruneError
from ..layout import channels_last
from ..train.loop import Checkpoint, TrainConfig, rank_and_world, save_checkpoint, train
from .batchnorm import reestimate_batchnorm
from .distill import Distillation

STATE = "finetune-state.pt"


class FinetuneError(MobilepruneError, ValueError):
    """Teachers that do not fit the student, or settings that cannot run."""


@dataclass
class FinetuneResult:
    model: nn.Module
    history: list = field(default_factory=list)  # one row per epoch: stage, teacher, epoch, loss, val_top1, ...
    report: dict = field(default_factory=dict)


def check_teachers(student: nn.Module, teachers: list, names: list, example: torch.Tensor) -> None:
    """Every teacher takes the student's input and gives outputs of the student's shape."""
    with torch.no_grad():
        want = tuple(student.eval()(example).shape)
        for teacher, name in zip(teachers, names):
            try:
                got = tuple(teacher.eval()(example).shape)
            except Exception as exc:  # noqa: BLE001 - any failure here is a misfit teacher
                raise FinetuneError(f"teacher {name} does not take the student's input {tuple(example.shape)}: "
                                    f"{type(exc).__name__}: {exc}") from None
            if got != want:
                raise FinetuneError(f"teacher {name} gives outputs of shape {got}, the student {want}: a teacher "
                                    f"must predict the same classes from the same input")


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """How ``finetune`` trains. Per teacher (a stage) up to ``epochs_per_teacher`` epochs of
    ``steps_per_epoch`` steps (default: the whole training split), Adam at ``lr`` decaying by
    ``decay`` per epoch, loss = cross-entropy + ``kd_weight`` x the distillation loss at
    ``temperature``; a stage stops early after ``patience`` epochs without a better held-out top-1
    (on ``eval_images`` images, default all) and hands its best epoch to the next. ``bn_batches``:
    training batches the BatchNorm statistics are re-estimated on after every epoch (0: kept as
    training left them; never with ``freeze_bn``, which trains with them)."""
    epochs_per_teacher: int = 1
    kd_weight: float = 5.0
    temperature: float = 4.0
    batch_size: int = 64
    lr: float = 1e-3
    decay: float = 0.9
    patience: int = 2
    steps_per_epoch: int | None = None
    eval_images: int | None = None
    seed: int = 0
    freeze_bn: bool = False
    bn_batches: int = 16
    device: str = "auto"  # auto: CUDA when present

    def __post_init__(self) -> None:
        if self.epochs_per_teacher < 1 or self.batch_size < 1 or self.patience < 1:
            raise FinetuneError("epochs_per_teacher, batch_size and patience must be at least 1")


def finetune(student: nn.Module, data: DataSplits, teachers: list = (), teacher_names: list | None = None, *,
             config: FinetuneConfig | None = None, out=None, show: bool = True, log=print) -> FinetuneResult:
    """Fine-tune ``student`` in place along ``teachers`` (nn.Modules, smallest first; [] = no
    teacher), as ``config`` says (default FinetuneConfig()). ``out``: where checkpoints go
    (resumed from when present). Returns the model, the per-epoch history and a report."""
    c = config or FinetuneConfig()
    teachers = list(teachers)
    names = list(teacher_names or [type(t).__name__ for t in teachers])
    example = data.train[0][0].unsqueeze(0)
    check_teachers(student, teachers, names, example)
    rank, world = rank_and_world()
    per_epoch = c.steps_per_epoch or len(data.train) // c.batch_size
    stages = list(zip(teachers, names)) or [(None, "no teacher")]
    key = {"stages": [name for _, name in stages], "epochs": c.epochs_per_teacher, "kd_weight": c.kd_weight,
           "temperature": c.temperature, "batch_size": c.batch_size, "lr": c.lr, "decay": c.decay,
           "patience": c.patience, "per_epoch": per_epoch, "seed": c.seed, "freeze_bn": c.freeze_bn,
           "eval_images": c.eval_images, "train_size": len(data.train), "bn_batches": c.bn_batches}
    out = Path(out) if out is not None else None
    # The loop is driven an epoch at a time and continues from its checkpoint: without ``out``
    # the checkpoints go to a temporary directory.
    scratch = tempfile.TemporaryDirectory(prefix="mobileprune-finetune-") if out is None else None
    work = out if out is not None else Path(scratch.name)
    work.mkdir(parents=True, exist_ok=True)
    state = _resume(out, key, student)
    start = time.perf_counter()
    for s, (teacher, name) in enumerate(stages):
        if s < state["stage"]:
            continue
        method = Distillation(teacher, c.kd_weight, c.temperature) if teacher is not None else None
        stage_config = TrainConfig(steps=per_epoch * c.epochs_per_teacher, batch_size=c.batch_size, lr=c.lr,
                                   seed=c.seed + s, checkpoint_every=per_epoch, freeze_bn=c.freeze_bn, device=c.device,
                                   schedule="exponential", decay=c.decay, epoch_steps=per_epoch)
        stage_file = work / f"stage{s}.pt"
        while state["epoch"] < c.epochs_per_teacher and state["since_best"] < c.patience:
            epoch = state["epoch"]
            # The teacher's forwards in channels-last layout too (layout.py: faster on CPU).
            with channels_last(teacher) if teacher is not None else nullcontext():
                ran = train(student, data.train, F.cross_entropy, stage_config, method=method,
                            checkpoint=Checkpoint(stage_file, {"finetune": key}, stop_at=(epoch + 1) * per_epoch),
                            show=show,
                            describe=lambda st, n=name: f"{n}: loss {st['loss']:.3f}" +
                            (f" kd {st['kd']:.3f}" if "kd" in st else ""))
            if not c.freeze_bn:
                reestimate_batchnorm(student, data.train, c.bn_batches, c.batch_size, c.seed + 1000 * s + epoch)
            score = top1(student, data.val, c.eval_images)
            row = {"stage": s, "teacher": name, "epoch": epoch + 1, "loss": ran["loss"], "val_top1": score,
                   "seconds": round(ran["seconds"], 1)}
            state["history"].append(row)
            if show and rank == 0:
                log(f"  stage {s + 1}/{len(stages)} ({name}) epoch {epoch + 1}: loss {ran['loss']:.4f}, "
                    f"held-out top-1 {100 * score:.2f}%")
            if score > state["best_top1"]:
                state.update(best_top1=score, best=copy.deepcopy(student.state_dict()), since_best=0)
            else:
                state["since_best"] += 1
            state["epoch"] = epoch + 1
            _save(out, key, state, student, rank)
        if state["best"] is not None:  # the next stage starts from this one's best epoch
            student.load_state_dict(state["best"])
        state.update(stage=s + 1, epoch=0, since_best=0, best_top1=-1.0, best=None)
        _save(out, key, state, student, rank)
    student.eval()
    report = {"stages": [name for _, name in stages], "epochs_per_teacher": c.epochs_per_teacher,
              "steps_per_epoch": per_epoch, "kd_weight": c.kd_weight, "temperature": c.temperature,
              "batch_size": c.batch_size, "lr": c.lr, "decay": c.decay, "patience": c.patience, "seed": c.seed,
              "bn_batches": 0 if c.freeze_bn else c.bn_batches, "processes": world, "history": state["history"],
              "seconds": round(time.perf_counter() - start, 1)}
    if out is not None and rank == 0:
        (out / "finetune.json").write_text(json.dumps(report, indent=2))
    if scratch is not None:
        scratch.cleanup()
    return FinetuneResult(student, state["history"], report)


def _resume(out: Path | None, key: dict, student: nn.Module) -> dict:
    fresh = {"stage": 0, "epoch": 0, "since_best": 0, "best_top1": -1.0, "best": None, "history": []}
    if out is None or not (out / STATE).is_file():
        return fresh
    saved = torch.load(out / STATE, map_location="cpu", weights_only=True)
    if saved["key"] != key:
        raise FinetuneError(f"{out} holds the checkpoint of another fine-tuning run (other teachers, data or "
                            f"settings): delete it to start over, or choose another output directory")
    student.load_state_dict(saved["model"])
    return {k: saved[k] for k in fresh}


def _save(out: Path | None, key: dict, state: dict, student: nn.Module, rank: int) -> None:
    """The chain's position, its history and the weights, after every epoch and stage (the
    loop's own checkpoint, per stage, holds the optimizer for the epoch in progress)."""
    if out is None or rank != 0:
        return
    save_checkpoint(out / STATE, {"key": key, "model": student.state_dict(), **state})
