"""What the report of a device profile shows: whose table it is, its tile probes, and per layer
configuration the measured points and the price the latency cost gives between them."""
from __future__ import annotations

from ..cost.latency import staircase_prices
from ..devices import runtimes
from ..devices.latency_table import DeviceProfile
from ..graph.kinds import kind
from ..graph.layers import SIGNATURE_FIELDS

CONFIGURATIONS = 8  # layer configurations drawn: those with the most measured rows


def profile_report(profile: DeviceProfile) -> dict:
    meta, table = profile.meta, profile.table
    configs = []
    for sig, rows in sorted(table.groupby(list(SIGNATURE_FIELDS)), key=lambda kv: -len(kv[1]))[:CONFIGURATIONS]:
        attrs = dict(zip(SIGNATURE_FIELDS, sig))
        two = kind(attrs["op"]).two_widths
        tiled = kind(attrs["op"]).tiles
        tile = meta.tiles.get(tiled) if tiled else None
        if two:  # the widest input width with the most output widths measured
            counts = rows.groupby("cin")["cout"].nunique()
            at = int(max(counts.index, key=lambda c: (counts[c], c)))
            points = rows[rows["cin"] == at].sort_values("cout")
        else:
            at, points = None, rows[rows["cin"] == rows["cout"]].sort_values("cout")
        full = int(points["cout"].max())
        widths = list(range(1, full + 1))
        prices = staircase_prices(rows, two, tile, at if two else 0, widths, full)
        name = ", ".join(f"{f}={v}" for f, v in attrs.items() if f != "op" and v not in ("", 0))
        configs.append({"module": name, "op": attrs["op"], "tile": tile, "rows": len(rows), "points_cin": at,
                        "points": [[int(c), float(ms)] for c, ms in zip(points["cout"], points["ms"])],
                        "curve": [[w, p] for w, p in zip(widths, prices) if p is not None],
                        "widths": [], "not_faster": False})
    return {"kind": "profile", "path": str(profile.path), "device": meta.device_identity.describe(),
            "identity": meta.identity, "runtime": runtimes.get(meta.runtime).label,
            "runtime_version": meta.runtime_version, "threads": meta.threads, "dtype": meta.dtype,
            "block": meta.block, "date": meta.date, "rows": len(table), "tiles": dict(meta.tiles),
            "probes": {k: dict(v) for k, v in meta.tile_probes.items()}, "reference": dict(meta.reference),
            "models": {spec: {"measured_ms": ms, "layers": meta.layer_counts.get(spec)}
                       for spec, ms in meta.measured_ms.items()},
            "configurations": configs}
