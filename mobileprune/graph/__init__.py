"""Stage 1: capture a model with torch.export and find its channel groups."""
from .analysis import Analysis, ChannelGroup, analyze
from .capture import CaptureError

__all__ = ["Analysis", "ChannelGroup", "CaptureError", "analyze"]
