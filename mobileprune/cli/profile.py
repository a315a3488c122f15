"""`mobileprune profile`: measure a latency table on a device (profiling.profile_devices)."""
from __future__ import annotations

from .common import device_options


def add(sub) -> None:
    from ..devices.runtimes import RUNTIMES
    from ..devices.reference import REFERENCE_MODEL

    p = sub.add_parser("profile", help="measure a latency table on a device")
    p.add_argument("--device", action="append", help="host (this machine, the default), adb:SERIAL (USB) or "
                   "adb:HOST:PORT (TCP); repeat it to profile several devices at once, one profile each")
    p.add_argument("--runtime", default="executorch", choices=list(RUNTIMES))
    p.add_argument("--model", action="append", help="model spec to cover (repeatable; default: the "
                   "torchvision mobile and ResNet families)")
    p.add_argument("--input-shape", action="append", help="e.g. 1,3,128,128: the input size a --model is "
                   "profiled at (default: the model's usual size); one for every --model, paired in order, or "
                   "one for all of them")
    p.add_argument("--out", help="device_profiles/NAME.csv (resumes if it exists; default: named after the "
                   "device, runtime and threads, e.g. device_profiles/host-amd-epyc-f25m17-executorch-1t.csv)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--block", default="auto", help="channel block the device prefers (default: measured "
                   "by a probe, or the block of the profile being resumed)")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--processes", type=int, default=5,
                   help="fresh processes each whole model (the speed reference included) is measured in")
    p.add_argument("--grid", default="0.5", help="fractions of each full width measured besides one "
                   "block and the full width, e.g. 0.25,0.5,0.75 for a denser grid")
    p.add_argument("--reference", default=REFERENCE_MODEL,
                   help="model spec of the speed reference every measurement is timed in turns with (default: "
                        "%(default)s; a smaller one where the device is slow, e.g. an emulator, or for tests)")
    device_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..devices import runtimes
    from ..devices.measuring import ProfilingConfig
    from ..profiling import DEFAULT_MODELS, profile_devices
    from ..spec import SpecError

    try:
        fractions = tuple(float(f) for f in args.grid.split(","))
    except ValueError:
        raise SpecError(f"bad --grid {args.grid!r}: comma-separated fractions like 0.25,0.5,0.75") from None
    if args.block != "auto" and not (args.block.isdigit() and int(args.block) > 0):
        raise SpecError(f"bad --block {args.block!r}: a positive channel count or 'auto'")
    block = None if args.block == "auto" else int(args.block)
    models = args.model or DEFAULT_MODELS
    config = ProfilingConfig(runtime=runtimes.get(args.runtime).name, threads=args.threads, block=block,
                             repeats=args.repeats, processes=args.processes, fractions=fractions,
                             reference=args.reference, input_shapes=_shapes_of(models, args.input_shape or []))
    profiles = profile_devices(args.device or ["host"], models, config, out=args.out,
                               runner_binary=args.runner, remote_dir=args.remote_dir)
    for device, profile in profiles.items():
        print(f"{device}: {profile.path}: {len(profile.table)} rows, calibrated for "
              f"{len(profile.meta.overheads_ms)} models")
    return 0


def _shapes_of(models: list, shapes: list) -> dict:
    """{model: shape} from the --input-shape options: one per --model in order, or one for all."""
    from ..spec import SpecError, parse_shape

    if len(shapes) == 1:
        shapes = shapes * len(models)
    elif shapes and len(shapes) != len(models):
        raise SpecError(f"{len(shapes)} --input-shape for {len(models)} --model: give one per --model "
                        "(paired in order) or one for all of them")
    return {model: parse_shape(shape) for model, shape in zip(models, shapes)}
