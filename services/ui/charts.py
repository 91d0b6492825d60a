"""Plotly figures of the dashboard. Okabe-Ito colours (safe for colour-blind readers), and
every distinction carried by a second cue too: shape, hatching, sign or a word."""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from babel import Locale

from services.ui import formats

BLUE, VERMILLION, ORANGE, SKY, BLACK = "#0072B2", "#D55E00", "#E69F00", "#56B4E9", "#000000"
LIGHT_BLUE, LIGHT_ORANGE = "#D6E9F5", "#F9E1CC"
GREY = "#999999"  # clients whose outcome is not shown (too few to split safely)
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
DAYS_PER_YEAR = 365.25


# Plotly never wraps a text: it runs off the chart's edge. Each text is wrapped for the
# narrowest chart, ~250 px wide on a 320 px screen (WCAG reflow), at ~8.5 px per character
# of a 16 px title and ~7.5 px of a 13 px label; an x-axis title is centred on the plot
# area, which the y-axis's ticks and title push right.
TITLE_CHARS, LABEL_CHARS, AXIS_CHARS = 26, 30, 18
# Horizontal bars: the name above each bar (line height), the bar, the gap to the next name.
LINE_PX, BAR_PX, GAP_PX = 17, 18, 14


def clients(cell: dict[str, Any]) -> int:
    """A score bin's clients: repaid, defaulted, and those whose outcome is not shown (a
    side of the threshold too small to split by outcome)."""
    return int(cell["repaid"] + cell["defaulted"] + cell.get("hidden", 0))


def beside(x: float, low: float, high: float) -> str:
    """The side of a vertical line at ``x`` its label goes: towards the wider part of the
    axis, so the label never runs off the chart's edge."""
    return "right" if x - low <= (high - low) / 2 else "left"


def wrap(text: str, width: int = LABEL_CHARS) -> str:
    """Long labels on several lines (see TITLE_CHARS)."""
    return "<br>".join(textwrap.wrap(text, width, break_long_words=False)) or text


def lines(text: str) -> int:
    return text.count("<br>") + 1


def percent_suffix(lang: str) -> str:
    """The unit after a percentage on an axis, spaced as the locale writes it."""
    pattern = Locale.parse(formats.locale(lang)).percent_formats[None].pattern
    return "\u00a0%" if "\u00a0%" in pattern or " %" in pattern else "%"


def separators(lang: str) -> str:
    """Plotly's decimal mark and thousands separator, from the locale's own symbols."""
    symbols = Locale.parse(formats.locale(lang)).number_symbols["latn"]
    return f"{symbols['decimal']}{symbols['group']}"


def _layout(fig: go.Figure, title: str, height: int = 360, lang: str = "en") -> go.Figure:
    """The common look; ``height`` is the figure's with a 60 px top margin: a title of more
    lines or a legend above the plot makes the margin, and the figure, taller."""
    title = wrap(title, TITLE_CHARS)
    # The legend, when there is one, between the title and the plot: below, it ran into a
    # wrapped x-axis title.
    legend = sum(1 for trace in fig.data if getattr(trace, "showlegend", False) is not False) > 1
    top = 30 + 21 * lines(title) + (28 if legend else 0)
    fig.update_layout(
        separators=separators(lang),
        # From the top down: a title of several lines never runs into the plot below it.
        title={
            "text": title,
            "x": 0,
            "xanchor": "left",
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": 14},
            "font": {"size": 16},
        },
        template="plotly_white",
        height=height + top - 60,
        font={"family": FONT, "size": 13, "color": "#1a1a1a"},
        margin={"l": 10, "r": 20, "t": top, "b": 40},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
    )
    return fig


def gauge(
    probability: float, threshold: float, title: str, refused: bool, lang: str = "en"
) -> go.Figure:
    # Most probabilities sit near the threshold (~10%): a 0-100 scale would squash them.
    top = min(100.0, max(3 * threshold, 1.25 * probability) * 100)
    top = math.ceil(top / 5) * 5
    fig = go.Figure(
        go.Indicator(
            mode="gauge+number",
            value=round(probability * 100, 1),
            number={"suffix": percent_suffix(lang), "font": {"size": 40}, "valueformat": ".1f"},
            gauge={
                "axis": {"range": [0, top], "ticksuffix": percent_suffix(lang)},
                "bar": {"color": VERMILLION if refused else BLUE, "thickness": 0.35},
                "steps": [
                    {"range": [0, threshold * 100], "color": LIGHT_BLUE},
                    {"range": [threshold * 100, top], "color": LIGHT_ORANGE},
                ],
                "threshold": {
                    "line": {"color": BLACK, "width": 5},
                    "thickness": 0.9,
                    "value": threshold * 100,
                },
            },
        )
    )
    fig = _layout(fig, title, height=300, lang=lang)
    # The scale's end labels ("0%", "30%") sit beyond the arc's ends.
    fig.update_layout(margin={"l": 45, "r": 45})
    return fig


