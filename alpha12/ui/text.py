"""The words and cards the pages show: values formatted for reading, status badges, pair and
timeframe cards, decisions and jobs in plain sentences."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from alpha12.formatting import (
    band,
    duration,
    missing,
    number,
    percent,
    percent_points,
    profit_factor,
    timestamp,
)
from alpha12.theme import NO_EDGE_COLOUR, NO_EDGE_ICON, STATUS_COLOURS, STATUS_ICONS
from alpha12.vocabulary import Action

__all__ = ["duration", "missing", "number", "percent", "profit_factor", "timestamp"]


def time_column(label: str, seconds: bool = False, **options) -> st.column_config.DatetimeColumn:
    """A table's timestamp column: every table shows times the same way, to the minute (or
    the second, for events that come in bursts)."""
    return st.column_config.DatetimeColumn(
        label, format="YYYY-MM-DD HH:mm:ss" if seconds else "YYYY-MM-DD HH:mm", **options
    )


def fact(label: str, value: str, detail: str | None = None) -> str:
    """Markdown for a labelled value with an optional gray detail line."""
    return f"**{label}**  \n{value}" + (f"  \n:gray[{detail}]" if detail else "")


def status_label(status: str) -> str:
    return status.replace("_", " ")


def status_badge(status: str) -> str:
    """Markdown for a pair's status: its colour, icon and word."""
    colour, icon = STATUS_COLOURS.get(status, "gray"), STATUS_ICONS.get(status, "help")
    return f":{colour}-background[:{colour}[**:material/{icon}: {status_label(status)}**]]"


def no_edge_badge() -> str:
    """Markdown for a pair whose serving model shows no out-of-sample skill."""
    colour = NO_EDGE_COLOUR
    return f":{colour}-background[:{colour}[**:material/{NO_EDGE_ICON}: no edge**]]"


def win_rate_text(row: dict, strong: str = "") -> str:
    """A pair's win rate and its 95% Wilson interval in whole percents: "52.0% [38–66]"."""
    low, high = row.get("win_rate_low"), row.get("win_rate_high")
    return _words(f"{strong}{percent(row['win_rate'])}{strong}", band(low, high, percent_points))


def profit_factor_text(row: dict, strong: str = "") -> str:
    """A pair's profit factor and its 95% bootstrap interval: "1.25 [0.91–1.80]"."""
    low, high = row.get("profit_factor_low"), row.get("profit_factor_high")
    shown = f"{strong}{profit_factor(row['profit_factor'])}{strong}"
    return _words(shown, band(low, high, profit_factor))


def _words(*parts: str) -> str:
    """The non-empty parts, separated by spaces."""
    return " ".join(part for part in parts if part)


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
    """One cell of the overview grid, as markdown lines; the rates with their 95% intervals."""
    badges = [status_badge(row["status"])] + ([no_edge_badge()] if row.get("no_edge") else [])
    lines = [
        " ".join(badges),
        _words(
            f"win rate {win_rate_text(row, '**')}",
            _versus(row["win_rate"], row["win_rate_threshold"], _whole_percent),
        ),
        _words(
            f"profit factor {profit_factor_text(row, '**')}",
            _versus(row["profit_factor"], row["profit_factor_threshold"], profit_factor),
        ),
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
    if action == Action.SHADOWED:
        return (
            f"{head}: challenger v{job['new_version']} **in shadow**: too few held-out rows to "
            "compare; the incumbent keeps serving until its shadow outcomes decide"
        )
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
