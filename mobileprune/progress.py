"""Progress a person can follow wherever the output goes.

On a terminal: rich's bars. Written to a file or a pipe (a CI log, `make demo > log`), rich draws
a bar only once it stops, so a five-minute step printed nothing meanwhile; there each task prints
a plain line now and then instead (at every tenth of its total, at least every 30 s, and when it
completes), with its status (loss, cost against the budget). rich has no such mode (its live
display is for terminals), hence this wrapper of its Progress.
"""
from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.progress import Progress


class Steps:
    """rich.progress.Progress's context manager, ``add_task`` and ``update``: bars on a terminal,
    lines elsewhere; ``show=False``: silent. ``every_s``: the longest a task goes unreported."""

    def __init__(self, *columns, show: bool = True, console: Console | None = None, every_s: float = 30.0,
                 **kwargs) -> None:
        self.console = console or Console()
        self.lines = show and not self.console.is_terminal
        self.bars = Progress(*columns, console=self.console, disable=not show or self.lines, **kwargs)
        self.every_s = every_s
        self._tasks: dict = {}
        self._lock = threading.Lock()  # several devices profiled at once share one Steps

    def __enter__(self) -> Steps:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields):
        task = self.bars.add_task(description, total=total, completed=completed, **fields)
        now = time.monotonic()
        self._tasks[task] = {"description": description, "total": total, "done": completed,
                             "printed": completed, "start": now, "last": now, "status": fields.get("status", ""),
                             "finished": False}
        return task

    def advance(self, task, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task, *, completed: float | None = None, advance: float | None = None, **fields) -> None:
        self.bars.update(task, completed=completed, advance=advance, **fields)
        if self.lines:
            self._line(task, completed, advance, fields.get("status"))

    def _line(self, task, completed, advance, status) -> None:
        with self._lock:
            t = self._tasks[task]
            t["done"] = completed if completed is not None else t["done"] + (advance or 0)
            t["status"] = status if status is not None else t["status"]
            now, total = time.monotonic(), t["total"]
            step = max(1.0, (total or 0) / 10)
            finished = total is not None and t["done"] >= total
            if t["finished"] or not (finished or t["done"] - t["printed"] >= step or now - t["last"] >= self.every_s):
                return
            t["printed"], t["last"], t["finished"] = t["done"], now, finished
            of = f"/{total:g}" if total is not None else ""
            status = f": {t['status']}" if t["status"] else ""
            self.console.print(f"{t['description']} {t['done']:g}{of} ({now - t['start']:.0f} s){status}",
                               markup=False, highlight=False, soft_wrap=True)
