"""`mobileprune finetune`: fine-tune a saved pruned model with a chain of teachers (finetune.saved.finetune_saved)."""
from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table


def add(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a pruned model with a chain of teachers (knowledge distillation)")
    p.add_argument("pruned", help="a saved pruned model dir (from mobileprune prune)")
    p.add_argument("--teacher", action="append", default=[], help="a teacher model spec (torchvision:NAME, "
                   "pretrained:NAME, file.py:factory, fashion:NAME or a saved dir); repeat it for a chain, smallest "
                   "first; none: plain fine-tuning")
    p.add_argument("--data", required=True, help="fashion-mnist, mnist or path/to/file.py:factory")
    p.add_argument("--data-dir", help="a directory with the four Fashion-MNIST idx files")
    p.add_argument("--epochs-per-teacher", type=int, default=1)
    p.add_argument("--kd-weight", type=float, default=5.0, help="loss = cross-entropy + W x distillation (5 as ACPLI)")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch (split across torchrun's processes)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--decay", type=float, default=0.9, help="the learning rate's decay per epoch (Adam, exponential)")
    p.add_argument("--patience", type=int, default=2, help="epochs without a better held-out top-1 before a "
                   "stage stops early")
    p.add_argument("--steps-per-epoch", type=int, help="shorter epochs (default: the whole training split)")
    p.add_argument("--eval-images", type=int, help="score this many held-out images each epoch (default: all)")
    p.add_argument("--freeze-bn", action="store_true", help="keep BatchNorm statistics as they are")
    p.add_argument("--bn-batches", type=int, default=16, help="training batches BatchNorm's statistics are "
                   "re-estimated on after every epoch (0: as training leaves them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="directory for the fine-tuned model (predict, export and load "
                   "take it); a killed run started again with the same arguments resumes")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..finetune import FinetuneConfig
    from ..finetune.saved import finetune_saved

    config = FinetuneConfig(epochs_per_teacher=args.epochs_per_teacher, kd_weight=args.kd_weight,
                            temperature=args.temperature, batch_size=args.batch_size, lr=args.lr, decay=args.decay,
                            patience=args.patience, steps_per_epoch=args.steps_per_epoch,
                            eval_images=args.eval_images, seed=args.seed, freeze_bn=args.freeze_bn,
                            bn_batches=args.bn_batches)
    done = finetune_saved(args.pruned, args.teacher, args.data, args.out, config=config, data_dir=args.data_dir,
                          show=not args.json)
    if done.rank != 0:
        return 0
    result, report = done.result, done.report
    if args.json:
        print(json.dumps(report))
        return 0
    table = Table(title=f"fine-tuning {args.pruned} -> {args.out}")
    for col in ("stage", "teacher", "epoch", "loss", "held-out top-1 %"):
        table.add_column(col)
    for row in result.history:
        table.add_row(str(row["stage"] + 1), row["teacher"], str(row["epoch"]), f"{row['loss']:.4f}",
                      f"{100 * row['val_top1']:.2f}")
    Console().print(table)
    top = report["top1"]
    print(f"held-out top-1 {100 * top['before']:.2f}% before fine-tuning -> {100 * top['after']:.2f}% after "
          f"({top['images']} images, {top['split']})")
    return 0
