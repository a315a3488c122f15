"""Stage: devices. Run artifacts on a device and measure them (host now, ADB later)."""
from .runner import Measurement, OpEvent, Runner, RunnerError
from .host import HostRunner

__all__ = ["HostRunner", "Measurement", "OpEvent", "Runner", "RunnerError"]
