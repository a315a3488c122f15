"""The report's figures (matplotlib, drawn off-screen) as PNG bytes, inlined by report/page.py."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: figures are only ever written to PNG
import matplotlib.pyplot as plt  # noqa: E402

BEFORE, AFTER, STANDS_OUT = "#9bb7d4", "#1f4e79", "#c0392b"
MOST_BARS = 60  # groups per figure: more are unreadable; the tables below them hold every row
MOST_LAYERS = 25  # layers per figure (four bars each), the slowest of the original


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def widths(groups: list[dict]) -> bytes:
    """Channels per group before (light) and kept (dark), as ACPLI's figure of pruned widths."""
    shown = groups[:MOST_BARS]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(shown) + 2), 3.2))
    x = range(len(shown))
    ax.bar(x, [g["channels"] for g in shown], color=BEFORE, label="original")
    ax.bar(x, [g["kept"] for g in shown], color=AFTER, label="pruned")
    ax.set_xticks(list(x), [str(g["group"]) for g in shown], fontsize=7)
    ax.set_xlabel("channel group" + (f" (first {MOST_BARS} of {len(groups)})" if len(groups) > len(shown) else ""))
    ax.set_ylabel("channels")
    ax.legend(frameon=False)
    return png(fig)


def layer_latency(rows: list[dict], measured: bool) -> bytes:
    """Per layer, original vs pruned (predicted; measured beside when it was), the slowest
    layers of the original first; layers that did not get faster are labelled in red."""
    shown = sorted(rows, key=lambda r: -r["predicted_ms"][0])[:MOST_LAYERS]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * len(shown) + 1)))
    y = range(len(shown))
    series = [("predicted_ms", 0, BEFORE, "predicted, original"), ("predicted_ms", 1, AFTER, "predicted, pruned")]
    if measured:
        series += [("measured_ms", 0, "#f5cba7", "measured, original"), ("measured_ms", 1, "#d35400", "measured, pruned")]
    height = 0.8 / len(series)
    for k, (key, side, color, label) in enumerate(series):
        values = [(r[key][side] if r[key] and r[key][side] is not None else 0.0) for r in shown]
        ax.barh([i + k * height for i in y], values, height=height, color=color, label=label)
    ax.set_yticks([i + 0.4 - height / 2 for i in y], [f"{r['module']} ({r['op']})" for r in shown], fontsize=7)
    for tick, r in zip(ax.get_yticklabels(), shown):
        if r["not_faster"]:
            tick.set_color(STANDS_OUT)
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    return png(fig)


def staircase(case: dict) -> bytes:
    """One layer's table staircase: measured points, the priced curve, its two widths."""
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    if case["curve"]:
        w, p = zip(*case["curve"])
        ax.step(w, p, where="post", color=AFTER, label="priced")
    if case["points"]:
        c, ms = zip(*case["points"])
        at = f" (cin {case['points_cin']})" if case["points_cin"] else ""
        ax.plot(c, ms, "o", color="#333333", markersize=3, label="measured" + at)
    for width, style, name in zip(case["widths"], (":", "--"), ("original", "pruned")):
        ax.axvline(width, linestyle=style, color=STANDS_OUT if case["not_faster"] else "#777777", label=name)
    ax.set_title(f"{case['module']} ({case['op']}, tile {case['tile'] or '-'})", fontsize=8)
    ax.set_xlabel("output channels")
    ax.set_ylabel("table ms")
    ax.legend(frameon=False, fontsize=6)
    return png(fig)


def probe(kind: str, sweep: dict, tile: int | None) -> bytes:
    """A profile's tile probe: the probed layer's time at each width, and its tile."""
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    widths = sorted(int(w) for w in sweep)
    ax.plot(widths, [sweep[str(w)] if str(w) in sweep else sweep[w] for w in widths], "o-", color=AFTER,
            markersize=3)
    if tile:
        for m in range(tile, max(widths) + 1, tile):
            ax.axvline(m, color="#dddddd", linewidth=0.8, zorder=0)
    ax.set_title(f"{kind} probe (tile {tile or '-'})", fontsize=8)
    ax.set_xlabel("channels")
    ax.set_ylabel("ms")
    return png(fig)


def accuracy_vs_latency(points: list[dict], budgets: list[float], title: str = "") -> bytes:
    """Top-1 against measured latency per contender (mean and spread over seeds), budget lines."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for p in points:
        ax.errorbar(p["ms"], p["top1"], xerr=p.get("ms_err"), yerr=p.get("top1_err"), fmt="o", capsize=3,
                    label=p["name"])
    for b in budgets:
        ax.axvline(b, color="#777777", linestyle="--", linewidth=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.legend(frameon=False, fontsize=7)
    return png(fig)
