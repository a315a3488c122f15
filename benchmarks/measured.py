"""What the pruning benchmarks share: a profile of *this* machine and .pte latency measured as
latency_truth measures it (1 thread, in turns with the profile's speed reference in fresh
processes, normalised to the speed the device had when it was profiled)."""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch

import mobileprune as mp
from mobileprune.devices import HostRunner, runtimes
from mobileprune.devices.identity import compare
from mobileprune.devices.latency_table import DeviceProfile
from mobileprune.devices.builds import cache_dir
from mobileprune.devices.measuring import measure_model
from mobileprune.devices.reference import speed_reference
from mobileprune.prune import BudgetError


def signature(model: torch.nn.Module) -> tuple:
    """An architecture's identity for measuring: its parameters' shapes (weights do not change latency)."""
    return tuple(tuple(p.shape) for p in model.state_dict().values())


@dataclass
class ThisMachine:
    profile: DeviceProfile
    processes: int

    def __post_init__(self) -> None:
        self.runner = HostRunner()
        self.runtime = runtimes.get(self.profile.meta.runtime)
        self.reference = speed_reference(self.profile.meta, cache_dir(self.runtime))
        self.measured: dict = {}

    def measure(self, model: torch.nn.Module, shape) -> dict:
        """The model lowered to the profile's runtime and measured here: {"ms", "ratio_spread", ...}.
        Each architecture at each input shape is measured once per run: methods that end at the
        same widths are compared at one figure, not at two noisy ones (and not measured again)."""
        key = (tuple(shape), signature(model))
        if key not in self.measured:
            self.measured[key] = measure_model(model.eval(), (torch.randn(shape),), self.runner, self.runtime,
                                               self.profile.meta.threads, processes=self.processes,
                                               reference=self.reference)
        return self.measured[key]


def model_arguments(parser, models: list, steps: int) -> None:
    """The options the model-pruning benchmarks share (budget_hit, latency_vs_flops)."""
    parser.add_argument("--profile", required=True)
    parser.add_argument("--models", nargs="*", default=models)
    parser.add_argument("--input-shape", help="for every model (default: its usual size)")
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 steps, one measuring process")


def parse_model_arguments(parser, argv):
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.processes = 2, 1
    return args


def this_machine(profile_path: str, processes: int, script: str, threads: int = 1) -> ThisMachine:
    """The profile, refused unless it is of this machine: a latency measured here against another
    device's budget or prediction means nothing. ``threads``: torch threads of this process for
    the pruning and training it runs itself (1 by default, as latency is measured)."""
    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    profile = DeviceProfile.load(profile_path)
    match = compare(profile.meta.device_identity, HostRunner().identity())
    if not match.matches:
        raise SystemExit(f"{script}: {match.warning()} Run it with a profile of this machine.")
    return ThisMachine(profile, processes)


def reachable_block(original, spec, shape, profile, budget, device=None, room: float = 1.0) -> int:
    """The profile's block, halved until one block per group can meet ``budget`` (ms, or a
    share like "30%") times ``room``: at 32 channels a small net cannot reach 30% of its
    latency. With ``room`` under 1 the block also leaves the selection a choice: where one
    block per group only just meets the budget every method ends at that one plan (peers.py,
    2026-12-06: fashion:mobilenet_w1 at 50% on an AMX Xeon, block 32, the smallest plan 47%),
    and a comparison of pruners tells nothing. The scripts print the block they use.
    ``device``: the profile's runner, to measure the narrower widths a smaller block needs."""
    if room != 1.0:
        budget = f"{room * float(budget[:-1])}%" if str(budget).endswith("%") else room * float(budget)
    block = profile.meta.block
    while True:
        try:
            mp.prune(original, torch.randn(shape), method="uniform",
                     target=mp.Target(budget=budget, profile=profile, block=block, device=device),
                     output=mp.Output(spec=spec, show=False))
            return block
        except BudgetError as e:
            if block == 1 or "below the smallest" not in str(e):
                raise
            block //= 2


def from_scratch(model: torch.nn.Module) -> torch.nn.Module:
    """The same architecture with freshly initialised weights (uniform width trains from scratch)."""
    fresh = copy.deepcopy(model)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        if hasattr(module, "reset_running_stats"):
            module.reset_running_stats()
    return fresh
