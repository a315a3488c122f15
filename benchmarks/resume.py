"""Nothing lost on faults in a long benchmark run: its pruned nets and scores kept on disk until
it ends, and fine-tuning tasks whose worker process died run again in fresh processes.

Why by hand: a run of peers.py prunes and measures for about 45 minutes before its first
fine-tuning; on 2026-12-05 a fine-tuning worker died of a native fault ("double free or
corruption") four minutes later and the whole run was lost. concurrent.futures only reports
the broken pool (BrokenProcessPool) and fails every pending task with it; no library we use
keeps a half-done benchmark, and a pickle of our own dataclasses is all it needs.

A state file belongs to one command: its key is the run's settings and the source of the
benchmarks and of mobileprune, so a changed option or a changed line of code starts afresh
instead of mixing two runs in one table. It is deleted when the command completes (forget()),
so running a completed command again measures again. A state file left by a fault under an
older source cannot resume any more: the next run of the same benchmark deletes it (and says
so), while one of the same source with other settings stays (that command may be run again).
"""
from __future__ import annotations

import hashlib
import os
import pickle
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from mobileprune.cache import cache_root, source_digest
from mobileprune.user_code import is_file_spec, load_factory

NOT_RESULTS = {"workers", "threads", "retries", "fresh"}  # options that cannot change a row
_USED: list[Path] = []  # this process's state files, deleted by forget()


def _source_digest() -> str:
    return source_digest(*Path(__file__).resolve().parent.glob("*.py"))


def runs_dir() -> Path:
    return cache_root() / "runs"


class RunState:
    """A dict saved after each change (atomically: a fault while saving keeps the last state)."""

    def __init__(self, name: str, settings, *parts) -> None:
        relevant = {k: v for k, v in sorted(vars(settings).items()) if k not in NOT_RESULTS}
        source = _source_digest()[:8]
        key = hashlib.sha256(repr((relevant, parts)).encode()).hexdigest()[:8]
        self.path = runs_dir() / f"{name}-{source}-{key}.pkl"
        ours = [*runs_dir().glob(f"{name}-{'?' * 8}-{'?' * 8}.pkl"), *runs_dir().glob(f"{name}-{'?' * 16}.pkl")]
        for stale in sorted(ours):  # (the second pattern: state files named before the source had a part)
            if not stale.name.startswith(f"{name}-{source}-"):
                stale.unlink(missing_ok=True)
                print(f"deleted {stale}: an earlier run's state under another source (it cannot resume)", flush=True)
        self.data: dict = {}
        if self.path.exists() and not getattr(settings, "fresh", False):
            _import_file_specs(parts)  # the classes of models built from files, for unpickling
            self.data = pickle.loads(self.path.read_bytes())
            print(f"resumed from {self.path} (an earlier run of this command stopped; --fresh starts over)",
                  flush=True)
        _USED.append(self.path)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(self.data))
        os.replace(partial, self.path)


def _import_file_specs(parts) -> None:
    """Import the model files named among ``parts`` (specs path/to/file.py:factory, nested in
    tuples): a pickled model of such a file names a module only user_code.load_file creates."""
    for part in parts:
        if isinstance(part, (tuple, list)):
            _import_file_specs(part)
        elif isinstance(part, str) and is_file_spec(part):
            load_factory(part)


def forget() -> None:
    """The command completed: its state files go (a new run of it measures again)."""
    while _USED:
        _USED.pop().unlink(missing_ok=True)


class RetryingPool:
    """A pool of ``workers`` processes that runs stages of tasks (``run``), kept across stages:
    its workers' start-up (torch, each net's data: about 10 s) is paid once, not per stage. A
    worker that dies breaks the pool and every task still pending with it: those run again in a
    fresh pool, up to ``retries`` times per stage, then SystemExit names them."""

    def __init__(self, workers: int, retries: int, **pool_options) -> None:
        self.workers, self.retries, self.options = workers, retries, pool_options
        self._pool = None

    def __enter__(self) -> "RetryingPool":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def run(self, tasks: dict, fn, on_result) -> None:
        """``fn(*args)`` for each ``tasks[key] = args``; ``on_result(key, result)`` as each ends
        (the results so far have been handed to it when SystemExit is raised)."""
        pending = dict(tasks)
        for attempt in range(self.retries + 1):
            if not pending:
                return
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, **self.options)
            futures = {self._pool.submit(fn, *args): key for key, args in pending.items()}
            broken = False
            for done in as_completed(futures):
                error = done.exception()
                if error is None:
                    on_result(futures[done], done.result())
                    del pending[futures[done]]
                elif isinstance(error, BrokenProcessPool):
                    broken = True
                else:
                    raise error  # a Python error in a task is a bug: running it again would not help
            if broken:
                self._pool.shutdown()
                self._pool = None
            if pending and attempt < self.retries:
                print(f"a worker process died (a native fault: its last output is above); {len(pending)} task(s) "
                      f"run again in fresh processes (retry {attempt + 1} of {self.retries})", flush=True)
        if pending:
            raise SystemExit(f"worker processes died {self.retries + 1} times; tasks not done: "
                             f"{sorted(map(str, pending))}")


def run_retrying(tasks: dict, fn, on_result, workers: int, retries: int, **pool_options) -> None:
    """One stage of tasks in a RetryingPool of its own."""
    with RetryingPool(workers, retries, **pool_options) as pool:
        pool.run(tasks, fn, on_result)
