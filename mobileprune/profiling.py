"""Make (or extend) a device profile: the table rows of every model, then each model measured
whole to calibrate it (the table's prices become a model's latency with cost/calibrate.py's
``calibrate``). devices/measuring.py measures rows; this is the one workflow that runs both steps,
for the CLI, the demo and notebooks.
"""
from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

from .cost.base import fractions_from_plan
from .cost.calibrate import fixed_share
from .cost.latency import LatencyCost, MissingConfigs
from .devices import runtimes
from .devices.identity import DeviceIdentity, refuse_emulated
from .devices.builds import cache_dir
from .devices.latency_table import DeviceProfile, check_same_device, default_profile_path
from .devices.measuring import ProfilingConfig, measure_model, profile_rows
from .devices.reference import speed_reference
from .errors import MobilepruneError
from .plan import PrunePlan
from .slim.slimming import slim
from .spec import default_input_shape

DEFAULT_MODELS = ["torchvision:mobilenet_v2", "torchvision:mobilenet_v3_small", "torchvision:mobilenet_v3_large",
                  "torchvision:efficientnet_b0", "torchvision:shufflenet_v2_x1_0", "torchvision:squeezenet1_1",
                  "torchvision:mnasnet0_5", "torchvision:resnet18", "torchvision:resnet50"]


def profile_device(specs: list, out, runner, config: ProfilingConfig | None = None, *, show_progress: bool = True,
                   log=print) -> DeviceProfile:
    """Profile ``specs`` on ``runner``'s device into ``out`` (resuming what is there), as
    ``config`` says (default ProfilingConfig(): ExecuTorch, 1 thread, the device's block)."""
    config = config or ProfilingConfig()
    models = profile_rows(specs, out, runner, config, show_progress=show_progress, log=log)
    return calibrate_models(DeviceProfile.load(out), models, runner, config, log)


def calibrate_models(profile: DeviceProfile, models: dict, runner, config: ProfilingConfig | None = None,
                     log=print) -> DeviceProfile:
    """Measure every model of ``models`` ({spec: (model, analysis)}) the profile has not
    calibrated yet, on ``runner``'s device, and record it in the profile's metadata: its whole
    latency, and its fixed share (cost/calibrate.py), from a random half-width variant measured
    beside it (both timed in turns with the speed reference, so the machine's drift between
    two measurements cancels in their ratio; a model calibrated before fixed shares existed gets
    its share measured the same way). Each measured as ``config`` says (its repeats and
    processes; ``fixed_share=False``: the whole latency only, and a prediction then scales all
    of it with the widths)."""
    config = config or ProfilingConfig()
    repeats, processes = config.repeats, config.processes
    refuse_emulated(runner.identity(), runner.device, "calibrating a profile")
    check_same_device(profile.meta, runner.identity(), profile.path, runner.device)  # meta is a device fact too
    runtime = runtimes.get(profile.meta.runtime)
    reference = speed_reference(profile.meta, cache_dir(runtime))
    meta = profile.meta

    def whole(spec, model, analysis) -> float:
        if _is_the_reference(spec, analysis, meta):
            # Timed in turns with itself, the reference's ratio is 1 by construction: its whole
            # latency is the reference's own, measured already (lowering and timing it again would
            # add only noise, and 15 s on a tiny net of the tests, which is its own reference).
            return float(meta.reference["ms"])
        return measure_model(model, analysis.example_inputs, runner, runtime, meta.threads, repeats, processes,
                             reference=reference)["ms"]

    for spec, (model, analysis) in models.items():
        if spec in meta.overheads_ms and (spec in meta.fixed_shares or not config.fixed_share):
            continue
        measured = whole(spec, model, analysis)
        cost = LatencyCost(analysis, profile)
        layers_ms = float(cost.layers_total())
        if spec not in meta.overheads_ms:
            meta.overheads_ms[spec] = round(measured - layers_ms, 4)
            meta.measured_ms[spec] = round(measured, 4)
            meta.layer_counts[spec] = len(cost.layers)
            log(f"{spec}: whole model {measured:.3f} ms, layers {layers_ms:.3f} ms, "
                f"overhead {measured - layers_ms:.3f} ms")
        if not config.fixed_share:
            profile.save_meta()
            continue
        plan, predicted_share = _half_width_variant(analysis, cost, meta.block)
        share = None
        if plan.keep:
            variant = slim(model, analysis, plan, verify=False).eval()
            variant_ms = measure_model(variant, analysis.example_inputs, runner, runtime, meta.threads, repeats,
                                       processes, reference=reference)["ms"]
            share = fixed_share(predicted_share, variant_ms / measured)
            log(f"{spec}: a half-width variant's layers {predicted_share:.2f} of the original's, measured "
                f"{variant_ms / measured:.2f}: fixed share " + (f"{share:.2f}" if share is not None else "unknown"))
        meta.fixed_shares[spec] = round(share, 4) if share is not None else 0.0
        profile.save_meta()
    return profile


VARIANT_BLOCK = 8  # the half-width variant's block, where the profile's rows allow


