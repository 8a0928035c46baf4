"""Plotly figures (plain dicts) for the analytics pages; Plotly's script is served from the installed package.

Plotly runs under the strict CSP (no inline styles) because it finds its two style hooks already taken:
a `<link id="plotly.js-style-global" class="no-inline-styles">` (our analytics.css carries the few rules it
needs) and an element with the id of each style block it would otherwise inject, read from the bundle here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

BRAND, ACCENT, SOFT = "#3547d8", "#e07a1f", "#9aa6f0"
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13, "color": "#1d2433"}
CONFIG = {"displayModeBar": False, "responsive": True}
_STYLE_GUARD = re.compile(
    rb'getElementById\("([0-9a-f]{32,64})"\)\)\{var \w+=document\.createElement\("style"\)'
)


@lru_cache(maxsize=1)
def plotly_bundle() -> tuple[Path, str, tuple[str, ...]]:
    """The installed plotly.min.js, its version, and the ids of the style blocks it injects unless present."""
    import plotly  # noqa: PLC0415 - only the analytics pages need it

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    return (
        path,
        plotly.__version__,
        tuple(dict.fromkeys(m.decode() for m in _STYLE_GUARD.findall(path.read_bytes()))),
    )


def _layout(**extra) -> dict:
    """The shared look: transparent background, system font, legend on top, tight margins."""
    layout = {
        "font": FONT,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "margin": {"l": 56, "r": 56, "t": 36, "b": 48},
        "hovermode": "x unified",
        "legend": {"orientation": "h", "x": 0, "y": 1.14},
        "bargap": 0.25,
    }
    layout.update(extra)
    return layout


def funnel_figure(stats: dict) -> dict:
    """Share of visits that reached each slide (bars) with the questions asked on it (line, right axis)."""
    slides = stats["slides"]
    x = [str(s["slide"]) for s in slides]
    titles = [s["title"] or f"Slide {s['slide']}" for s in slides]
    return {
        "data": [
            {
                "type": "bar",
                "name": "Visits that reached the slide",
                "x": x,
                "y": [round(s["reached_rate"] * 100, 1) for s in slides],
                "marker": {"color": BRAND},
                "customdata": [[t, s["reached"]] for t, s in zip(titles, slides)],
                "hovertemplate": "%{customdata[0]}: %{y:.0f}% (%{customdata[1]} visits)<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Questions asked",
                "x": x,
                "y": [s["questions"] for s in slides],
                "yaxis": "y2",
                "line": {"color": ACCENT, "width": 3},
                "marker": {"size": 8},
                "hovertemplate": "%{y} questions<extra></extra>",
            },
        ],
        "layout": _layout(
            xaxis={"title": {"text": "Slide"}, "type": "category"},
            yaxis={
                "title": {"text": "Visits that got this far"},
                "range": [0, 105],
                "ticksuffix": "%",
                "gridcolor": "#e7eaf0",
            },
            yaxis2={
                "title": {"text": "Questions"},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "showgrid": False,
                "dtick": max(1, round(max([s["questions"] for s in slides] or [0]) / 5)),
            },
        ),
    }


def time_figure(stats: dict) -> dict:
    """Average and median visible seconds per slide, over the visits that viewed it."""
    slides = stats["slides"]
    x = [str(s["slide"]) for s in slides]
    titles = [s["title"] or f"Slide {s['slide']}" for s in slides]
    return {
        "data": [
            {
                "type": "bar",
                "name": "Average",
                "x": x,
                "y": [s["visible_seconds_avg"] for s in slides],
                "marker": {"color": BRAND},
                "customdata": titles,
                "hovertemplate": "%{customdata}: average %{y:.1f} s<extra></extra>",
            },
            {
                "type": "bar",
                "name": "Median",
                "x": x,
                "y": [s["visible_seconds_median"] for s in slides],
                "marker": {"color": SOFT},
                "hovertemplate": "median %{y:.1f} s<extra></extra>",
            },
        ],
        "layout": _layout(
            barmode="group",
            xaxis={"title": {"text": "Slide"}, "type": "category"},
            yaxis={"title": {"text": "Seconds visible"}, "rangemode": "tozero", "gridcolor": "#e7eaf0"},
        ),
    }


def timeline_figure(timeline: dict) -> dict:
    """One visit's stays in order (bars of visible seconds), with the questions asked during each."""
    stays = timeline["stays"]
    labels = [f"{i}. slide {s['slide']}" for i, s in enumerate(stays, 1)]
    seconds = [s["visible_seconds"] for s in stays]
    asked = [
        (label, sec, len(s["questions"])) for label, sec, s in zip(labels, seconds, stays) if s["questions"]
    ]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": "Seconds visible",
                "y": labels,
                "x": seconds,
                "marker": {"color": BRAND},
                "hovertemplate": "%{y}: %{x:.1f} s<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": "Questions asked",
                "y": [a[0] for a in asked],
                "x": [a[1] for a in asked],
                "text": [f"{a[2]} question{'s' if a[2] != 1 else ''}" for a in asked],
                "textposition": "middle right",
                "cliponaxis": False,
                "marker": {"color": ACCENT, "size": 12, "symbol": "circle"},
                "hovertemplate": "%{text} asked<extra></extra>",
            },
        ],
        "layout": _layout(
            hovermode="closest",
            height=max(240, 34 * len(stays) + 90),
            margin={"l": 96, "r": 110, "t": 36, "b": 48},
            yaxis={"autorange": "reversed", "type": "category"},
            xaxis={"title": {"text": "Seconds visible"}, "rangemode": "tozero", "gridcolor": "#e7eaf0"},
        ),
    }
