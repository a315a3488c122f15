"""The ``mobileprune`` command line.

Errors a user can cause (bad spec, model torch.export cannot capture, bad plan) print one
paragraph and exit 2; tracebacks are for bugs only.
"""
from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table




def _user_errors():
    from .graph import CaptureError
    from .plan import PlanError
    from .slim import SlimError
    from .spec import SpecError
    from .storage import StorageError

    return (CaptureError, PlanError, SlimError, SpecError, StorageError)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mobileprune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("analyze", help="find the channel groups of a model")
    p.add_argument("model", help="torchvision:NAME or path/to/file.py:factory")
    p.add_argument("--input-shape", help="e.g. 1,3,224,224 (default: the model's usual size)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_analyze)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as exc:
        print(f"mobileprune {args.command}: {exc}", file=sys.stderr)
        print(f"usage: {parser.prog} {args.command} MODEL [--input-shape 1,3,224,224] [--json]; "
              f"MODEL is torchvision:NAME or path/to/file.py:factory", file=sys.stderr)
        return 2


def cmd_analyze(args) -> int:
    import torch

    from .graph import analyze
    from .spec import build, default_input_shape, parse_shape

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


if __name__ == "__main__":
    sys.exit(main())