def _names_above_bars(fig: go.Figure, names: Sequence[str]) -> tuple[int, float]:
    """Horizontal bars (one category each, first on top) with each name on the line(s)
    above its bar, across the chart's width, instead of beside it as an axis label: beside,
    long names left a 320 px chart no room for the bars, and Plotly cut what did not fit.
    Returns the height the bars and their names take, and the bars' share of a row (the
    trace's width: 1 - gap)."""
    label_px = LINE_PX * max((lines(name) for name in names), default=1)
    pitch = label_px + BAR_PX + GAP_PX  # one row: name, bar, gap
    above = (LINE_PX * lines(names[0]) + 4) / pitch if names else 0  # over the first bar
    fig.update_yaxes(
        showticklabels=False,
        categoryorder="array",
        categoryarray=list(names),
        range=[len(names) - 0.5, -0.5 - above],
        autorange=False,
        showgrid=False,
    )
    for name in names:
        fig.add_annotation(
            x=0,
            xref="paper",
            xanchor="left",
            y=name,
            yanchor="bottom",
            yshift=BAR_PX / 2 + 1,
            text=name,
            align="left",
            showarrow=False,
        )
    return round((len(names) + above) * pitch), BAR_PX / pitch


def waterfall(
    rows: Sequence[tuple[str, float]],
    start: float,
    others: float,
    end: float,
    labels: dict[str, str],
    title: str,
    axis: str,
    lang: str = "en",
) -> go.Figure:
    """``rows``: (plain label with the client's value, change in percentage points),
    strongest first; ``start`` and ``end``: probabilities in % (views.probability_path)."""
    names = [labels["start"], *[label for label, _ in rows], labels["others"], labels["end"]]
    names = [wrap(name) for name in names]
    values = [start, *[value for _, value in rows], others, end]
    measures = ["absolute", *["relative"] * (len(rows) + 1), "total"]
    text = [
        formats.percent(start / 100, lang),
        *[formats.points(v, lang) for _, v in rows],
        formats.points(others, lang),
        formats.percent(end / 100, lang),
    ]
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=names,
            x=values,
            measure=measures,
            text=text,
            textposition="outside",
            cliponaxis=False,
            hoverinfo="skip",
            increasing={"marker": {"color": VERMILLION}},
            decreasing={"marker": {"color": BLUE}},
            totals={"marker": {"color": "#555555"}},
            connector={"line": {"color": "#888888"}},
        )
    )
    area, bar = _names_above_bars(fig, names)
    fig.update_layout(waterfallgap=1 - bar)
    # Bars from 0 % to the highest point of the path, with room for the labels outside.
    path = [start]
    for value in [*[v for _, v in rows], others]:
        path.append(path[-1] + value)
    fig.update_xaxes(
        title={"text": wrap(axis), "font": {"size": 12}},
        automargin=True,
        range=[0, 1.35 * max(path)],
        ticksuffix=percent_suffix(lang),
    )
    fig = _layout(fig, title, height=area + 60 + 90, lang=lang)
    fig.update_layout(margin={"b": 90})
    return fig


def _to_years(values: Sequence[float]) -> list[float]:
    return [-v / DAYS_PER_YEAR for v in values]


