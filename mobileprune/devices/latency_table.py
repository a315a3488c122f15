"""DeviceProfile: a latency table measured on one (device, runtime, threads, dtype).

Stored as ``NAME.csv`` (one row per measured op configuration, pandas) and ``NAME.json``
(metadata). Rows are appended and flushed one at a time, so a profiling run killed at any point
resumes from the rows already on disk (see ``ProfileWriter``); several processes may extend one
profile at once (two prunes measuring missing rows on one device): appends and metadata writes
hold a lock on the CSV, and a row another process wrote meanwhile is not written again. The
schema is documented in device_profiles/README.md.
"""
from __future__ import annotations

import contextlib
import csv as csv_module
import fcntl
import hashlib
import io
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import MobilepruneError
from . import runtimes
from .identity import DeviceIdentity, compare, legacy_identity

SCHEMA_VERSION = 2  # 2: metadata records the device's identity (schema 1 had the CPU model only)
COLUMNS = ["key", "op", "k", "stride", "padding", "dilation", "h", "w", "act", "group_width", "pattern",
           "cin", "cout", "ms", "total_ms", "boundary_ms", "spread", "repeats"]
_NUMERIC = ["k", "stride", "padding", "dilation", "h", "w", "group_width", "cin", "cout",
            "ms", "total_ms", "boundary_ms", "spread", "repeats"]


class ProfileError(MobilepruneError, ValueError):
    """A profile that is missing, corrupt, or made for another runtime version or schema."""


@dataclass
class ProfileMeta:
    device: str  # how the device was reached: host, adb:SERIAL, adb:HOST:PORT
    cpu: str
    runtime: str  # a name in devices.runtimes.RUNTIMES
    runtime_version: str
    threads: int
    dtype: str = "float32"
    block: int = 8  # the channel step pruning keeps: the conv tile (devices/blockprobe.py)
    date: str = ""
    mobileprune_version: str = ""
    schema: int = SCHEMA_VERSION
    overheads_ms: dict = field(default_factory=dict)  # model spec -> calibrated per-call overhead
    measured_ms: dict = field(default_factory=dict)  # model spec -> whole-model latency at calibration
    layer_counts: dict = field(default_factory=dict)  # model spec -> priced layers (per-layer calibration)
    fixed_shares: dict = field(default_factory=dict)  # model spec -> share of its latency widths do not change
    tiles: dict = field(default_factory=dict)  # layer kind -> channel tile its width is computed in (blockprobe.py)
    tile_probes: dict = field(default_factory=dict)  # layer kind -> {width: ms} of its probe sweep
    reference: dict = field(default_factory=dict)  # {"model", "ms"}: the speed reference (devices/reference.py)
    call_overhead_ms: float = 0.0  # one call of a micro-program besides its op (rows without per-op times)
    identity: dict = field(default_factory=dict)  # DeviceIdentity.to_dict(): which device this table is true for

    @property
    def device_identity(self) -> DeviceIdentity:
        return DeviceIdentity.from_dict(self.identity) if self.identity else legacy_identity(self.cpu)

    @classmethod
    def read(cls, meta_path) -> "ProfileMeta":
        """A profile's NAME.json; ProfileError if it is not valid JSON or lacks the basics."""
        try:
            return cls.from_dict(json.loads(Path(meta_path).read_text()))
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{meta_path} is not valid JSON: {exc}") from exc

    @classmethod
    def from_dict(cls, d: dict) -> "ProfileMeta":
        missing = [k for k in ("device", "cpu", "runtime", "runtime_version", "threads") if k not in d]
        if missing:
            raise ProfileError(f"profile metadata lacks {', '.join(missing)}")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if known.get("schema") == 1:
            known.update(_from_schema_1(d))
        return cls(**known)


def _from_schema_1(d: dict) -> dict:
    """Schema 1 recorded the CPU model only, one probe sweep (the conv's) and one block that the
    latency cost applied to convs, linears and depthwise convs alike: keep exactly that."""
    block = d.get("block", 8)
    return {"schema": SCHEMA_VERSION, "identity": legacy_identity(d["cpu"]).to_dict(),
            "tiles": {"conv": block, "dwconv": block},
            "tile_probes": {"conv": d["block_probe"]} if d.get("block_probe") else {}}


