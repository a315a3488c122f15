"""Which device a latency table is a fact about.

A profile measured on one CPU does not predict another: on 2026-11-24 block-32 prunings of four
mobile nets predicted with a Xeon profile on an AMD EPYC landed only 4/8 within +-10 % (worst
-15.9 %), the same variants with a profile made on the EPYC 8/8 (median 2.1 %). Relative op
speeds move with the kernels the CPU gets (XNNPACK picks AVX2, AVX-512, VNNI, NEON dot-product,
i8mm ... kernels at run time) and with the cores. So every profile records a ``DeviceIdentity``,
every command that measures against a profile compares the device it runs on with it, and rows
of one device are never appended to another's table.

Facts set to None were not recorded (profiles made before identities existed) and are shown as
unknown. A fact recorded on one side only is a difference: a profile that does not say which CPU
generation it was measured on cannot be confirmed as this machine's (two "Intel(R) Xeon(R)
Processor" VMs may be years apart), so it is never extended with rows measured here and its
predictions say they are another device's. A fact unknown on both sides is not compared.
"""
from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import MobilepruneError

# CPU flags that change which kernels a runtime runs (XNNPACK and LiteRT dispatch on them).
KERNEL_FLAGS = (
    "sse4_1", "avx", "fma", "f16c", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",  # x86
    "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme",  # arm64
)

# /proc/cpuinfo fields naming the exact CPU generation (x86: family/model/stepping; arm64:
# implementer/part/variant/revision).
CPU_ID_FIELDS = ("cpu family", "model", "stepping", "cpu implementer", "cpu part", "cpu variant", "cpu revision")

# Facts that identify a device, per kind; the rest (OS release, date) describe it only.
IDENTIFYING = {
    "host": ("cpu", "cpu_id", "arch", "isa", "cores"),
    "android": ("manufacturer", "model", "soc", "abi", "cores", "max_freqs_khz", "governor"),
}


@dataclass(frozen=True)
class DeviceIdentity:
    kind: str  # host | android
    facts: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Short and readable: the CPU (host) or the phone model, e.g. 'host AMD EPYC'."""
        f = self.facts
        what = f.get("model") if self.kind == "android" else f.get("cpu")
        return f"{self.kind} {what or 'unknown'}"

    @property
    def slug(self) -> str:
        """For file names: 'host-amd-epyc-f25m17'. A host's name is its CPU model, which VMs of
        different generations share ("AMD EPYC" for family 25 model 1 and model 17), so the
        generation is part of the name when it is known: two such machines get two files, and
        profiling one never lands on the other's default path (where it would be refused)."""
        name = self.name.lower().replace("(r)", "").replace("(tm)", "")
        generation = re.fullmatch(r"family (\d+) model (\d+)(?: stepping \d+)?", str(self.facts.get("cpu_id") or ""))
        if self.kind == "host" and generation:
            name += f" f{generation[1]}m{generation[2]}"
        return re.sub(r"[^a-z0-9]+", "-", name).strip("-")

    def describe(self) -> str:
        shown = [f"{key}={_shown(self.facts.get(key))}" for key in IDENTIFYING.get(self.kind, tuple(self.facts))]
        return f"{self.name} ({', '.join(shown)}{', emulated' if self.emulated else ''})"

    def differences(self, other: "DeviceIdentity") -> list[str]:
        """Identifying facts that differ, as 'key: ours vs theirs' ('unknown' where one side did
        not record it); facts unknown on both sides are not compared."""
        if self.kind != other.kind:
            return [f"kind: {self.kind} vs {other.kind}"]
        out = []
        for key in IDENTIFYING.get(self.kind, ()):
            a, b = self.facts.get(key), other.facts.get(key)
            if a is None and b is None:
                continue
            if a is None or b is None:
                out.append(f"{key}: {_shown(a)} vs {_shown(b)}")
                continue
            if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
                a, b = sorted(map(str, a)), sorted(map(str, b))
                if a != b:
                    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
                    out.append(f"{key}: {' '.join(only_a) or '-'} only in the first, "
                               f"{' '.join(only_b) or '-'} only in the second")
                continue
            if a != b:
                out.append(f"{key}: {a} vs {b}")
        return out

    def matches(self, other: "DeviceIdentity") -> bool:
        return not self.differences(other)

    @property
    def emulated(self) -> bool:
        """An emulator (an Android emulator, or an ARM device under qemu-user): what it runs
        computes as the device's kernels compute, but its timings are the emulator's."""
        return bool(self.facts.get("emulated"))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DeviceIdentity":
        return cls(kind=str(d.get("kind", "host")), facts=dict(d.get("facts", {})))


def _shown(value) -> str:
    """A fact as the messages print it: unknown when not recorded, a list space-joined (none when empty)."""
    if value is None:
        return "unknown"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "none"
    return str(value)


@dataclass
class DeviceMatch:
    """A profile's device compared with the device a command runs on (or measures on)."""

    profile_device: DeviceIdentity
    this_device: DeviceIdentity
    differences: list

    @property
    def matches(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict:
        return {"device_match": self.matches, "profile_device": self.profile_device.describe(),
                "this_device": self.this_device.describe(), "differences": self.differences}

    def warning(self) -> str:
        """One plain paragraph for a prediction made with another device's table."""
        return (f"the profile describes another device: {self.profile_device.describe()}; this is "
                f"{self.this_device.describe()} (differs in {'; '.join(self.differences)}). Its "
                f"predictions are for the profile's device, not for this one, and are not compared "
                f"with latencies measured here.")


class EmulatedDevice(MobilepruneError, ValueError):
    """A latency asked of an emulated device."""


def refuse_emulated(identity: DeviceIdentity, device: str, doing: str) -> None:
    """Refuse ``doing`` (a latency source: profiling, a prediction or budget checked by
    measurement) on an emulated device, before anything is measured."""
    if identity.emulated:
        raise EmulatedDevice(
            f"{device} is an emulated device ({identity.describe()}; ro.kernel.qemu=1): its timings are the "
            f"emulator's on its host, not a device's, so {doing} on it is refused. Outputs computed there are "
            f"real (export --device checks parity on it, bench runs artifacts); latencies need a real device")


def compare(profile_device: DeviceIdentity, this_device: DeviceIdentity) -> DeviceMatch:
    return DeviceMatch(profile_device, this_device, profile_device.differences(this_device))


def host_identity() -> DeviceIdentity:
    """This machine: CPU model, architecture, the kernel-relevant ISA flags, cores, OS."""
    cpu, flags, ids = None, set(), {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "model name" and cpu is None:
                cpu = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(value.split())
            elif key in CPU_ID_FIELDS and key not in ids:
                ids[key] = value.strip()
    except OSError:
        pass
    return DeviceIdentity("host", {
        "cpu": cpu or platform.processor() or platform.machine(),
        # VMs often name every generation alike ("AMD EPYC"; two such machines here ran
        # MobileNetV2 in 2.95 and 6.8 ms): family/model/stepping tell generations apart.
        "cpu_id": " ".join(f"{k.split()[-1]} {ids[k]}" for k in CPU_ID_FIELDS if k in ids) or None,
        "arch": platform.machine(),
        "isa": [f for f in KERNEL_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "os": platform.system(),
    })


def legacy_identity(cpu: str) -> DeviceIdentity:
    """The identity of a schema-1 profile, which recorded the CPU model only."""
    return DeviceIdentity("host", {"cpu": cpu, "cpu_id": None, "arch": None, "isa": None, "cores": None, "os": None})
