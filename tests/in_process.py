"""`mobileprune ARGS` run in the test's own process, as the console script runs it.

Why not `python -m mobileprune.cli` in a subprocess, as a user types it: each such process
imports torch and the library again (about 3.5 s of CPU on a 2-core Xeon VM) and, for a command
that lowers a program, warms ExecuTorch's export stack again (about 10 s for its first lowering);
the suite ran some twenty of them. The console script is ``sys.exit(cli.main())``: calling
``cli.main`` here runs the same parsing, work, printing and exit codes (argparse's own exits
arrive as SystemExit). tests/test_cli.py still runs the command as a separate process.
"""
from __future__ import annotations

import os
import subprocess

from mobileprune import cli


def run_cli(capsys, *args) -> subprocess.CompletedProcess:
    """The command's exit code and what it printed, as subprocess.run would return them."""
    argv = [str(a) for a in args]
    capsys.readouterr()  # what the test printed before is not the command's
    message = ""
    environ = dict(os.environ)  # the command's settings (e.g. quiet.py's) end with it, as its process would
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # as the interpreter exits on it: a message goes to stderr, code 1
        code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
        message = "" if exit_.code is None or isinstance(exit_.code, int) else f"{exit_.code}\n"
    finally:
        os.environ.clear()
        os.environ.update(environ)
    printed = capsys.readouterr()
    return subprocess.CompletedProcess(["mobileprune", *argv], code, printed.out, printed.err + message)
