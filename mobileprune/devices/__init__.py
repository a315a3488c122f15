"""Stage: devices. Run artifacts on a device and measure them: this machine (HostRunner) or an
Android device over ADB (AdbRunner)."""
from .host import HostRunner
from .runner import Measurement, OpEvent, Runner, RunnerError


def open_runner(device: str | None = "host", **adb_options) -> Runner:
    """The Runner for ``device``: "host", "adb:SERIAL" (USB) or "adb:HOST:PORT" (TCP).
    ``adb_options`` go to AdbRunner (runner_binary, remote_dir, key_path, timeout_s, ...)."""
    if device in (None, "host"):
        return HostRunner()
    if device.startswith("adb:"):
        from .adb import AdbRunner

        return AdbRunner(device, **{k: v for k, v in adb_options.items() if v is not None})
    raise RunnerError(f"unknown device {device!r}: host, adb:SERIAL (USB) or adb:HOST:PORT (TCP)")


__all__ = ["HostRunner", "Measurement", "OpEvent", "Runner", "RunnerError", "open_runner"]
