"""`mobileprune analyze`: find the channel groups of a model."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

import json


def add(sub) -> None:
    p = sub.add_parser("analyze", help="find the channel groups of a model")
    p.add_argument("model", help="torchvision:NAME or path/to/file.py:factory")
    p.add_argument("--input-shape", help="e.g. 1,3,224,224 (default: the model's usual size)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..slim import analyze
    from ..spec import build, default_input_shape, parse_shape

    shape = parse_shape(args.input_shape) if args.input_shape else default_input_shape(args.model)
    model = build(args.model).eval()
    analysis = analyze(model, (torch.randn(shape),))
    if args.json:
        print(json.dumps({"model": args.model, "input_shape": list(shape), **analysis.to_dict()}))
        return 0
    print_groups(analysis, title=f"{args.model} {tuple(shape)}")
    return 0


def print_groups(analysis, title: str = "", console: Console | None = None) -> None:
    console = console or Console(width=max(120, Console().width))
    table = Table(title=title or None, show_lines=False)
    for col, just in (("group", "right"), ("size", "right"), ("unit", "right"),
                      ("producers", "left"), ("consumers", "left"), ("frozen because", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for g in analysis.groups:
        table.add_row(str(g.id), str(g.size), str(g.unit), _members(g.producers),
                      _members(g.consumers), "; ".join(g.reasons[:2]) if g.frozen else "")
    console.print(table)
    free = analysis.free_groups
    console.print(f"{len(analysis.groups)} groups, {len(free)} prunable "
                  f"({sum(g.channels for g in free)} channels); torch.export "
                  f"{analysis.export_seconds:.2f} s, analysis {analysis.analysis_seconds:.3f} s")
    if analysis.unknown_ops:
        console.print(f"unknown ops (froze their channels): {', '.join(analysis.unknown_ops)}")


def _members(names: list, limit: int = 3) -> str:
    """Layers by their weights ("layer1.0.conv1[0]"); biases only if nothing else is there."""
    names = [n.replace(".weight", "") for n in names if ".weight[" in n] or names
    shown = ", ".join(names[:limit])
    return shown + (f" +{len(names) - limit}" if len(names) > limit else "")