def _half_width_variant(analysis, cost: LatencyCost, block: int) -> tuple[PrunePlan, float]:
    """A random half-width plan and its layers' predicted share of the original's. Cut in
    blocks of VARIANT_BLOCK where the table has the rows (at 32, fashion:resnet_w0.5 keeps its
    16- and 32-channel stages whole, and its variant measured what the table predicted: the
    narrow layers, where the table errs, were not in it), else in the profile's block (whose
    half widths are always measured with the model's rows). An empty plan: nothing to prune."""
    for b in dict.fromkeys((min(block, VARIANT_BLOCK), block)):
        plan = PrunePlan.random(analysis, 0.5, b, seed=0)
        try:
            return plan, float(cost.layers_total(fractions_from_plan(analysis, plan))) / float(cost.layers_total())
        except MissingConfigs:
            continue
    plan.keep.clear()
    return plan, 1.0


def _is_the_reference(spec: str, analysis, meta) -> bool:
    """Whether ``spec`` at the analysed input shape is the profile's speed reference program."""
    inputs = analysis.example_inputs
    return (bool(meta.reference) and meta.reference.get("model") == spec and len(inputs) == 1
            and tuple(inputs[0].shape) == tuple(default_input_shape(spec)))


def profile_devices(devices: list[str], specs: list, config: ProfilingConfig | None = None, *, out=None,
                    reconnect_s: float = 600.0, log=print, **adb_options) -> dict:
    """Profile several devices at once, one profile each (named after the device unless ``out``
    is given for a single device), with a progress bar per device. A device whose connection
    drops keeps every row measured so far; it is waited for (up to ``reconnect_s``) and profiling
    resumes where it stopped, without measuring a row twice (rows in the profile are skipped,
    results a cut-off run left on the device are collected: devices/adb.py). Returns {device:
    DeviceProfile}; raises after all devices finished if any failed, naming each failure.
    ``config``: what each profile holds, as for profile_device."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from .progress import Steps

    from .devices import open_runner
    from .devices.adb_link import DeviceDisconnected

    if out is not None and len(devices) > 1:
        raise MobilepruneError("one profile per device: leave out --out (each profile is named after its device) "
                               "or profile one device at a time")
    config = config or ProfilingConfig()
    runtime = runtimes.get(config.runtime)
    results, failures, runners, paths = {}, {}, {}, {}
    progress = Steps(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    for device in devices:
        try:
            runners[device] = open_runner(device, **adb_options)
            paths[device] = Path(out or default_profile_path(runners[device].identity(), runtime.name,
                                                             config.threads))
        except MobilepruneError as exc:
            failures[device] = exc
    # Two devices of one kind (two phones of a model) still get a profile each: never one file
    # written by two devices. They are told apart by how they are reached.
    named = Counter(paths.values())
    for device, path in paths.items():
        if named[path] > 1:
            paths[device] = path.with_name(f"{path.stem}-{re.sub(r'[^a-z0-9]+', '-', device.lower())}{path.suffix}")

    def one(device: str) -> None:
        runner, path = runners[device], paths[device]
        say = (lambda text: log(f"[{device}] {text}")) if len(devices) > 1 else log
        while True:
            try:
                say(f"profiling {runner.identity().describe()} into {path}")
                results[device] = profile_device(specs, path, runner, config, show_progress=progress, log=say)
                return
            except DeviceDisconnected as exc:
                say(f"{exc}; the rows measured so far are kept. Waiting up to {reconnect_s:.0f} s for it to "
                    f"come back")
                _wait_for(runner, reconnect_s)
                say("reconnected: resuming")

    def guarded(device: str) -> None:
        try:
            one(device)
        except Exception as exc:  # noqa: BLE001 - reported with the device's name once all are done
            failures[device] = exc  # KeyboardInterrupt is not an Exception: it goes through

    with progress:
        if len(runners) == 1:  # in this thread: Ctrl-C stops it at once
            guarded(next(iter(runners)))
        else:  # daemon threads: Ctrl-C in the main thread ends the process, rows written so far kept
            workers = [threading.Thread(target=guarded, args=(d,), name=f"profile-{d}", daemon=True) for d in runners]
            for w in workers:
                w.start()
            for w in workers:
                while w.is_alive():
                    w.join(0.5)  # a bare join() would not return to take a KeyboardInterrupt
    if failures:
        if len(devices) == 1:
            raise next(iter(failures.values()))
        raise MobilepruneError("; ".join(f"{d}: {type(e).__name__}: {e}" for d, e in failures.items()))
    return results


def _wait_for(runner, seconds: float, every: float = 2.0) -> None:
    """Reconnect to ``runner``'s device, trying every ``every`` s for ``seconds``. Its facts are
    read again: another phone plugged in meanwhile is refused by the profile's device check."""
    from .devices.adb_link import DeviceDisconnected

    deadline = time.monotonic() + seconds
    while True:
        try:
            runner.reconnect()
            return
        except DeviceDisconnected:
            if time.monotonic() > deadline:
                raise
            time.sleep(every)


def find_profile(identity: DeviceIdentity, runtime: str, threads: int, search=(), covering=()) -> DeviceProfile | None:
    """A profile of this device for (runtime, threads) among the profiles in ``search``
    (directories, in order): the first that has calibrated every model in ``covering``, else the
    first of this device at all, else None."""
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


__all__ = ["DEFAULT_MODELS", "default_profile_path", "find_profile", "profile_device", "profile_devices"]
