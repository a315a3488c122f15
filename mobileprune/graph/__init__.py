"""Stage 1: capture a model with torch.export and find its channel groups."""
from .analysis import Analysis, ChannelGroup, find_groups
from .capture import CaptureError

__all__ = ["Analysis", "CaptureError", "ChannelGroup", "find_groups"]