@dataclass
class DeviceProfile:
    meta: ProfileMeta
    table: pd.DataFrame
    path: Path | None = None

    @staticmethod
    def paths(path) -> tuple[Path, Path]:
        path = Path(path)
        base = path.with_suffix("") if path.suffix in (".csv", ".json") else path
        return base.with_suffix(".csv"), base.with_suffix(".json")

    @classmethod
    def load(cls, path, check_runtime: bool = True) -> "DeviceProfile":
        csv, meta_path = cls.paths(path)
        if not csv.is_file() or not meta_path.is_file():
            raise ProfileError(f"profile {csv.with_suffix('')} needs both {csv.name} and {meta_path.name}")
        meta = ProfileMeta.read(meta_path)
        if meta.schema != SCHEMA_VERSION:
            raise ProfileError(f"{meta_path}: schema {meta.schema}, this mobileprune reads schema "
                               f"{SCHEMA_VERSION}; re-profile the device")
        computes_in = runtimes.get(meta.runtime).dtype
        if meta.dtype != computes_in:  # its rows would be priced as what they were not measured in
            raise ProfileError(f"{meta_path}: dtype {meta.dtype!r}, but its runtime {meta.runtime} computes in "
                               f"{computes_in}: a corrupt profile; re-profile the device")
        if check_runtime:
            installed = runtimes.get(meta.runtime).version()
            if installed != meta.runtime_version:
                raise ProfileError(
                    f"{csv.name} was measured with {meta.runtime} {meta.runtime_version}, this "
                    f"environment has {installed}: latencies of another runtime version are not "
                    f"trusted; re-profile, or load with check_runtime=False to compare")
        table = read_table(csv)
        return cls(meta, table, csv)

    def save(self, path) -> Path:
        csv, meta_path = self.paths(path)
        csv.parent.mkdir(parents=True, exist_ok=True)
        self.table[COLUMNS].to_csv(csv, index=False)
        meta_path.write_text(json.dumps(asdict(self.meta), indent=1, sort_keys=True))
        self.path = csv
        return csv

    def save_meta(self) -> None:
        """Write the metadata, keeping what another process recorded meanwhile (e.g. the
        calibration of a model it measured): the per-model entries are merged, ours first."""
        csv, meta_path = self.paths(self.path)
        with locked(csv):
            if meta_path.is_file():
                self.meta = merged_meta(ProfileMeta.read(meta_path), self.meta)
            meta_path.write_text(json.dumps(asdict(self.meta), indent=1, sort_keys=True))


PER_MODEL = ("overheads_ms", "measured_ms", "layer_counts", "fixed_shares")  # ProfileMeta's {spec: ...} fields


def merged_meta(old: ProfileMeta, new: ProfileMeta) -> ProfileMeta:
    """``new`` with the per-model entries and the device facts of ``old`` it lacks."""
    for name in PER_MODEL:
        setattr(new, name, {**getattr(old, name), **getattr(new, name)})
    new.tiles = new.tiles or old.tiles
    new.tile_probes = new.tile_probes or old.tile_probes
    new.reference = new.reference or old.reference
    new.call_overhead_ms = new.call_overhead_ms or old.call_overhead_ms
    return new


