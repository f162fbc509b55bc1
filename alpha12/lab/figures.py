"""Plotly figures of lab results: pure functions of a LabRun's data, so the app and a report
draw the same charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from alpha12.lab import stats


def equity_chart(
    equity: dict[str, pd.DataFrame], retrains: dict[str, list[pd.Timestamp]], title: str
) -> go.Figure:
    """Every policy's equity in R (stats.equity frames, by policy name) on one chart, each
    retrain attempt marked on its policy's curve."""
    figure = go.Figure()
    for name, curve in equity.items():
        line = figure.add_trace(
            go.Scatter(x=curve["exit_ts"], y=curve["cum_r"], mode="lines", name=name)
        ).data[-1]
        times = pd.Series(retrains.get(name, []), dtype=curve["exit_ts"].dtype)
        if times.empty or curve.empty:
            continue
        at = np.clip(np.searchsorted(curve["exit_ts"].to_numpy(), times.to_numpy()) - 1, 0, None)
        figure.add_trace(
            go.Scatter(
                x=times,
                y=curve["cum_r"].to_numpy()[at],
                mode="markers",
                marker={"symbol": "triangle-up", "size": 7},
                name=f"{name} retrains",
                legendgroup=line.name,
                showlegend=False,
            )
        )
    figure.update_layout(title=title, xaxis_title="trade exit", yaxis_title="cumulative R")
    return figure


def difference_heatmap(table: pd.DataFrame) -> go.Figure:
    """Pairs x policies coloured by the expectancy difference to never (R per trade), the
    interval in the hover text."""
    table = table.assign(pair=table["asset"] + " " + table["interval"])
    values = table.pivot(index="pair", columns="policy", values="diff_expectancy_r")
    bounds = table.assign(
        text=[
            f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            for d, lo, hi in zip(
                table["diff_expectancy_r"], table["diff_low"], table["diff_high"], strict=True
            )
        ]
    ).pivot(index="pair", columns="policy", values="text")
    limit = np.nanmax(np.abs(values.to_numpy())) if values.notna().any().any() else 1.0
    figure = go.Figure(
        go.Heatmap(
            z=values.to_numpy(),
            x=list(values.columns),
            y=list(values.index),
            text=bounds.reindex_like(values).to_numpy(),
            texttemplate="%{text}",
            colorscale="RdBu",
            zmid=0,
            zmin=-limit,
            zmax=limit,
            colorbar={"title": "Δ expectancy R"},
        )
    )
    figure.update_layout(title=f"Expectancy difference to {stats.BASELINE} (95% block bootstrap)")
    return figure


def sweep_heatmap(sweep: pd.DataFrame) -> go.Figure:
    """The custom policy's expectancy over win-rate threshold x cooldown, each cell labelled
    with its retrain count."""
    values = sweep.pivot(index="win_rate", columns="cooldown_hours", values="expectancy_r")
    counts = sweep.pivot(index="win_rate", columns="cooldown_hours", values="retrains")
    labels = [
        [f"{v:+.3f} R<br>{int(c)} retrains" for v, c in zip(row_v, row_c, strict=True)]
        for row_v, row_c in zip(values.to_numpy(), counts.to_numpy(), strict=True)
    ]
    figure = go.Figure(
        go.Heatmap(
            z=values.to_numpy(),
            x=[f"{c:g} h" for c in values.columns],
            y=[f"{w:.0%}" for w in values.index],
            text=labels,
            texttemplate="%{text}",
            colorscale="RdBu",
            zmid=0,
            colorbar={"title": "expectancy R"},
        )
    )
    figure.update_layout(
        title="Custom policy: expectancy by threshold and cooldown",
        xaxis_title="cooldown",
        yaxis_title="win-rate threshold",
    )
    return figure
