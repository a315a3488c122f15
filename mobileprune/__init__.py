"""mobileprune: prune PyTorch vision models to a latency budget measured on the phone."""
import os as _os

if _os.environ.get("MOBILEPRUNE_QUIET") == "1":  # a process started by a quiet CLI or demo (quiet.py)
    from .quiet import apply_logger_levels

    apply_logger_levels()

from .graph import Analysis, CaptureError, ChannelGroup  # noqa: E402
from .plan import PlanError, PrunePlan  # noqa: E402
from .slim import SlimError, analyze, masked, slim  # noqa: E402

__version__ = "0.1.0"

from .storage import load, save  # noqa: E402 - storage records __version__
from .export import ExportConfig, ExportError, ModelOrigin, export  # noqa: E402
from .prune import MeasuredRounds, Method, Output, PruneResult, Target, TrainConfig, prune  # noqa: E402

__all__ = ["Analysis", "CaptureError", "ChannelGroup", "ExportConfig", "ExportError", "MeasuredRounds", "Method",
           "ModelOrigin", "Output", "PlanError", "PrunePlan", "PruneResult", "SlimError", "Target", "TrainConfig",
           "analyze", "export", "load", "masked", "prune", "save", "slim", "__version__"]