@contextlib.contextmanager
def locked(csv: Path):
    """An exclusive lock on a profile (its CSV, created if missing) across processes: an advisory
    flock, which every writer here takes (an editor or a copy ignores it)."""
    csv.parent.mkdir(parents=True, exist_ok=True)
    with open(csv, "a", encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_table(csv: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(csv)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ProfileError(f"{csv} is not a readable CSV: {exc}") from exc
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ProfileError(f"{csv} lacks columns {', '.join(missing)} (see device_profiles/README.md)")
    for col in _NUMERIC:
        bad = pd.to_numeric(table[col], errors="coerce").isna() & table[col].notna()
        if bad.any():
            raise ProfileError(f"{csv}: column {col} has non-numbers (row {int(bad.idxmax()) + 2})")
        table[col] = pd.to_numeric(table[col])
    if table["ms"].isna().any() or (table["ms"] < 0).any():
        raise ProfileError(f"{csv}: column ms must be a non-negative number on every row")
    dup = table["key"].duplicated()
    if dup.any():  # (two writers before writes were locked): each key's first row is what was measured first
        keys = list(dict.fromkeys(table["key"][dup]))
        warnings.warn(f"{csv}: {len(keys)} key(s) appear more than once, the first row of each kept: "
                      f"{', '.join(map(str, keys[:5]))}{' ...' if len(keys) > 5 else ''}", stacklevel=2)
        table = table[~dup].reset_index(drop=True)
    for col in ("act", "pattern"):  # text columns; pandas reads an all-empty one as float NaN
        table[col] = table[col].astype(object).fillna("")
    return table


class ProfileWriter:
    """Append rows to a profile's CSV, one flushed line at a time; resumes what is there.

    A run killed mid-write can leave a partial last line: it is cut off on open, so the row is
    measured again and no row is duplicated or lost.
    """

    def __init__(self, path, meta: ProfileMeta) -> None:
        self.csv, self.meta_path = DeviceProfile.paths(path)
        with locked(self.csv):
            if self.meta_path.is_file():
                old = ProfileMeta.read(self.meta_path)
                check_same_device(old, meta.device_identity, self.csv, meta.device)
                for k in ("runtime", "runtime_version", "threads", "dtype", "block"):
                    if getattr(old, k) != getattr(meta, k):
                        raise ProfileError(f"{self.csv} was measured with {k}={getattr(old, k)!r}, "
                                           f"this run has {getattr(meta, k)!r}: use another --out")
                meta = merged_meta(old, meta)
            self.meta_path.write_text(json.dumps(asdict(meta), indent=1, sort_keys=True))
            self.meta = meta  # what the rows are measured with (runtime, threads, call overhead)
            self._repair()
            self.keys = set(read_table(self.csv)["key"])
            self._read_up_to = self.csv.stat().st_size
        self._fh = open(self.csv, "a", encoding="utf-8")

    def _repair(self) -> None:
        if self.csv.stat().st_size == 0:
            with open(self.csv, "w", encoding="utf-8") as fh:
                fh.write(",".join(COLUMNS) + "\n")
            return
        data = self.csv.read_bytes()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.csv, "r+b") as fh:
                fh.truncate(cut)

    def add(self, row: dict) -> None:
        if row["key"] in self.keys:
            return
        line = pd.DataFrame([{c: row.get(c, "") for c in COLUMNS}]).to_csv(index=False, header=False)
        with locked(self.csv):
            self._catch_up()
            if row["key"] in self.keys:  # another process measured it meanwhile
                return
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._read_up_to = os.fstat(self._fh.fileno()).st_size
        self.keys.add(row["key"])

    def _catch_up(self) -> None:
        """The keys of rows other processes appended since this writer last looked."""
        with open(self.csv, "rb") as fh:
            fh.seek(self._read_up_to)
            new = fh.read()
        self._read_up_to += len(new)
        at = COLUMNS.index("key")
        self.keys.update(r[at] for r in csv_module.reader(io.StringIO(new.decode("utf-8"))) if len(r) > at)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_same_device(meta: ProfileMeta, device: DeviceIdentity, path, reached_as: str = "host") -> None:
    """Refuse to add measurements of ``device`` (reached as ``reached_as``: host, adb:...) to a
    profile of another device."""
    found = compare(meta.device_identity, device)
    if not found.matches:
        raise ProfileError(
            f"{path} is a profile of {found.profile_device.describe()}; this device is "
            f"{device.describe()} (differs in {'; '.join(found.differences)}). A latency table is a fact "
            f"about one device: rows measured here are never added to it. Profile this device with "
            f"`{profile_command(device, meta.runtime, meta.threads, reached_as)}`")


def default_profile_path(device: DeviceIdentity, runtime: str, threads: int, root="device_profiles") -> Path:
    """``root/SLUG-RUNTIME-Nt.csv``; if a profile of another device already holds that name (VMs
    of one CPU generation can still differ, e.g. in the CPU flags the hypervisor passes through),
    a short digest of this device's identifying facts is added, the same on every run here."""
    path = Path(root) / f"{device.slug}-{runtime}-{threads}t.csv"
    meta_path = path.with_suffix(".json")
    if meta_path.is_file():
        try:
            theirs = ProfileMeta.read(meta_path).device_identity
        except ProfileError:
            return path  # not a readable profile: extending it fails with its own error
        if not compare(theirs, device).matches:
            digest = hashlib.sha1(device.describe().encode()).hexdigest()[:6]
            path = path.with_name(f"{device.slug}-{digest}-{runtime}-{threads}t.csv")
    return path


def profile_command(device: DeviceIdentity, runtime: str, threads: int, reached_as: str = "host") -> str:
    return (f"mobileprune profile --device {reached_as} --runtime {runtime} --threads {threads} --model SPEC "
            f"--out {default_profile_path(device, runtime, threads)}")
