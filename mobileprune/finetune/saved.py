"""Fine-tune a saved pruned model into a new saved model: what ``mobileprune finetune`` runs.

Under torchrun (LOCAL_RANK set) the process group is set up here and taken down at the end;
every rank trains its share of each batch (train/loop.py), rank 0 alone writes the result.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import fashion
from ..data import load_data, top1
from ..spec import build
from ..storage import StorageError, is_saved, load, load_saved, save
from .chain import FinetuneConfig, FinetuneError, FinetuneResult, finetune


@dataclass
class SavedFinetune:
    result: FinetuneResult
    report: dict  # the chain's report, the pruned model's spec and top-1 before and after
    rank: int  # this process's rank under torchrun (0 alone): only rank 0 wrote anything


def finetune_saved(pruned, teachers: list[str], data_source: str, out, *, config: FinetuneConfig | None = None,
                   data_dir=None, show: bool = True) -> SavedFinetune:
    """Fine-tune the pruned model saved in ``pruned`` along ``teachers`` (model specs or saved
    dirs, smallest first) on ``data_source`` (data.load_data's: fashion-mnist, mnist or
    path/to/file.py:factory; ``data_dir`` for the idx files) and save it in ``out`` with finetune.json
    (its report); the run's checkpoints there go once it is done. Refused before any work: a
    ``pruned`` that is not a saved model, an ``out`` that already holds one, a teacher without
    trained weights."""
    config = config or FinetuneConfig()
    if not is_saved(pruned):
        raise StorageError(f"{pruned} is not a saved pruned model (make one with `mobileprune prune`)")
    if is_saved(out):
        raise StorageError(f"{out} already holds a saved model: choose another --out")
    for spec in teachers:  # an untrained teacher teaches noise: refuse the ones we can tell
        if fashion.untrained(spec):
            raise FinetuneError(f"teacher {spec} has no trained weights here: train it first with "
                                f"`{fashion.untrained(spec)}`")
    distributed = "LOCAL_RANK" in os.environ  # under torchrun
    if distributed and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        rank = torch.distributed.get_rank() if distributed else 0
        saved = load_saved(pruned)
        splits = load_data(data_source, saved.meta["input_shapes"][0], data_dir)
        models = [load(spec)[0] if is_saved(spec) else build(spec).eval() for spec in teachers]
        before = top1(saved.model, splits.val, config.eval_images)
        result = finetune(saved.model, splits, models, teachers, config=config, out=out, show=show)
        images = min(config.eval_images or len(splits.val), len(splits.val))
        report = {**result.report, "pruned": str(pruned), "spec": saved.meta["spec"],
                  "top1": {"before": before, "after": top1(result.model, splits.val, config.eval_images),
                           "split": f"{splits.name} held-out", "images": images}}
        if rank == 0:
            save(out, saved.meta["spec"], saved.plan, result.model, [tuple(s) for s in saved.meta["input_shapes"]])
            (Path(out) / "finetune.json").write_text(json.dumps(report, indent=2))
            for f in Path(out).glob("*.pt"):  # the run is done: its checkpoints go
                f.unlink()
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
    return SavedFinetune(result, report, rank)
