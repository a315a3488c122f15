"""`mobileprune bench`: measure an artifact's latency on a device (devices.runner.measure_artifact)."""
from __future__ import annotations

import json

from .common import device_options, runner_for


def add(sub) -> None:
    p = sub.add_parser("bench", help="measure an artifact's latency on a device")
    p.add_argument("artifact", help="a .pte or .tflite file")
    p.add_argument("--device", default="host", help="host, adb:SERIAL or adb:HOST:PORT")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--processes", type=int, default=5, help="fresh processes; reports the lowest of "
                   "their medians (VM neighbours only add time) and the spread")
    p.add_argument("--json", action="store_true")
    device_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..devices import runtimes
    from ..devices.runner import measure_artifact

    runtimes.check_artifact(args.artifact)  # named as none is, missing, or not what its name says
    runner = runner_for(args.device, args)
    result = measure_artifact(runner, args.artifact, args.threads, args.processes, args.repeats)
    emulated = runner.identity().emulated
    if args.json:
        print(json.dumps({"artifact": args.artifact, **result, "emulated": emulated}))
    else:
        print(f"{args.artifact} on {result['device']} ({args.threads} thread(s)): {result['ms']:.3f} ms "
              f"(lowest per-process median; median {result['median']:.3f}, highest {result['max']:.3f} "
              f"over {result['processes']} processes)")
        if emulated:
            print(f"note: {args.device} is emulated: it ran, but this time is the emulator's, not a device's latency")
    return 0
