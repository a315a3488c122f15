"""Make (or extend) a device profile: the table rows of every model, then each model measured
whole to calibrate it. The two steps live in their stages (devices/profiler.py measures rows,
cost/calibrate.py calibrates); this is the one call that runs both, for the CLI, the demo and
notebooks.
"""
from __future__ import annotations

from .cost.calibrate import calibrate_models
from .devices import runtimes
from .devices.identity import DeviceIdentity
from .devices.profile import DeviceProfile, default_profile_path
from .devices.profiler import profile_rows
from .errors import MobilepruneError

DEFAULT_MODELS = ["torchvision:mobilenet_v2", "torchvision:mobilenet_v3_small", "torchvision:mobilenet_v3_large",
                  "torchvision:efficientnet_b0", "torchvision:shufflenet_v2_x1_0", "torchvision:squeezenet1_1",
                  "torchvision:mnasnet0_5", "torchvision:resnet18", "torchvision:resnet50"]


def profile_device(specs: list, out, runner, runtime="executorch", threads: int = 1, block: int | None = None,
                   repeats: int = 50, fractions=(0.5,), show_progress: bool = True, log=print) -> DeviceProfile:
    """Profile ``specs`` on ``runner``'s device into ``out`` (resuming what is there). ``block``
    None: the device's probed conv tile, or the block of the profile being resumed."""
    runtime = runtimes.get(runtime) if isinstance(runtime, str) else runtime
    models = profile_rows(specs, out, runner, runtime, threads, block, repeats, fractions, show_progress, log)
    return calibrate_models(DeviceProfile.load(out), models, runner, repeats, log)


def find_profile(identity: DeviceIdentity, runtime: str, threads: int, search=(), covering=()) -> DeviceProfile | None:
    """A profile of this device for (runtime, threads) among the profiles in ``search``
    (directories, in order): the first that has calibrated every model in ``covering``, else the
    first of this device at all, else None."""
    from pathlib import Path

    found = []
    for directory in search:
        for meta_path in sorted(Path(directory).glob("*.json")):
            try:
                profile = DeviceProfile.load(meta_path)
            except MobilepruneError:  # not a profile, or one of another runtime version or schema
                continue
            meta = profile.meta
            if meta.runtime == runtime and meta.threads == threads and meta.device_identity.matches(identity):
                if all(spec in meta.overheads_ms for spec in covering):
                    return profile
                found.append(profile)
    return found[0] if found else None


__all__ = ["DEFAULT_MODELS", "default_profile_path", "find_profile", "profile_device"]
