"""The plotly figures of the pages: pure functions from the facade's answers to a figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from alpha12.drift import PSI_MODERATE, PSI_SIGNIFICANT
from alpha12.theme import ACTION_COLOURS, LOSS, OPEN, WIN


def _recalibration_marks(fig: go.Figure, marks: pd.DataFrame, rows: int = 1) -> None:
    """Dotted vertical lines where a recalibration was attempted, coloured by outcome."""
    for mark in marks.itertuples():
        for row in range(1, rows + 1):
            fig.add_vline(
                x=mark.ts,
                line={"color": ACTION_COLOURS.get(mark.action, OPEN), "dash": "dot", "width": 1},
                row=row if rows > 1 else None,
                col=1 if rows > 1 else None,
            )
    for action, colour in ACTION_COLOURS.items():
        if (marks["action"] == action).any():  # legend entries for the line colours
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="lines",
                    name=action.replace("_", " "),
                    line={"color": colour, "dash": "dot"},
                )
            )


def performance_figure(
    perf: pd.DataFrame, win_rate_min: float, profit_factor_min: float, marks: pd.DataFrame
) -> go.Figure:
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("Rolling win rate", "Rolling profit factor"),
    )
    for row, (column, name, colour) in enumerate(
        (("win_rate", "win rate", "#2563eb"), ("profit_factor", "profit factor", "#7c3aed")),
        start=1,
    ):
        _band(fig, perf["exit_ts"], perf[f"{column}_low"], perf[f"{column}_high"], colour, row)
        fig.add_trace(
            go.Scatter(
                x=perf["exit_ts"], y=_finite(perf[column]), name=name, line={"color": colour}
            ),
            row=row,
            col=1,
        )
    fig.add_hline(
        y=win_rate_min,
        line={"color": LOSS, "dash": "dash"},
        row=1,
        col=1,
        annotation_text=f"min {win_rate_min:.0%}",
        annotation_position="top left",
    )
    fig.add_hline(
        y=profit_factor_min,
        line={"color": LOSS, "dash": "dash"},
        row=2,
        col=1,
        annotation_text=f"min {profit_factor_min:.2f}",
        annotation_position="top left",
    )
    _recalibration_marks(fig, marks, rows=2)
    fig.update_yaxes(tickformat=".0%", row=1, col=1)
    fig.update_layout(height=480, margin={"t": 40, "b": 10}, legend={"orientation": "h"})
    return fig


def _band(fig: go.Figure, x, low, high, colour: str, row: int) -> None:
    """The shaded 95% interval around a rolling value (its upper edge first, then the lower
    edge filled up to it)."""
    for edge, fill in ((high, None), (low, "tonexty")):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_finite(edge),
                mode="lines",
                line={"width": 0, "color": colour},
                fill=fill,
                fillcolor=f"rgba{(*_rgb(colour), 0.15)}",
                name="95% interval",
                showlegend=fill is not None and row == 1,
                hoverinfo="skip",
            ),
            row=row,
            col=1,
        )


def _finite(values: pd.Series) -> pd.Series:
    """An infinite profit factor (no loss in the window) cannot be drawn; it shows as a gap."""
    return values.replace([np.inf, -np.inf], np.nan)


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def equity_figure(perf: pd.DataFrame, marks: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=perf["exit_ts"], y=perf["equity_r"], name="equity", line={"color": "#111827"})
    )
    for origin, symbol in (("warm_start", "circle-open"), ("live", "circle")):
        part = perf[perf["origin"] == origin]
        colour = np.where(part["r_multiple"] > 0, WIN, LOSS)
        fig.add_trace(
            _markers(part["exit_ts"], part["equity_r"], f"{origin} trades", symbol, 5, colour)
        )
    _recalibration_marks(fig, marks)
    fig.update_layout(
        height=360,
        margin={"t": 20, "b": 10},
        yaxis_title="cumulative R",
        legend={"orientation": "h"},
    )
    return fig


def price_figure(bars: pd.DataFrame, trades: pd.DataFrame) -> go.Figure:
    fig = go.Figure(
        go.Candlestick(
            x=bars["ts"],
            open=bars["open"],
            high=bars["high"],
            low=bars["low"],
            close=bars["close"],
            # A bar the session's close cut short says so (price_history's `short`).
            text=np.where(bars["short"], "short bar: cut at the session's close", ""),
            name="price",
            increasing_line_color="#94a3b8",
            decreasing_line_color="#475569",
        )
    )
    shown = trades[trades["ts"] >= bars["ts"].min()] if len(bars) else trades.iloc[:0]
    outcome = np.select([shown["pnl_pct"] > 0, shown["pnl_pct"] <= 0], ["win", "loss"], "open")
    colours = {"win": WIN, "loss": LOSS, "open": OPEN}
    for direction, name, symbol in ((1, "long", "triangle-up"), (-1, "short", "triangle-down")):
        for result, colour in colours.items():
            part = shown[(shown["direction"] == direction) & (outcome == result)]
            if len(part):
                fig.add_trace(
                    _markers(
                        part["ts"],
                        part["entry"],
                        f"{name} {result}",
                        symbol,
                        11,
                        colour,
                        line={"width": 1, "color": "white"},
                    )
                )
    fig.update_layout(
        height=460,
        margin={"t": 20, "b": 10},
        xaxis_rangeslider_visible=False,
        legend={"orientation": "h"},
    )
    return fig


def reliability_figure(series: dict[str, list[dict]]) -> go.Figure:
    """Reliability diagrams (models.reliability_bins) by name, e.g. the hold-out slice at
    training and the live predictions; marker size grows with a bin's count."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"color": OPEN, "dash": "dash"}
        )
    )
    for name, bins in series.items():
        if not bins:  # no resolved predictions yet: nothing to draw, not an empty trace
            continue
        table = pd.DataFrame(bins, columns=["mean_predicted", "observed", "count"])
        fig.add_trace(
            go.Scatter(
                x=table["mean_predicted"],
                y=table["observed"],
                mode="lines+markers",
                name=name,
                marker={"size": 6 + 14 * np.sqrt(table["count"] / max(table["count"].max(), 1))},
                text=[f"{c} rows" for c in table["count"]],
            )
        )
    fig.update_layout(
        height=320,
        margin={"t": 20, "b": 10},
        xaxis_title="predicted",
        yaxis_title="observed win rate",
        xaxis_range=[0, 1],
        yaxis_range=[0, 1],
        legend={"orientation": "h"},
    )
    return fig


