"""`mobileprune export`: export .pte/.tflite artifacts with parity, delegation and latency checks (export.export)."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from .common import device_options, runner_for


def add(sub) -> None:
    p = sub.add_parser("export", help="export .pte/.tflite artifacts with parity, delegation and latency checks")
    p.add_argument("model", help="torchvision:NAME, path/to/file.py:factory, or a saved pruned model dir")
    p.add_argument("--formats", default="pte,tflite",
                   help="comma-separated export formats: pte, tflite, pte-int8, tflite-int8, or a registered runtime "
                   "flavour's")
    p.add_argument("--out", required=True, help="directory for the artifacts and manifest.json")
    p.add_argument("--nhwc", action="store_true", help="the .tflite takes channels-last (NHWC) input")
    p.add_argument("--input-shape", help="e.g. 1,3,224,224 (default: the model's usual size)")
    p.add_argument("--profile", help="record the latency this profile predicts")
    p.add_argument("--device", help="also measure latency on this device (host, adb:SERIAL, adb:HOST:PORT)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--processes", type=int, default=5,
                   help="fresh processes each artifact's latency is measured in, with --device")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="max |artifact - eager| / max |eager| (default 1e-4; a quantized format has its own)")
    p.add_argument("--data", help="fashion-mnist, mnist or path/to/file.py:factory: quantized formats (pte-int8, "
                   "tflite-int8) calibrate on its training images and are checked on its held-out ones")
    p.add_argument("--data-dir", help="a directory with the four Fashion-MNIST idx files")
    p.add_argument("--calibration-images", type=int, default=256,
                   help="training images a quantized format's activations are calibrated on (default 256)")
    p.add_argument("--check-images", type=int, default=1000,
                   help="held-out images a quantized artifact's top-1 agreement (99%%) and accuracy are measured on "
                        "(default 1000)")
    device_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..devices.latency_table import DeviceProfile
    from ..devices.runtimes import formats as registered_formats
    from ..data import load_data
    from ..export import ExportConfig, ModelOrigin, export
    from ..export.exporter import failure
    from ..predict import predict, resolve
    from ..spec import SpecError

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    bad = [f for f in formats if f not in registered_formats()]
    if bad or not formats:
        raise SpecError(f"bad --formats {args.formats!r}: a comma-separated subset of {','.join(registered_formats())}")
    ref = resolve(args.model, args.input_shape)
    prediction = predict(ref, DeviceProfile.load(args.profile)) if args.profile else None
    runner = runner_for(args.device, args) if args.device else None
    config = ExportConfig(nhwc=args.nhwc, tolerance=args.tolerance, threads=args.threads,
                          measure=args.device is not None, processes=args.processes, check=False,
                          calibration_images=args.calibration_images, data_images=args.check_images)
    origin = ModelOrigin(ref.spec, ref.plan if ref.plan.keep else None, prediction)
    data = load_data(args.data, ref.example_inputs[0].shape, args.data_dir) if args.data else None
    manifest = export(ref.model, ref.example_inputs, args.out, formats, config=config, runner=runner, origin=origin,
                      data=data)
    table = Table(title=f"{args.model} -> {args.out}")
    for col in ("artifact", "status", "size MB", "rel diff", "delegated", "latency ms"):
        table.add_column(col, justify="left" if col in ("artifact", "status") else "right")
    for a in manifest["artifacts"]:
        par, dele = a["parity"] or {}, a["delegation"] or {}
        table.add_row(a["path"], a["status"] if a["status"] == "ok" else f"[red]{a['status']}[/]",
                      f"{a['size_bytes'] / 1e6:.2f}", f"{par.get('rel_diff', float('nan')):.2e}",
                      f"{100 * dele['delegated_share']:.1f}%" if dele else "-",
                      f"{a['latency_ms']:.3f}" if a["latency_ms"] is not None else "-")
    Console().print(table)
    if prediction is not None:
        print(f"predicted latency ({args.profile}): {prediction['predicted_ms']:.3f} ms on "
              f"{prediction['profile_device']}")
        if not prediction["device_match"]:
            print(f"note: {prediction['device_note']}")
    for a in manifest["artifacts"]:
        if a.get("top1"):
            t = a["top1"]
            print(f"{a['path']}: top-1 {100 * t['artifact']:.2f}% on {t['images']} held-out images "
                  f"(the float model {100 * t['float_model']:.2f}%); agrees with the fake-quantized model on "
                  f"{100 * a['parity']['top1_agreement']:.1f}%")
    if manifest["device_emulated"]:
        print(f"note: {args.device} is emulated: parity was checked on it; its latency was not measured (the "
              "emulator's timings are not a device's)")
    if not manifest["passed"]:
        for a in manifest["artifacts"]:
            if a["status"] != "ok":
                print(f"mobileprune export: {a['format']} artifact failed parity and was not shipped "
                      f"(kept as {a['path']}): {failure(a)}", file=sys.stderr)
        return 1
    return 0
