"""The report's charts as inline SVG: nothing to load, nothing fetched, no script needed.

Each function takes plain numbers from the report data and returns one ``<svg>`` element.
Every mark has a ``<title>`` with its exact value (a tooltip in browsers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

__all__ = [
    "boxplots",
    "cost_quality",
    "grouped_bars",
    "heatmap",
    "histograms",
    "mean_panels",
    "radar",
    "win_matrix",
]

PALETTE = (
    "#4269d0",
    "#efb118",
    "#ff725c",
    "#6cc5b0",
    "#3ca951",
    "#ff8ab7",
    "#a463f2",
    "#97bbf5",
    "#9c6b4e",
    "#9498a0",
)
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" {FONT}>'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(text)}</text>'


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _legend(models: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, m in enumerate(models):
        out.append(
            f'<rect x="{x:.1f}" y="{y + i * 16 - 9:.1f}" width="10" height="10" fill="{color(i)}"/>'
        )
        out.append(_text(x + 14, y + i * 16, m))
    return out


def mean_panels(panels: list[dict[str, Any]], models: Sequence[str]) -> str:
    """One panel per metric: each model's mean with its 95% interval as a whisker.
    ``panels``: {metric, bars: [{model, mean, low, high}]}."""
    pw, ph, pad = 220.0, 180.0, 36.0
    body: list[str] = []
    for p_i, panel in enumerate(panels):
        ox = p_i * pw
        bars = [b for b in panel["bars"] if b["mean"] is not None]
        top = max([b["high"] if b["high"] is not None else b["mean"] for b in bars] + [1e-9])
        scale = (ph - 2 * pad) / top
        body.append(_text(ox + pw / 2, 14, panel["metric"], "middle", 'font-weight="600"'))
        base = ph - pad
        body.append(
            f'<line x1="{ox + 20:.1f}" x2="{ox + pw - 10:.1f}" y1="{base}" '
            f'y2="{base}" stroke="#999"/>'
        )
        width = (pw - 40) / max(1, len(models))
        for b in bars:
            i = list(models).index(b["model"])
            x = ox + 25 + i * width
            h = b["mean"] * scale
            body.append(
                f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{width * 0.7:.1f}" '
                f'height="{h:.1f}" fill="{color(i)}"><title>{escape(b["model"])}: '
                f"{_fmt(b['mean'])}</title></rect>"
            )
            if b["low"] is not None and b["high"] is not None:
                cx = x + width * 0.35
                y1, y2 = base - b["low"] * scale, base - b["high"] * scale
                body.append(
                    f'<path d="M{cx:.1f},{y1:.1f}V{y2:.1f}M{cx - 4:.1f},{y1:.1f}'
                    f'h8M{cx - 4:.1f},{y2:.1f}h8" stroke="#222"><title>95% CI '
                    f"{_fmt(b['low'])} to {_fmt(b['high'])}</title></path>"
                )
            body.append(_text(x + width * 0.35, base - h - 4, _fmt(b["mean"]), "middle"))
    height = ph + 16 * len(models)
    body += _legend(models, 10, ph + 6)
    return _svg(max(pw * len(panels), 240), height, body, "Mean score by model, 95% CI")


def radar(axes: Sequence[str], series: list[dict[str, Any]]) -> str:
    """Normalised means (0..1) per metric, one polygon per model.
    ``series``: {model, values: [float | None per axis]}."""
    size, r = 360.0, 120.0
    cx, cy = size / 2, 170.0
    body: list[str] = []
    n = max(3, len(axes))

    def point(k: int, v: float) -> tuple[float, float]:
        a = -math.pi / 2 + 2 * math.pi * k / n
        return cx + math.cos(a) * r * v, cy + math.sin(a) * r * v

    for ring in (0.25, 0.5, 0.75, 1.0):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(k, ring) for k in range(n)))
        body.append(f'<polygon points="{pts}" fill="none" stroke="#ddd"/>')
    for k, name in enumerate(axes):
        x, y = point(k, 1.12)
        body.append(
            f'<line x1="{cx}" y1="{cy}" x2="{point(k, 1)[0]:.1f}" '
            f'y2="{point(k, 1)[1]:.1f}" stroke="#ddd"/>'
        )
        body.append(_text(x, y, name, "middle"))
    for i, s in enumerate(series):
        pts = " ".join(
            f"{x:.1f},{y:.1f}" for x, y in (point(k, v or 0.0) for k, v in enumerate(s["values"]))
        )
        body.append(
            f'<polygon points="{pts}" fill="{color(i)}" fill-opacity="0.15" '
            f'stroke="{color(i)}" stroke-width="2"><title>{escape(s["model"])}'
            f"</title></polygon>"
        )
    body += _legend([s["model"] for s in series], 10, size - 10)
    return _svg(size, size + 16 * len(series), body, "Metrics per model (normalised)")


def _shade(v: float) -> str:
    """White (0) to blue (1)."""
    v = min(1.0, max(0.0, v))
    return f"rgb({int(255 - 189 * v)},{int(255 - 150 * v)},{int(255 - 47 * v)})"


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    cells: dict[tuple[str, str], float],
    label: str,
    fmt: str = "{:.2f}",
) -> str:
    """A grid of values in 0..1 (missing cells are grey)."""
    cw, ch, left, top = 90.0, 28.0, 120.0, 40.0
    body: list[str] = []
    for j, c in enumerate(cols):
        body.append(_text(left + j * cw + cw / 2, top - 10, c, "middle"))
    for i, rname in enumerate(rows):
        body.append(_text(left - 8, top + i * ch + ch / 2 + 4, rname, "end"))
        for j, c in enumerate(cols):
            v = cells.get((rname, c))
            fill = "#eee" if v is None else _shade(v)
            text = "-" if v is None else fmt.format(v)
            body.append(
                f'<rect x="{left + j * cw:.1f}" y="{top + i * ch:.1f}" '
                f'width="{cw - 2:.1f}" height="{ch - 2:.1f}" fill="{fill}">'
                f"<title>{escape(rname)} / {escape(c)}: {text}</title></rect>"
            )
            ink = "#fff" if v is not None and v > 0.6 else "#222"
            body.append(
                _text(
                    left + j * cw + cw / 2,
                    top + i * ch + ch / 2 + 4,
                    text,
                    "middle",
                    f'fill="{ink}"',
                )
            )
    return _svg(left + cw * len(cols) + 10, top + ch * len(rows) + 10, body, label)


def boxplots(boxes: list[dict[str, Any]], label: str, unit: str) -> str:
    """Horizontal boxes: whiskers p5..p95, box p25..p75, line at p50."""
    left, row, width = 120.0, 30.0, 420.0
    high = max([b["p95"] for b in boxes if b["p95"] is not None] + [1e-9])
    scale = width / high
    body: list[str] = []
    for i, b in enumerate(boxes):
        y = 20 + i * row
        body.append(_text(left - 8, y + 14, b["model"], "end"))
        if b["p50"] is None:
            body.append(_text(left, y + 14, "no data"))
            continue
        x = {k: left + b[k] * scale for k in ("p5", "p25", "p50", "p75", "p95")}
        body.append(f'<path d="M{x["p5"]:.1f},{y + 10}H{x["p95"]:.1f}" stroke="#555"/>')
        body.append(
            f'<rect x="{x["p25"]:.1f}" y="{y + 2}" width="{x["p75"] - x["p25"]:.1f}" '
            f'height="16" fill="{color(i)}" fill-opacity="0.7"><title>{escape(b["model"])}'
            f": p25 {_fmt(b['p25'])}, p50 {_fmt(b['p50'])}, p75 {_fmt(b['p75'])} {unit}"
            f"</title></rect>"
        )
        body.append(f'<path d="M{x["p50"]:.1f},{y}v20" stroke="#000" stroke-width="2"/>')
        body.append(_text(x["p95"] + 4, y + 14, f"p95 {_fmt(b['p95'])} {unit}"))
    body.append(_text(left, 20 + len(boxes) * row + 12, f"0 to {_fmt(high)} {unit}"))
    return _svg(left + width + 120, 40 + len(boxes) * row, body, label)


def cost_quality(points: list[dict[str, Any]], models: Sequence[str]) -> str:
    """Cost per answer against mean normalised quality; the Pareto front is joined."""
    w, h, pad = 480.0, 300.0, 50.0
    priced = [p for p in points if p["cost_per_answer"] is not None]
    xmax = max([p["cost_per_answer"] for p in priced] + [1e-12]) * 1.1

    def xy(p: dict[str, Any]) -> tuple[float, float]:
        return (
            pad + p["cost_per_answer"] / xmax * (w - 2 * pad),
            h - pad - p["quality"] * (h - 2 * pad),
        )

    body = [
        f'<path d="M{pad},{pad / 2}V{h - pad}H{w - pad / 2}" fill="none" stroke="#999"/>',
        _text(w / 2, h - 12, "cost per answer (USD)", "middle"),
        _text(14, h / 2, "quality (0..1)", "middle", f'transform="rotate(-90 14 {h / 2})"'),
        _text(pad, h - pad + 14, "0", "middle"),
        _text(w - pad, h - pad + 14, f"{xmax:.2g}", "middle"),
        _text(pad - 6, pad + 4, "1", "end"),
    ]
    front = sorted((p for p in priced if p["pareto"]), key=lambda p: p["cost_per_answer"])
    if len(front) > 1:
        d = "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in map(xy, front))
        body.append(
            f'<path d="{d}" fill="none" stroke="#222" stroke-dasharray="4 3">'
            "<title>Pareto front</title></path>"
        )
    for p in priced:
        i = list(models).index(p["model"])
        x, y = xy(p)
        ring = ' stroke="#000" stroke-width="2"' if p["pareto"] else ""
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{color(i)}"{ring}>'
            f"<title>{escape(p['model'])}: ${p['cost_per_answer']:.6f} per answer, "
            f"quality {p['quality']:.3f}{' (Pareto)' if p['pareto'] else ''}"
            "</title></circle>"
        )
        body.append(_text(x + 10, y + 4, p["model"]))
    if not priced:
        body.append(_text(w / 2, h / 2, "no model has a known price", "middle"))
    return _svg(w, h, body, "Cost against quality, Pareto front")


def grouped_bars(groups: list[dict[str, Any]], models: Sequence[str], label: str) -> str:
    """Pass rates (0..1) by metric and model with Wilson whiskers.
    ``groups``: {metric, bars: [{model, rate, low, high}]}."""
    gw, h, pad = 160.0, 220.0, 30.0
    body: list[str] = []
    base = h - pad
    bw = (gw - 30) / max(1, len(models))
    for g_i, g in enumerate(groups):
        ox = 40 + g_i * gw
        body.append(_text(ox + (gw - 30) / 2, h - 8, g["metric"], "middle"))
        for b in g["bars"]:
            i = list(models).index(b["model"])
            x = ox + i * bw
            hh = b["rate"] * (h - 2 * pad)
            body.append(
                f'<rect x="{x:.1f}" y="{base - hh:.1f}" width="{bw * 0.8:.1f}" '
                f'height="{hh:.1f}" fill="{color(i)}"><title>{escape(b["model"])} '
                f"{escape(g['metric'])}: {b['rate']:.1%}</title></rect>"
            )
            if b["low"] is not None:
                cx = x + bw * 0.4
                y1, y2 = base - b["low"] * (h - 2 * pad), base - b["high"] * (h - 2 * pad)
                body.append(f'<path d="M{cx:.1f},{y1:.1f}V{y2:.1f}" stroke="#222"/>')
    body.append(f'<path d="M36,{pad}V{base}H{40 + gw * len(groups)}" fill="none" stroke="#999"/>')
    body.append(_text(32, pad + 4, "100%", "end"))
    body.append(_text(32, base, "0%", "end"))
    body += _legend(models, 44, h + 14)
    return _svg(max(60 + gw * len(groups), 240), h + 16 * len(models) + 10, body, label)


def win_matrix(models: Sequence[str], rates: dict[tuple[str, str], float]) -> str:
    """Row beats column: the share of shared queries where the row model scored higher."""
    return heatmap(models, models, rates, "Head-to-head win rate (row beats column)", "{:.0%}")


def histograms(hists: list[dict[str, Any]], models: Sequence[str]) -> str:
    """Small multiples: the distribution of each metric's values, per model."""
    pw, ph = 170.0, 110.0
    per_row = 4
    body: list[str] = []
    for k, hst in enumerate(hists):
        ox, oy = (k % per_row) * pw, (k // per_row) * (ph + 20)
        i = list(models).index(hst["model"])
        top = max(hst["counts"]) or 1
        bw = (pw - 20) / len(hst["counts"])
        body.append(_text(ox + 10, oy + 12, f"{hst['metric']} / {hst['model']}"))
        for j, c in enumerate(hst["counts"]):
            hh = c / top * (ph - 30)
            lo = hst["low"] + (hst["high"] - hst["low"]) * j / len(hst["counts"])
            body.append(
                f'<rect x="{ox + 10 + j * bw:.1f}" y="{oy + ph - hh:.1f}" '
                f'width="{bw - 1:.1f}" height="{hh:.1f}" fill="{color(i)}">'
                f"<title>{c} scores from {_fmt(lo)}</title></rect>"
            )
        body.append(_text(ox + 10, oy + ph + 12, _fmt(hst["low"])))
        body.append(_text(ox + pw - 10, oy + ph + 12, _fmt(hst["high"]), "end"))
    rows = max(1, math.ceil(len(hists) / per_row))
    return _svg(
        pw * min(per_row, max(1, len(hists))), rows * (ph + 20) + 10, body, "Score distributions"
    )
