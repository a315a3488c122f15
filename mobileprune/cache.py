"""Where mobileprune keeps what it can rebuild (built programs, trained weights, half-done
benchmark runs): one root outside the repo, ``$XDG_CACHE_HOME/mobileprune`` (default
``~/.cache/mobileprune``)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mobileprune"


def source_digest(*extra: Path) -> str:
    """sha256 of mobileprune's own source and the ``extra`` files: the key of what is kept here
    from a run of one source (benchmark runs, the tests' lowered programs), so that a changed
    line of code starts afresh instead of mixing two sources."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted({*package.rglob("*.py"), *(Path(p).resolve() for p in extra)}):
        digest.update(path.read_bytes())
    return digest.hexdigest()
