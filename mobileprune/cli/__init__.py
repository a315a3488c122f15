"""The ``mobileprune`` command line: one module per command, each parsing its arguments, calling
one library function and printing what it returns.

Errors a user can cause (bad spec, model torch.export cannot capture, bad plan) print one
paragraph and exit 2 (here, the one place errors are formatted); tracebacks are for bugs only.
"""
from __future__ import annotations

import argparse
import sys

from . import analyze, bench, export, finetune, predict, profile, prune, report

COMMANDS = (analyze, profile, predict, export, prune, finetune, bench, report)


def main(argv=None) -> int:
    from ..errors import MobilepruneError
    from ..user_code import SpecError

    parser = argparse.ArgumentParser(prog="mobileprune", description="The mobileprune command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub)
    for command_parser in sub.choices.values():
        command_parser.add_argument("--verbose", action="store_true", help="keep the log lines of torch, "
                                    "TensorFlow and absl that mobileprune silences (mobileprune/quiet.py)")
    args = parser.parse_args(argv)
    if not args.verbose:
        from ..quiet import quiet_third_party_logs

        quiet_third_party_logs()
    try:
        return args.func(args)
    except MobilepruneError as exc:
        print(f"mobileprune {args.command}: {exc}", file=sys.stderr)
        if isinstance(exc, SpecError):  # a model or argument it could not read: how to write one
            print(f"usage: see `{parser.prog} {args.command} --help`; MODEL is torchvision:NAME or "
                  f"path/to/file.py:factory", file=sys.stderr)
        return 2
