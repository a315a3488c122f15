"""What the pruning benchmarks share: a profile of *this* machine and .pte latency measured as
latency_truth measures it (1 thread, in turns with the profile's speed reference in fresh
processes, normalised to the speed the device had when it was profiled)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from mobileprune.devices import HostRunner, runtimes
from mobileprune.devices.identity import compare
from mobileprune.devices.profile import DeviceProfile
from mobileprune.devices.profiler import cache_dir, measure_model
from mobileprune.devices.reference import speed_reference


@dataclass
class ThisMachine:
    profile: DeviceProfile
    processes: int

    def __post_init__(self) -> None:
        self.runner = HostRunner()
        self.runtime = runtimes.get(self.profile.meta.runtime)
        self.reference = speed_reference(self.profile.meta, cache_dir(self.runtime))

    def measure(self, model: torch.nn.Module, shape) -> dict:
        """The model lowered to the profile's runtime and measured here: {"ms", "ratio_spread", ...}."""
        return measure_model(model.eval(), (torch.randn(shape),), self.runner, self.runtime, self.profile.meta.threads,
                             processes=self.processes, reference=self.reference)


def this_machine(profile_path: str, processes: int, script: str) -> ThisMachine:
    """The profile, refused unless it is of this machine: a latency measured here against another
    device's budget or prediction means nothing."""
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    profile = DeviceProfile.load(profile_path)
    match = compare(profile.meta.device_identity, HostRunner().identity())
    if not match.matches:
        raise SystemExit(f"{script}: {match.warning()} Run it with a profile of this machine.")
    return ThisMachine(profile, processes)
