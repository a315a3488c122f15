"""Where mobileprune keeps what it can rebuild (built programs, trained weights, half-done
benchmark runs): one root outside the repo, ``$XDG_CACHE_HOME/mobileprune`` (default
``~/.cache/mobileprune``)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mobileprune"
