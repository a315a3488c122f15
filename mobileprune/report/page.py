"""One self-contained HTML page from a report dict: figures inlined as PNG data URIs, no scripts,
no network (it opens from a file, a CI artifact or an e-mail). Jinja2 escapes every text."""
from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import jinja2

from . import plots


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def figures(report: dict) -> dict:
    """The report's figures as data URIs, by name."""
    out = {}
    if report["kind"] == "model":
        if report["groups"]:
            out["widths"] = plots.widths(report["groups"])
        if report["layers"]:
            out["layers"] = plots.layer_latency(report["layers"], bool((report["per_op"] or {}).get("measured")))
        for i, case in enumerate(report["staircases"]):
            out[f"staircase{i}"] = plots.staircase(case)
    else:
        for name, sweep in report["probes"].items():
            out[f"probe_{name}"] = plots.probe(name, sweep, report["tiles"].get(name))
        for i, case in enumerate(report["configurations"]):
            out[f"staircase{i}"] = plots.staircase(case)
    return {name: _data_uri(png) for name, png in out.items()}


def render(report: dict) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(fmt=_fmt, pct=_pct)
    template = env.from_string(resources.files(__package__).joinpath("page.html.j2").read_text())
    return template.render(r=report, fig=figures(report))


def write(report: dict, out) -> Path:
    """The page at ``out`` (and the report's numbers beside it as ``out`` with .json)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report))
    out.with_suffix(".json").write_text(json.dumps(report, default=float, indent=1))
    return out
