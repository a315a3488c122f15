"""`mobileprune report`: one HTML page of a pruned model or of a device profile (report/)."""
from __future__ import annotations

from .common import device_options, runner_for


def add(sub) -> None:
    p = sub.add_parser("report", help="an HTML page of a pruned model (where the milliseconds go, before and "
                       "after) or of a device profile (its tile staircases)")
    p.add_argument("target", help="a saved pruned model dir (mobileprune prune --out), or a profile's .csv")
    p.add_argument("--out", required=True, help="the page to write, e.g. report.html (its numbers go beside it "
                   "as report.json)")
    p.add_argument("--profile", help="the device's latency table: per-layer latency, predicted (default: the one "
                   "the model was pruned with, when recorded)")
    p.add_argument("--export", help="the directory `mobileprune export --out` wrote: its artifacts' parity, "
                   "delegation, size and latency")
    p.add_argument("--device", help="also measure on this device (the profile's): whole models, and per-op "
                   "times on ExecuTorch (host, adb:SERIAL)")
    p.add_argument("--processes", type=int, default=3, help="fresh processes a whole model is measured in")
    p.add_argument("--data", help="fashion-mnist, mnist or path/to/file.py:factory: top-1 before and after")
    p.add_argument("--data-dir", help="a directory with the four Fashion-MNIST idx files")
    p.add_argument("--images", type=int, default=1000, help="held-out images top-1 is measured on")
    device_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..data import load_data
    from ..devices.latency_table import DeviceProfile
    from ..report import ReportError, model_report, profile_report, write
    from ..storage import is_saved

    target = Path(args.target)
    if target.suffix == ".csv":
        if args.export or args.device or args.data:
            raise ReportError("a profile's report takes no --export, --device or --data: those describe a model")
        page = write(profile_report(DeviceProfile.load(target)), args.out)
    elif is_saved(target):
        profile = args.profile or _recorded_profile(target)
        model = model_report(target, profile=DeviceProfile.load(profile) if profile else None, export_dir=args.export,
                             runner=runner_for(args.device, args) if args.device else None,
                             data=_data(args, target, load_data), images=args.images, processes=args.processes)
        page = write(model, args.out)
    else:
        raise ReportError(f"{target} is neither a saved pruned model (a directory with model.json) nor a "
                          f"profile (.csv)")
    print(f"report written to {page} (numbers in {page.with_suffix('.json')})")
    return 0


def _recorded_profile(saved) -> str | None:
    """The profile the model was pruned with, when its prune report names one that is here."""
    import json
    from pathlib import Path

    path = Path(saved) / "report.json"
    recorded = (json.loads(path.read_text()).get("profile") or {}).get("path") if path.is_file() else None
    return recorded if recorded and Path(recorded).is_file() else None


def _data(args, saved, load_data):
    if not args.data:
        return None
    import json
    from pathlib import Path

    shape = json.loads((Path(saved) / "model.json").read_text())["input_shapes"][0]
    return load_data(args.data, tuple(shape), args.data_dir)
