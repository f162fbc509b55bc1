"""Sections more than one page shows: the serving model's calibration, at training and live."""

from __future__ import annotations

import streamlit as st

from alpha12.formatting import missing, number
from alpha12.ui.charts import reliability_figure


def calibration_section(calibration: dict | None) -> None:
    """ECE and reliability of the serving model on its hold-out slice (at training) beside
    those of its resolved live predictions, and what the monitor makes of the live ones."""
    if calibration is None:
        st.info("No model serves this pair yet.")
        return
    trained, live = calibration["trained"], calibration["live"]
    at_training, serving = st.columns(2)
    at_training.metric(
        "ECE at training", number(trained["ece"], 3), f"{trained['predictions']} hold-out rows"
    )
    serving.metric(
        "Live ECE",
        number(live["ece"], 3),
        f"max {number(calibration['max_gap'])}",
        delta_color=_gap_colour(live, calibration),
        delta_arrow="off",
    )
    st.caption(live_calibration_text(calibration))
    st.plotly_chart(
        reliability_figure(
            {"at training (hold-out)": trained["reliability"], "live": live["reliability"]}
        )
    )


def live_calibration_text(calibration: dict) -> str:
    """What the live figures rest on, and whether the monitor judges them yet."""
    live, need = calibration["live"], calibration["min_predictions"]
    rest = (
        f"a live ECE above {number(calibration['max_gap'])} degrades the pair"
        if live["predictions"] >= need
        else f"judged from {need} on"
    )
    return (
        f"Live: {live['predictions']} resolved predictions of v{calibration['version']} since "
        f"it began serving; {rest}."
    )


def _gap_colour(live: dict, calibration: dict) -> str:
    if missing(live["ece"]) or live["predictions"] < calibration["min_predictions"]:
        return "gray"
    return "red" if live["ece"] > calibration["max_gap"] else "green"
