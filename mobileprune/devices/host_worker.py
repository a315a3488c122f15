"""Subprocess side of HostRunner: measure artifacts and print one JSON line per artifact.

Why a subprocess: the caller has its own torch threads, allocator state and imported runtimes;
timing in a fresh process with a thread pool set before the method loads is what FACTS-level
measurements on these VMs showed to be repeatable (1 thread: 2-3 % spread across processes).
Reads a JSON request on stdin: {"artifacts": [...], "code": [{"run", "outputs"} per artifact: the
runtime's WorkerCode], "threads", "warmup", "repeats",
"op_events", "etdump_dir": path (with op_events), "inputs": [npy paths] | null, "outputs_dir": path | null,
"reference": path | null},
or, to compute outputs
without timing, {"artifacts", "code", "threads", "input_sets": [[npy paths], ...], "outputs_dir",
"interpreter": "litert" | "tensorflow"} (tensorflow: tf.lite.Interpreter, a second opinion on
.tflite files).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np


def _inputs_for(shapes_dtypes, given):
    if given:
        return [np.load(p) for p in given]
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(d) for s, d in shapes_dtypes]


def _time(fn, warmup: int, repeats: int) -> list:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


PAIR_BLOCK = 4  # calls per turn when a target is timed in turns with a reference


def _time_paired(target, reference, warmup: int, repeats: int) -> dict:
    """Time ``target`` in turns with ``reference``: PAIR_BLOCK calls of one, then of the other.

    Why: on shared VMs the CPU's speed changes by up to 1.5x within seconds (other tenants), and
    no clock or canary loop tracks it, but a second whole model run in turns in the same process
    slows by the same factor: target/reference ratios per turn stayed within +-2 % while the
    absolute times moved by 15-30 %. The first call of each turn is dropped: ExecuTorch's XNNPACK
    delegates share one workspace, and the first call after another program ran re-plans it
    (0.3-0.5 ms, which is 15 % of a small model).
    """
    for _ in range(warmup):
        reference()
        target()
    kept = PAIR_BLOCK - 1
    samples, ref_samples, ratios = [], [], []
    for _ in range(-(-repeats // kept)):
        ref_turn = _time(reference, 1, kept)
        turn = _time(target, 1, kept)
        samples += turn
        ref_samples += ref_turn
        ratios.append(float(np.median(turn) / np.median(ref_turn)))
    return {"samples_ms": samples, "reference_samples_ms": ref_samples, "ratios": ratios}


_REFERENCES: dict = {}  # reference path -> its loaded callable, one per worker process


def _timings(target, req: dict, load_reference) -> dict:
    ref = req.get("reference")
    if ref:
        if ref not in _REFERENCES:
            _REFERENCES[ref] = load_reference(ref)
        return _time_paired(target, _REFERENCES[ref], req["warmup"], req["repeats"])
    return {"samples_ms": _time(target, req["warmup"], req["repeats"])}


def executorch_bindings():
    """ExecuTorch's C++ runtime bindings (``executorch.extension.pybindings._C``), loaded without
    ``executorch.runtime``.

    Why by hand: ``executorch.runtime`` reaches the bindings through ``portable_lib``, which
    imports ``executorch.exir`` (the whole export stack, torch._dynamo and the edge dialect) only
    to name a warning class. On a 2-core Xeon VM that made a fresh worker's start 6-7 s of CPU,
    against about 2 s for torch and the bindings alone, and every latency measurement starts
    fresh workers. The bindings need libtorch loaded first (as portable_lib says), hence torch.
    Running a program does not use exir: the same C++ calls execute it either way.
    """
    import torch  # noqa: F401 - loads libtorch and its libraries, which the bindings link against

    from executorch.extension.pybindings import _C

    return _C


def load_program(path: str, etdump: bool = False):
    bindings = executorch_bindings()
    return bindings._load_program(path, enable_etdump=etdump, debug_buffer_size=0,
                                  program_verification=bindings.Verification.InternalConsistency, data_path=None)


def _pte_callable(path: str, given_inputs=None):
    import torch

    method = load_program(path).load_method("forward")
    meta = method.method_meta()
    shapes = [(tuple(meta.input_tensor_meta(i).sizes()), np.float32) for i in range(meta.num_inputs())]
    inputs = [torch.from_numpy(a) for a in _inputs_for(shapes, given_inputs)]
    return (lambda: method(inputs)), inputs


def run_pte(path: str, req: dict) -> dict:
    executorch_bindings()._unsafe_reset_threadpool(req["threads"])  # before load_method: a loaded method keeps its pool
    forward, inputs = _pte_callable(path, req.get("inputs"))
    result = _timings(forward, req, lambda ref: _pte_callable(ref)[0])
    result["outputs"] = [o.numpy() for o in forward()]
    if req.get("op_events"):
        result["etdump"] = {"path": _write_etdump(path, inputs, req), "repeats": req["repeats"]}
    return result


def _write_etdump(path: str, inputs, req: dict) -> str:
    """Per-op times from a second, profiled program (profiling adds overhead: never mixed
    into the unprofiled samples), written as an ETDump file in the request's ``etdump_dir`` for
    the caller to read (etdump_events), as the Android runner's are.

    Why the caller reads it: ExecuTorch's reader (executorch.devtools) imports the whole export
    stack, 7.5 s of CPU on a 2-core Xeon VM, three times the rest of a fresh worker's start;
    the caller has it loaded already (it lowered the programs) or loads it once for many workers."""
    program = load_program(path, etdump=True)
    method = program.load_method("forward")
    for _ in range(req["warmup"]):
        method(inputs)
    for _ in range(req["repeats"]):
        method(inputs)
    dump = Path(tempfile.mkdtemp(prefix="etdump-", dir=req["etdump_dir"])) / "run.etdump"
    program.write_etdump_result_to_file(str(dump), str(dump.with_name("debug.bin")))
    return str(dump)


def etdump_events(path: str, repeats: int) -> list:
    """The delegate's per-op events of an ETDump file, in execution order, each with its last
    ``repeats`` samples (the calls before them are warm-up). Also reads the files the Android
    runner writes (android_runner/runner.cpp)."""
    import warnings

    from executorch.devtools import Inspector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = Inspector(etdump_path=path).to_dataframe()
    skip = {"Method::init", "Program::load_method", "Method::execute", "DELEGATE_CALL"}
    out = []
    for name, block, raw in zip(df["event_name"], df["event_block_name"], df["raw"]):
        if block == "Execute" and name not in skip and len(raw):
            out.append({"name": name, "samples_ms": list(raw[-repeats:])})
    return out


def _tflite_interpreter(path: str, threads: int, given_inputs=None):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=threads)
    interp.allocate_tensors()
    details = interp.get_input_details()
    arrays = _inputs_for([(tuple(d["shape"]), d["dtype"]) for d in details], given_inputs)
    for d, a in zip(details, arrays):
        interp.set_tensor(d["index"], a)
    return interp


def run_tflite(path: str, req: dict) -> dict:
    interp = _tflite_interpreter(path, req["threads"], req.get("inputs"))
    result = _timings(interp.invoke, req, lambda ref: _tflite_interpreter(ref, req["threads"]).invoke)
    result["outputs"] = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
    return result


def outputs_pte(path: str, req: dict) -> list:
    import torch

    executorch_bindings()._unsafe_reset_threadpool(req["threads"])
    method = load_program(path).load_method("forward")
    return [[o.numpy().copy() for o in method([torch.from_numpy(np.load(f)) for f in files])]
            for files in req["input_sets"]]


def outputs_tflite(path: str, req: dict) -> list:
    if req.get("interpreter") == "tensorflow":
        import tensorflow as tf

        interp = tf.lite.Interpreter(model_path=path, num_threads=req["threads"])
    else:
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=path, num_threads=req["threads"])
    interp.allocate_tensors()
    results = []
    for files in req["input_sets"]:
        for d, f in zip(interp.get_input_details(), files):
            interp.set_tensor(d["index"], _quantized(d, np.load(f)))
        interp.invoke()
        results.append([_dequantized(d, interp.get_tensor(d["index"])) for d in interp.get_output_details()])
    return results


def _quantized(detail: dict, array: np.ndarray) -> np.ndarray:
    """A float input for an integer tensor of a quantized flatbuffer, quantized with its scale
    and zero point (as the fake-quantized model's first quantize does)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind != "i" or array.dtype.kind != "f":
        return array
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(array / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantized(detail: dict, array: np.ndarray) -> np.ndarray:
    """An integer output of a quantized flatbuffer in the float values it stands for."""
    if np.dtype(detail["dtype"]).kind != "i" or not detail["quantization"][0]:
        return array.copy()
    scale, zero_point = detail["quantization"]
    return ((array.astype(np.float32) - zero_point) * scale).astype(np.float32)


def code(ref: str):
    """A function the request names as "module:function" (devices/runtimes.py's WorkerCode):
    this worker's own for "host_worker:...", since it runs as a script rather than as that
    module, else imported: a runtime registered elsewhere brings its own."""
    module, _, name = ref.partition(":")
    if module == "host_worker":
        return globals()[name]
    import importlib

    return getattr(importlib.import_module(module), name)


def _reply_outputs(i: int, path: str, req: dict, out_dir: Path) -> dict:
    sets = code(req["code"][i]["outputs"])(path, req)
    names = []
    for k, outs in enumerate(sets):
        names.append([])
        for j, arr in enumerate(outs):
            f = out_dir / f"{i}_{k}_{j}.npy"
            np.save(f, arr)
            names[-1].append(str(f))
    return {"output_sets": names}


READY = "ready"  # the line a preloaded worker prints when its imports are done (not JSON: not a reply)


def main() -> None:
    preload = sys.argv[2] if len(sys.argv) == 3 and sys.argv[1] == "--preload" else None
    if preload is not None:
        # Why: importing torch and ExecuTorch takes 5-7 s, longer than most measurements. The
        # caller starts several fresh processes at once, lets them import side by side, and
        # only then sends each its request in turn (no process imports while another times).
        # The modules are the runtime's (WorkerCode.preload), comma-separated.
        import importlib
        for module in filter(None, preload.split(",")):
            importlib.import_module(module)
    ready_at = time.time()  # before READY is printed: the caller may start another's timing at once
    if preload is not None:
        print(READY, flush=True)
    req = json.loads(sys.stdin.read())
    out_dir = Path(req["outputs_dir"]) if req.get("outputs_dir") else None
    for i, path in enumerate(req["artifacts"]):
        reply = {"artifact": path}
        try:
            if not Path(path).is_file():
                raise FileNotFoundError(f"no such artifact: {path}")
            if req.get("input_sets") is not None:
                reply.update(_reply_outputs(i, path, req, out_dir))
                print(json.dumps(reply), flush=True)
                continue
            began = time.time()
            result = code(req["code"][i]["run"])(path, req)
            # Which process timed it and when: the caller's check that fresh processes never
            # time side by side, nor beside another's imports (tests/test_devices.py).
            result["process"] = {"pid": os.getpid(), "ready_at": ready_at, "timed": [began, time.time()]}
            outputs = result.pop("outputs")
            if out_dir is not None:
                names = []
                for j, arr in enumerate(outputs):
                    f = out_dir / f"{i}_{j}.npy"
                    np.save(f, arr)
                    names.append(str(f))
                result["outputs"] = names
            reply.update(result)
        except Exception as exc:  # noqa: BLE001 - reported to the caller per artifact
            reply["error"] = f"{type(exc).__name__}: {exc}"
            reply["traceback"] = traceback.format_exc(limit=3)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
