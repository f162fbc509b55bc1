"""What the Streamlit pages share: the session's context, the admin check, a confirmed action,
and the pure formatting and plotly figures that turn services' answers into something to read.
"""

from __future__ import annotations

import hmac
import json
import os

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from alpha12.metrics import format_profit_factor
from alpha12.services import Alpha12
from alpha12.vocabulary import ATTEMPTS, Action, EngineState, PairStatus

CONTEXT_KEY = "alpha12"  # where app.py leaves the shared context for the pages
ADMIN_PASSWORD_VARIABLE = "ALPHA12_ADMIN_PASSWORD"
WRONG_PASSWORD = "Wrong or missing admin password: nothing was changed."
REFRESH_SECONDS = 3
STATUS_COLOURS = {
    PairStatus.HEALTHY: "green",
    PairStatus.DEGRADED: "red",
    PairStatus.COOLDOWN: "orange",
    PairStatus.INSUFFICIENT_TRADES: "blue",
    PairStatus.NO_MODEL: "gray",
}
STATUS_ICONS = {
    PairStatus.HEALTHY: "check_circle",
    PairStatus.DEGRADED: "trending_down",
    PairStatus.COOLDOWN: "hourglass_top",
    PairStatus.INSUFFICIENT_TRADES: "pending",
    PairStatus.NO_MODEL: "block",
}
ENGINE_COLOURS = {
    EngineState.RUNNING: "green",
    EngineState.WARMING_UP: "blue",
    EngineState.RESTARTING: "orange",
    EngineState.STOPPED: "red",
}
# Recalibration attempts (what starts a cooldown), as marked on the charts.
ACTION_COLOURS = dict(zip(ATTEMPTS, ("#16a34a", "#f59e0b", "#dc2626"), strict=True))
MARKED_ACTIONS = ATTEMPTS
WIN, LOSS, OPEN = "#16a34a", "#dc2626", "#6b7280"


def context() -> Alpha12:
    """The process-wide alpha12 context app.py opened for this run."""
    if CONTEXT_KEY not in st.session_state:
        # Until app.py has called st.navigation once, Streamlit serves a file of pages/ on its
        # own (its legacy multipage mode), e.g. a bookmarked page as a new server's first
        # request: register the pages and run again, through app.py this time.
        navigation()
        st.rerun()
    return st.session_state[CONTEXT_KEY]


def navigation():
    """The app's pages, as a navigation bar at the top; returns the page to run."""
    return st.navigation(
        [
            st.Page(
                "pages/overview.py", title="Overview", icon=":material/grid_view:", default=True
            ),
            st.Page("pages/timeframe.py", title="Timeframe", icon=":material/query_stats:"),
            st.Page("pages/snapshots.py", title="Snapshots", icon=":material/table_rows:"),
            st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
            st.Page("pages/system.py", title="System", icon=":material/settings:"),
        ],
        position="top",
    )


def flash(message: str) -> None:
    """A success message for the next run (shown by show_flash), to survive a st.rerun."""
    st.session_state["flash"] = message


def show_flash() -> None:
    if message := st.session_state.pop("flash", None):
        st.success(message, icon=":material/check_circle:")


# -- admin ---------------------------------------------------------------------------------


def admin_required() -> bool:
    return bool(os.environ.get(ADMIN_PASSWORD_VARIABLE))


def authorized(password: str | None) -> bool:
    """True when no admin password is set, or `password` is it (compared in constant time)."""
    expected = os.environ.get(ADMIN_PASSWORD_VARIABLE)
    if not expected:
        return True
    return hmac.compare_digest((password or "").encode(), expected.encode())


def confirmed_action(key: str, label: str, prompt: str) -> bool:
    """A button that asks for confirmation (and the admin password when one is set); True on
    the run after the user confirmed and was authorised."""
    state = st.session_state
    st.button(label, key=f"{key}:ask", on_click=state.__setitem__, args=(f"{key}:open", True))
    if state.pop(f"{key}:done", False):
        return True
    if state.get(f"{key}:open"):
        with st.container(border=True):
            st.markdown(prompt)
            if admin_required():
                st.text_input("Admin password", type="password", key=f"{key}:password")
            yes, no = st.columns(2)
            yes.button(
                "Confirm", key=f"{key}:confirm", type="primary", on_click=_confirm, args=(key,)
            )
            no.button(
                "Cancel",
                key=f"{key}:cancel",
                on_click=state.__setitem__,
                args=(f"{key}:open", False),
            )
            if state.pop(f"{key}:refused", False):
                st.error(WRONG_PASSWORD)
    return False


