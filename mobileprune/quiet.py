"""Log lines of torch, TensorFlow and absl that say nothing to our users, silenced in the CLI and
the demo (`--verbose` keeps them): torch's notice that an Enum torchao registers is natively
supported now, absl's "All log messages before absl::InitializeLog()" banner, the TFLite
converter's op count. Set through the environment as well, so the processes we start (build
pools, runtime workers) inherit it: TensorFlow's C++ logging reads TF_CPP_MIN_LOG_LEVEL when it
loads, and mobileprune/__init__.py applies the logger levels in every process that imports us.
Errors still print.
"""
from __future__ import annotations

import logging
import os

ENV_FLAG = "MOBILEPRUNE_QUIET"
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}  # TensorFlow's and the converter's C++ logs: errors only
LOGGERS = ("torch.utils._pytree", "absl")  # Python loggers held at ERROR


def quiet_third_party_logs() -> None:
    """Silence them in this process and the ones it starts (call before TensorFlow loads)."""
    os.environ[ENV_FLAG] = "1"
    for key, value in ENV.items():
        os.environ.setdefault(key, value)  # a level the user set is theirs
    apply_logger_levels()


def apply_logger_levels() -> None:
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