def importance_figure(importances: dict[str, float], top: int = 15) -> go.Figure:
    ranked = pd.Series(importances, dtype=float).sort_values(ascending=False).head(top)[::-1]
    fig = go.Figure(
        go.Bar(x=ranked.to_numpy(), y=ranked.index, orientation="h", marker_color="#2563eb")
    )
    fig.update_layout(
        height=max(240, 22 * len(ranked)),
        margin={"t": 20, "b": 10},
        xaxis_title="Brier increase when shuffled",
    )
    return fig


def distribution_figure(sample: pd.DataFrame, feature: str) -> go.Figure:
    fig = go.Figure()
    for target, name, colour in (
        (1, "long wins (target 1)", WIN),
        (0, "long loses (target 0)", LOSS),
    ):
        fig.add_trace(
            go.Histogram(
                x=sample.loc[sample["target"] == target, "value"],
                name=name,
                marker_color=colour,
                opacity=0.55,
                histnorm="probability density",
                nbinsx=60,
            )
        )
    fig.update_layout(
        barmode="overlay",
        height=340,
        margin={"t": 20, "b": 10},
        xaxis_title=feature,
        legend={"orientation": "h"},
    )
    return fig


def drift_figure(psi: pd.DataFrame) -> go.Figure:
    ordered = psi.iloc[::-1]
    colours = {"stable": WIN, "moderate": "#f59e0b", "significant": LOSS, "unknown": OPEN}
    fig = go.Figure(
        go.Bar(
            x=ordered["psi"],
            y=ordered["feature"],
            orientation="h",
            marker_color=[colours[d] for d in ordered["drift"]],
        )
    )
    for line in (PSI_MODERATE, PSI_SIGNIFICANT):
        fig.add_vline(x=line, line={"color": OPEN, "dash": "dash"})
    fig.update_layout(height=22 * len(psi) + 60, margin={"t": 20, "b": 10}, xaxis_title="PSI")
    return fig


def _markers(x, y, name: str, symbol: str, size: int, colour, **marker) -> go.Scatter:
    """A trace of trade markers: one symbol, one size, a colour per point or for all."""
    return go.Scatter(
        x=x,
        y=y,
        mode="markers",
        name=name,
        marker={"symbol": symbol, "size": size, "color": colour, **marker},
    )