def distribution(
    population: dict[str, Any],
    client_value: Any,
    names: dict[str, str],
    title: str,
    y_axis: str,
    x_axis: str = "",
    lang: str = "en",
    category_names: dict[str, str] | None = None,
) -> go.Figure:
    """Share of each outcome group per bin (or category), client's value marked."""
    repaid, defaulted = population["repaid"], population["defaulted"]
    hidden = population.get("hidden") or [0] * len(repaid)
    total_r, total_d = max(sum(repaid), 1), max(sum(defaulted), 1)
    share_r = [100 * c / total_r for c in repaid]
    share_d = [100 * c / total_d for c in defaulted]
    share_h = [100 * c / max(sum(hidden), 1) for c in hidden]
    fig = go.Figure()
    marker_x: Any = client_value
    if population["categories"]:
        names_ = category_names or {}
        x: list[Any] = [names_.get(c, c) for c in population["categories"]][: len(repaid)]
        if isinstance(client_value, str):
            marker_x = names_.get(client_value, client_value)
        width = None
    else:
        edges = list(population["bin_edges"])
        # Days before the application read better as years (the profile says "64.5 years").
        in_years = population["unit"] == "days" and max(edges, default=0) <= 0
        if in_years:
            edges = _to_years(edges)
            if isinstance(client_value, int | float):
                marker_x = -client_value / DAYS_PER_YEAR
        x = [(a + b) / 2 for a, b in itertools.pairwise(edges)][: len(repaid)]
        width = [abs(b - a) * 0.45 for a, b in itertools.pairwise(edges)]
    fig.add_bar(
        x=x, y=share_r, name=names["repaid"], marker_color=BLUE, width=width, offsetgroup="r"
    )
    fig.add_bar(
        x=x,
        y=share_d,
        name=names["defaulted"],
        width=width,
        offsetgroup="d",
        marker={"color": ORANGE, "pattern": {"shape": "/", "fgcolor": BLACK}},
    )
    if any(hidden):  # the whole feature too small to split by outcome: one group, grey
        fig.add_bar(
            x=x, y=share_h, name=names["hidden"], marker_color=GREY, width=width, offsetgroup="h"
        )
    fig.update_layout(barmode="group", bargap=0.15)
    fig.update_yaxes(title=wrap(y_axis), ticksuffix=percent_suffix(lang))
    fig.update_xaxes(title=wrap(x_axis, AXIS_CHARS))
    if marker_x is not None and not (isinstance(marker_x, float) and math.isnan(marker_x)):
        if population["categories"]:
            # A category axis has no numeric position: annotate the bar group instead.
            fig.add_annotation(
                x=marker_x,
                y=max(share_r + share_d + share_h, default=0),
                text="▼ " + names["client"],
                showarrow=False,
                yshift=14,
                font={"color": BLACK, "size": 13},
            )
        else:
            low, high = (min(edges), max(edges)) if edges else (marker_x, marker_x)
            fig.add_vline(
                x=marker_x,
                line={"color": BLACK, "width": 3, "dash": "dash"},
                annotation_text=names["client"],
                annotation_position=f"top {beside(marker_x, low, high)}",
            )
    return _layout(fig, title, height=380, lang=lang)


def scatter(
    points: Sequence[tuple[float | None, float | None]],
    client: tuple[Any, Any],
    names: dict[str, str],
    title: str,
    x_label: str,
    y_label: str,
    lang: str = "en",
) -> go.Figure:
    """``points``: (x, y) of similar clients, without outcomes; ``client``: the client's."""
    fig = go.Figure()
    shown = [(x, y) for x, y in points if x is not None and y is not None]
    fig.add_scatter(
        x=[p[0] for p in shown],
        y=[p[1] for p in shown],
        mode="markers",
        name=names["similar"],
        marker={"color": BLUE, "symbol": "circle", "size": 10, "opacity": 0.85},
    )
    if client[0] is not None and client[1] is not None:
        fig.add_scatter(
            x=[client[0]],
            y=[client[1]],
            mode="markers",
            name=names["client"],
            marker={
                "color": BLACK,
                "symbol": "star",
                "size": 18,
                "line": {"color": "white", "width": 1},
            },
        )
    fig.update_xaxes(title=wrap(x_label, AXIS_CHARS))
    fig.update_yaxes(title=wrap(y_label))
    return _layout(fig, title, height=400, lang=lang)


# Global importance by direction (the gateway's "raises" / "lowers" / "mixed"): a colour
# and a pattern each, and the direction in words under each factor's name.
DIRECTION_STYLE: dict[str, dict[str, Any]] = {
    "raises": {"color": VERMILLION, "pattern": {"shape": "/", "fgcolor": BLACK}},
    "lowers": {"color": BLUE, "pattern": {"shape": ""}},
    "mixed": {"color": "#999999", "pattern": {"shape": ".", "fgcolor": BLACK}},
}


