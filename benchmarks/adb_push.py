"""Push throughput over ADB: our transport (devices/adb_link.SendAllTcpTransport) against
adb-shell's stock TcpTransport, through the tests' ADB daemon on loopback, from one run.

    .venv/bin/python benchmarks/adb_push.py [--mb 20] [--repeats 3] [--quick]

Each side pushes the same random file --repeats times (alternating sides, each push to a new
name so nothing is skipped) over one connection; printed: the median seconds and MB/s per
side and stock / ours. Loopback has no latency, so a phone over USB or Wi-Fi shows the
per-packet cost of the stock transport (a send without TCP_NODELAY per header and per payload)
more, not less.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from adb_shell.adb_device import AdbDevice  # noqa: E402
from adb_shell.transport.tcp_transport import TcpTransport  # noqa: E402
from adbd import AdbDaemon  # noqa: E402

from mobileprune.devices.adb_link import SendAllTcpTransport, load_signer  # noqa: E402


def push_seconds(transport, key: Path, local: Path, remote_dir: Path, repeats: int, tag: str) -> list[float]:
    device = AdbDevice(transport, default_transport_timeout_s=120)
    device.connect(rsa_keys=[load_signer(key)], auth_timeout_s=10)
    times = []
    try:
        for i in range(repeats):
            start = time.perf_counter()
            device.push(str(local), str(remote_dir / f"{tag}-{i}.bin"), read_timeout_s=600)
            times.append(time.perf_counter() - start)
    finally:
        device.close()
    return times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 MB, one push per side")
    args = parser.parse_args(argv)
    if args.quick:
        args.mb, args.repeats = 2, 1
    size = int(args.mb * 1e6)
    with tempfile.TemporaryDirectory(prefix="adb-push-") as tmp, AdbDaemon() as daemon:
        tmp = Path(tmp)
        local = tmp / "payload.bin"
        local.write_bytes(os.urandom(size))
        remote = tmp / "device"
        sides = {"ours": [], "stock": []}
        for i in range(args.repeats):
            for name, cls in (("stock", TcpTransport), ("ours", SendAllTcpTransport)):
                sides[name] += push_seconds(cls("127.0.0.1", daemon.port), tmp / "adbkey", local, remote, 1,
                                            f"{name}{i}")
                assert (remote / f"{name}{i}-0.bin").read_bytes() == local.read_bytes(), f"{name}: corrupt copy"
    result = {name: statistics.median(t) for name, t in sides.items()}
    print(f"push of {size / 1e6:.0f} MB through the ADB daemon on loopback, {args.repeats} push(es) per side")
    for name in ("stock", "ours"):
        print(f"  {name:5s}: {result[name]:7.3f} s  ({size / 1e6 / result[name]:7.1f} MB/s; all: "
              f"{', '.join(f'{t:.3f}' for t in sides[name])})")
    ratio = result["stock"] / result["ours"]
    print(f"stock / ours: {ratio:.1f}x")
    return {"size": size, **result, "ratio": ratio}


if __name__ == "__main__":
    main()
