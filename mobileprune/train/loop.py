"""The one training loop: pruning methods train inside it, and so do fine-tuning and the Fashion trainer.

Small on purpose: deterministic batches (a seeded permutation per epoch, so step s always sees
the same batch and a resumed run continues exactly where it stopped), an optimizer over the
model's and the method's parameters, CPU or CUDA, BatchNorm statistics frozen on request, a
rich progress line, and a checkpoint of everything that decides the result (weights, optimizer,
the method's state, RNG states, the step) every N steps, written atomically.

Under torchrun (torch.distributed initialised) the same loop runs data-parallel: the model is
wrapped in DistributedDataParallel, ``config.batch_size`` is the global batch, each rank takes its
share of every batch (``StepSampler``: the union of the ranks' batches at a step is exactly the
one-process batch), and only rank 0 shows progress and writes checkpoints. So N processes with
a global batch B follow the one-process run with batch B (equal up to the order of float sums,
and BatchNorm statistics, which DDP keeps per rank unless ``freeze_bn``).
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from torch import nn
from torch.utils.data import DataLoader, Sampler

from ..errors import MobilepruneError
from ..layout import channels_last
from ..progress import Steps


class CheckpointError(MobilepruneError, ValueError):
    """A checkpoint that belongs to another run."""


class LoopError(MobilepruneError, ValueError):
    """Settings the loop cannot run with."""


@dataclass
class TrainConfig:
    """How the loop trains. The defaults are mobileprune.prune's (a pruning method trains 100
    steps at 1e-4 unless told otherwise); fine-tuning and the Fashion trainer set their own."""
    steps: int = 100
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0
    checkpoint_every: int = 25
    freeze_bn: bool = False
    device: str = "auto"  # auto: CUDA when present
    schedule: str = "constant"  # the model's learning rate over the steps: constant | cosine | exponential
    decay: float = 0.97  # exponential: lr * decay ** (step / steps_per_epoch)
    epoch_steps: int | None = None  # steps per epoch of the schedule (default: the data's whole epoch)


def learning_rate(config: TrainConfig, step: int, per_epoch: int) -> float:
    if config.schedule == "cosine":
        return 0.5 * config.lr * (1 + math.cos(math.pi * step / max(1, config.steps)))
    if config.schedule == "exponential":
        return config.lr * config.decay ** (step / max(1, config.epoch_steps or per_epoch))
    return config.lr


class Method(Protocol):
    """What a method plugs into the loop (see prune/methods). Optional besides: ``lr_scale(step)
    -> float``, a factor on the learning rate of the method's own parameters at each step (the
    gates decay theirs over the second half of the run)."""

    def parameters(self) -> list: ...  # its own trainable parameters (gates' predictors), with their lr
    def extra_loss(self, step: int, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor | None: ...
    def after_backward(self, step: int) -> None: ...
    def after_step(self, step: int) -> None: ...
    def finished(self) -> bool: ...
    def status(self) -> dict: ...  # for the progress line: cost, budget, kept share
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class StepSampler(Sampler):
    """Indices of the batches from ``start_step`` on: epoch e is a permutation seeded by
    (seed, e); rank r of w takes every w-th index of it."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_epoch = max(1, n // (batch_size * world))  # whole batches only
        self.start_step = start_step

    def __iter__(self):
        step = self.start_step
        while True:
            epoch, first = divmod(step, self.per_epoch)
            g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            order = torch.randperm(self.n, generator=g)[self.rank::self.world]
            for b in range(first, self.per_epoch):
                yield from order[b * self.batch_size:(b + 1) * self.batch_size].tolist()
            step = (epoch + 1) * self.per_epoch

    def __len__(self) -> int:  # endless: the loop stops at its step count
        return 2 ** 62


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():  # under torchrun, each process its own GPU
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(name)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) under torchrun once the process group is up, else (0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers use and keep their running statistics (their affine weights still train)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@dataclass(frozen=True)
class Checkpoint:
    """Where a run writes its checkpoint (every ``checkpoint_every`` steps) and resumes from,
    what must match for a checkpoint there to be this run's (``key``; refused otherwise), and a
    step to pause at (``stop_at``: a checkpoint is written there and the next call with the same
    config continues: how fine-tuning scores the held-out split every epoch)."""
    path: Path
    key: dict | None = None
    stop_at: int | None = None


def train(model: nn.Module, dataset, loss_fn: Callable, config: TrainConfig, *, method: Method | None = None,
          checkpoint: Checkpoint | None = None, show: bool = True,
          describe: Callable[[dict], str] | None = None) -> dict:
    """Train ``model`` (in place) for ``config.steps`` steps or until ``method.finished()``,
    checkpointing as ``checkpoint`` says (none: nothing written, nothing resumed).
    Returns {"steps": steps run in all, "resumed_from": step or None, "seconds", "loss"}.
    """
    device = pick_device(config.device)
    model.to(device)
    at = checkpoint or Checkpoint(None)
    with channels_last(model):
        return _train(model, dataset, loss_fn, config, device, method, at.path, at.key, show, describe, at.stop_at)


def _train(model, dataset, loss_fn, config, device, method, checkpoint, run_key, show, describe, stop_at) -> dict:
    """train()'s work, with ``model`` in channels-last layout on CPU (layout.py: 1.3-1.6x faster steps)."""
    rank, world = rank_and_world()
    if world > 1 and config.batch_size % world:
        raise LoopError(f"the global batch ({config.batch_size}) must divide by the {world} processes")
    if world > 1 and method is not None and any(g["params"] for g in method.parameters()):
        raise LoopError("pruning methods with parameters of their own (gates) run in one process; "
                        "fine-tuning runs under torchrun")
    if not any(p.requires_grad for p in model.parameters()):
        raise LoopError("the model has no trainable parameters (requires_grad is False on all of them): "
                        "nothing would train; unfreeze it first (for p in model.parameters(): p.requires_grad_())")
    key = {"config": asdict(config), **(run_key or {})}
    params = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": config.lr,
               "weight_decay": config.weight_decay}]
    if method is not None:
        params += [g for g in method.parameters() if g["params"]]
    optimizer = torch.optim.Adam(params)
    start, resumed = 0, None
    torch.manual_seed(config.seed)
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state["key"] != key:
            raise CheckpointError(f"{checkpoint} is the checkpoint of another run (different model, data, budget "
                                  f"or settings): delete it to start over, or choose another output directory")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if method is not None:
            method.load_state_dict(state["method"])
        torch.set_rng_state(state["rng"])
        start = resumed = int(state["step"])

    local_batch = config.batch_size // world
    loader = DataLoader(dataset, batch_size=local_batch,
                        sampler=StepSampler(len(dataset), local_batch, config.seed, start, rank, world))
    forward = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    batches = iter(loader)
    t0, last_loss, step = time.perf_counter(), float("nan"), start
    progress = Steps(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     TextColumn("{task.fields[status]}"), show=show and rank == 0, transient=False)
    with progress:
        task = progress.add_task("training", total=config.steps, completed=start, status="")
        end = min(config.steps, stop_at) if stop_at is not None else config.steps
        while step < end and not (method is not None and method.finished()):
            model.train()
            if config.freeze_bn:
                freeze_batchnorm(model)
            optimizer.param_groups[0]["lr"] = learning_rate(config, step, loader.sampler.per_epoch)
            scale = getattr(method, "lr_scale", None)
            for group in optimizer.param_groups[1:] if scale is not None else ():  # the method's own parameters
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * scale(step)
            x, y = next(batches)
            x, y = x.to(device), y.to(device)
            out = forward(x)
            loss = loss_fn(out, y)
            extra = method.extra_loss(step, x, out) if method is not None else None
            total = loss if extra is None else loss + extra
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if method is not None:
                method.after_backward(step)
            optimizer.step()
            if method is not None:
                method.after_step(step)
            step += 1
            last_loss = float(loss.detach())
            status = {"loss": last_loss, **(method.status() if method is not None else {})}
            progress.update(task, completed=step, status=describe(status) if describe else f"loss {last_loss:.3f}")
            if checkpoint is not None and (step % config.checkpoint_every == 0 or step in (config.steps, end)):
                if rank == 0:
                    save_checkpoint(checkpoint, {"key": key, "step": step, "model": model.state_dict(),
                                                 "optimizer": optimizer.state_dict(),
                                                 "method": method.state_dict() if method is not None else {},
                                                 "rng": torch.get_rng_state()})
                if world > 1:  # the other ranks may read it next (the following epoch's call)
                    torch.distributed.barrier()
    model.eval()
    return {"steps": step, "resumed_from": resumed, "seconds": time.perf_counter() - t0, "loss": last_loss}


def save_checkpoint(path: Path, state: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint whole