def importance(
    rows: Sequence[tuple[str, float, str | None]],
    title: str,
    axis: str,
    lang: str = "en",
    directions: dict[str, tuple[str, str]] | None = None,
) -> go.Figure:
    """``rows``: (label, mean |SHAP|, direction or None), strongest first; drawn as each
    factor's share of their total. ``directions``: per direction, (legend entry, the short
    words shown under the factor's name); without them (or a row's direction), plain bars."""
    total = sum(v for _, v, _ in rows) or 1.0
    shares = [v / total for _, v, _ in rows]
    directions = directions or {}
    names = []
    for label, _, direction in rows:
        name = wrap(label)
        if direction in directions:
            words = wrap(f"({directions[direction][1]})").split("<br>")
            name += "".join(f"<br><i>{line}</i>" for line in words)
        names.append(name)
    fig = go.Figure()
    groups = [d for d in ("raises", "lowers", "mixed") if d in directions] + [None]
    for group in groups:
        picked = [
            i for i, (_, _, d) in enumerate(rows) if (d if d in directions else None) == group
        ]
        if not picked:
            continue
        style = DIRECTION_STYLE.get(group or "", {"color": BLUE})
        fig.add_bar(
            x=[100 * shares[i] for i in picked],
            y=[names[i] for i in picked],
            orientation="h",
            name=wrap(directions[group][0]) if group else "",
            showlegend=group is not None,
            marker=style,
            hoverinfo="skip",
            text=[formats.percent(shares[i], lang, 0) for i in picked],
            textposition="outside",
            cliponaxis=False,
        )
    # One row per factor, strongest first, whichever trace (direction) it is in; rows
    # evenly spaced, each as tall as the longest name needs.
    area, bar = _names_above_bars(fig, names)
    fig.update_xaxes(
        title=wrap(axis), ticksuffix=percent_suffix(lang), range=[0, 130 * max(shares, default=1)]
    )
    fig.update_layout(barmode="overlay", bargap=1 - bar)
    fig = _layout(fig, title, height=area + 60 + 170, lang=lang)
    # The legend (one entry per line: they are long) below the axis title.
    fig.update_layout(
        margin={"b": 170},
        legend={"orientation": "v", "x": 0, "y": -70 / area, "yanchor": "top"},
    )
    return fig


def score_distribution(
    bins: Sequence[dict[str, Any]],
    threshold: float,
    probability: float,
    names: dict[str, str],
    title: str,
    x_label: str,
    y_label: str,
    lang: str = "en",
) -> go.Figure:
    """The population's probabilities of default, stacked by outcome, per bin; a solid line
    at the threshold and a dashed one at the client's probability, each labelled. The bins
    may differ in width (the gateway merges sparse ones): each bar is the number of clients
    per percentage point of probability, so a wide bin is not drawn as a tall one."""
    x = [50 * (b["lower"] + b["upper"]) for b in bins]
    points = [max(100 * (b["upper"] - b["lower"]), 1e-9) for b in bins]
    width = [w * 0.95 for w in points]
    fig = go.Figure()
    fig.add_bar(
        x=x,
        y=[b["repaid"] / w for b, w in zip(bins, points, strict=True)],
        width=width,
        name=names["repaid"],
        marker_color=BLUE,
        hoverinfo="skip",
    )
    fig.add_bar(
        x=x,
        y=[b["defaulted"] / w for b, w in zip(bins, points, strict=True)],
        width=width,
        name=names["defaulted"],
        marker={"color": ORANGE, "pattern": {"shape": "/", "fgcolor": BLACK}},
        hoverinfo="skip",
    )
    if any(b.get("hidden", 0) for b in bins):  # a side too small to split by outcome
        fig.add_bar(
            x=x,
            y=[b.get("hidden", 0) / w for b, w in zip(bins, points, strict=True)],
            width=width,
            name=names["hidden"],
            marker_color=GREY,
            hoverinfo="skip",
        )
    fig.update_layout(barmode="stack", bargap=0)
    # Up to where 95 % of the clients are (most probabilities sit far below 50 %: the few
    # above would squash the rest), and always past the threshold and the client.
    counts = [clients(b) for b in bins]
    total = sum(counts) or 1
    seen, top = 0, 1.0
    for b, count in zip(bins, counts, strict=True):
        seen += count
        if seen >= 0.95 * total:
            top = b["upper"]
            break
    top = min(1.0, max(top, 1.3 * threshold, 1.15 * probability))
    fig.update_xaxes(
        title=wrap(x_label, AXIS_CHARS), range=[0, 100 * top], ticksuffix=percent_suffix(lang)
    )
    fig.update_yaxes(title=wrap(y_label))
    # Each label on the wider side of its line (never off the chart), at two heights: they
    # never cover each other.
    fig.add_vline(
        x=100 * threshold,
        line={"color": BLACK, "width": 3},
        annotation_text=names["threshold"],
        annotation_position=f"top {beside(100 * threshold, 0, 100 * top)}",
        annotation_bgcolor="white",
    )
    fig.add_vline(
        x=100 * probability,
        line={"color": BLACK, "width": 3, "dash": "dash"},
        annotation_text=names["client"],
        annotation_position=f"top {beside(100 * probability, 0, 100 * top)}",
        annotation_yshift=-22,
        annotation_bgcolor="white",
    )
    return _layout(fig, title, height=400, lang=lang)