def _confirm(key: str) -> None:
    state = st.session_state
    if authorized(state.pop(f"{key}:password", None)):
        state[f"{key}:open"] = False
        state[f"{key}:done"] = True
    else:
        state[f"{key}:refused"] = True


# -- formatting ----------------------------------------------------------------------------


def missing(value) -> bool:
    """None, NaN, NA or NaT."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def time_column(label: str, seconds: bool = False, **options) -> st.column_config.DatetimeColumn:
    """A table's timestamp column: every table shows times the same way, to the minute (or
    the second, for events that come in bursts)."""
    return st.column_config.DatetimeColumn(
        label, format="YYYY-MM-DD HH:mm:ss" if seconds else "YYYY-MM-DD HH:mm", **options
    )


def percent(value: float | None, digits: int = 1) -> str:
    return "—" if missing(value) else f"{value:.{digits}%}"


def number(value: float | None, digits: int = 2) -> str:
    return "—" if missing(value) else f"{value:.{digits}f}"


def profit_factor(value: float | None) -> str:
    return "—" if missing(value) else format_profit_factor(float(value))


def duration(seconds: float | None) -> str:
    """A span as its two largest units: 2d 4h, 3h 05m, 12m 30s, 45s."""
    if missing(seconds):
        return "—"
    total = round(abs(float(seconds)))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def timestamp(value) -> str:
    return "—" if missing(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M} UTC"


def fact(label: str, value: str, detail: str | None = None) -> str:
    """Markdown for a labelled value with an optional gray detail line."""
    return f"**{label}**  \n{value}" + (f"  \n:gray[{detail}]" if detail else "")


def status_label(status: str) -> str:
    return status.replace("_", " ")


def status_badge(status: str) -> str:
    """Markdown for a pair's status: its colour, icon and word."""
    colour, icon = STATUS_COLOURS.get(status, "gray"), STATUS_ICONS.get(status, "help")
    return f":{colour}-background[:{colour}[**:material/{icon}: {status_label(status)}**]]"


def threshold_colour(value: float, threshold: float) -> str:
    """Green when a value meets its minimum, red when not, gray when there is no value."""
    if missing(value):
        return "gray"
    return "green" if value >= threshold else "red"


def _versus(value: float, threshold: float, show) -> str:
    """Green "≥ threshold" when the value meets it, red "< threshold" when not."""
    colour = threshold_colour(value, threshold)
    sign = {"green": "≥ ", "red": "< ", "gray": "min "}[colour]
    return f":{colour}[{sign}{show(threshold)}]"


def _whole_percent(value: float) -> str:
    return percent(value, 0)


def model_line(row: dict) -> str:
    if missing(row.get("model_version")):
        return ":gray[no model yet]"
    scope = row["model_scope"]
    serves = scope if scope == "timeframe" else f":violet[{scope}]"
    return f"model **v{row['model_version']}** {serves}, {duration(row['model_age_s'])} old"


def pair_card(row: dict) -> str:
    """One cell of the overview grid, as markdown lines."""
    lines = [
        status_badge(row["status"]),
        f"win rate **{percent(row['win_rate'])}** "
        + _versus(row["win_rate"], row["win_rate_threshold"], _whole_percent),
        f"profit factor **{profit_factor(row['profit_factor'])}** "
        + _versus(row["profit_factor"], row["profit_factor_threshold"], profit_factor),
        f"trades **{row['trades']}** / {row['min_trades']}"
        + (f" · {row['pending']} open" if row["pending"] else ""),
    ]
    if row["cooldown_remaining_s"] > 0:
        lines.append(f":orange[cooldown **{duration(row['cooldown_remaining_s'])}** left]")
    lines.append(model_line(row))
    return "  \n".join(lines)


def summary_card(row: dict) -> str:
    """One timeframe's summary cell: its pairs by status, trades and pooled win rate."""
    counts = " · ".join(
        f":{colour}[{row[status]} {status_label(status)}]"
        for status, colour in STATUS_COLOURS.items()
        if row[status]
    )
    return (
        f"{counts}  \n{row['trades']} trades, win rate **{percent(row['win_rate'])}** "
        + _versus(row["win_rate"], row["win_rate_threshold"], _whole_percent)
    )


def text(value) -> str:
    """A possibly missing text column value ("" when missing)."""
    return "" if missing(value) else str(value)


