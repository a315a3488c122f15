"""What several commands share: the device options and opening the runner they name."""
from __future__ import annotations


def runner_for(device: str | None, args=None):
    from ..devices import open_runner

    return open_runner(device, runner_binary=getattr(args, "runner", None),
                       remote_dir=getattr(args, "remote_dir", None))


def device_options(p) -> None:
    """Where the on-device runner is, for --device adb:... (a phone or another ADB device)."""
    p.add_argument("--runner", action="append", help="the on-device runner built for the phone's ABI "
                   "(android_runner/); repeat it to offer builds for several ABIs, the device's is chosen "
                   "(default: $MOBILEPRUNE_ANDROID_RUNNER, else the builds in build/runner-*/)")
    p.add_argument("--remote-dir", help="directory on the phone for the runner and programs (default "
                   "/data/local/tmp/mobileprune)")