def decision_text(row) -> str:
    """One recalibration decision in a sentence, for a toast."""
    return (
        f"{row.asset} {row.interval}: {row.action.replace('_', ' ')}. {text(row.message)}".strip()
    )


def job_text(job: dict) -> str:
    """What a retrain job is doing, or what it did: challenger vs incumbent, promoted or not."""
    head = f"Job #{job['id']} ({job['requested_by']}) {job['status']}"
    if job["active"]:
        return f"{head}: {text(job['message'])} ({percent(job['progress'], 0)})"
    action = job.get("action")
    if action in (Action.RECALIBRATED, Action.REJECTED_CHALLENGER):
        incumbent = job["incumbent_score"]
        versus = "no incumbent" if missing(incumbent) else f"incumbent {number(incumbent, 4)}"
        verdict = (
            "promoted" if action == Action.RECALIBRATED else "rejected; the incumbent keeps serving"
        )
        return (
            f"{head}: challenger v{job['new_version']} Brier {number(job['challenger_score'], 4)} "
            f"vs {versus}: **{verdict}**"
        )
    return f"{head}: {text(job['message'])}"


def recalibration_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Recalibration rows with metrics before (trades judged) and after (the challenger) as
    short text columns, for a table."""
    table = frame.copy()
    table["before"] = [
        f"WR {percent(w)} · PF {profit_factor(p)} · {t} trades"
        for w, p, t in zip(frame["win_rate"], frame["profit_factor"], frame["trades"], strict=True)
    ]
    table["after"] = [_after(m) for m in frame["metrics_after"]]
    table["versus"] = [
        "" if missing(c) else f"{number(c, 4)} vs {number(i, 4)}"
        for c, i in zip(frame["challenger_score"], frame["incumbent_score"], strict=True)
    ]
    return table


def _after(metrics: str | None) -> str:
    """The challenger's headline scores from a metrics_after JSON column."""
    if not isinstance(metrics, str):
        return ""
    parsed = json.loads(metrics)
    return f"Brier {number(parsed.get('brier'), 4)} · AUC {number(parsed.get('roc_auc'), 3)}"


# -- figures -------------------------------------------------------------------------------


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
    # An infinite profit factor (no loss in the window) cannot be drawn; it shows as a gap.
    finite_pf = perf["profit_factor"].replace([np.inf, -np.inf], np.nan)
    fig.add_trace(
        go.Scatter(
            x=perf["exit_ts"], y=perf["win_rate"], name="win rate", line={"color": "#2563eb"}
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(x=perf["exit_ts"], y=finite_pf, name="profit factor", line={"color": "#7c3aed"}),
        row=2,
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


def equity_figure(perf: pd.DataFrame, marks: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=perf["exit_ts"], y=perf["equity_r"], name="equity", line={"color": "#111827"})
    )
    for origin, symbol in (("warm_start", "circle-open"), ("live", "circle")):
        part = perf[perf["origin"] == origin]
        fig.add_trace(
            go.Scatter(
                x=part["exit_ts"],
                y=part["equity_r"],
                mode="markers",
                name=f"{origin} trades",
                marker={
                    "symbol": symbol,
                    "size": 5,
                    "color": np.where(part["r_multiple"] > 0, WIN, LOSS),
                },
            )
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
                    go.Scatter(
                        x=part["ts"],
                        y=part["entry"],
                        mode="markers",
                        name=f"{name} {result}",
                        marker={
                            "symbol": symbol,
                            "size": 11,
                            "color": colour,
                            "line": {"width": 1, "color": "white"},
                        },
                    )
                )
    fig.update_layout(
        height=460,
        margin={"t": 20, "b": 10},
        xaxis_rangeslider_visible=False,
        legend={"orientation": "h"},
    )
    return fig


def reliability_figure(bins: list[dict]) -> go.Figure:
    table = pd.DataFrame(bins, columns=["mean_predicted", "observed", "count"])
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"color": OPEN, "dash": "dash"}
        )
    )
    fig.add_trace(
        go.Scatter(
            x=table["mean_predicted"],
            y=table["observed"],
            mode="lines+markers",
            name="model",
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
    for line in (0.1, 0.25):
        fig.add_vline(x=line, line={"color": OPEN, "dash": "dash"})
    fig.update_layout(height=22 * len(psi) + 60, margin={"t": 20, "b": 10}, xaxis_title="PSI")
    return fig
