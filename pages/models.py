"""Models: every version of a pair's model with its metrics, roll back to any of them, the
shadow setups, and the log of recalibration decisions with the evidence that decided each."""

import streamlit as st

from alpha12 import ui
from alpha12.registry import FALLBACK_INTERVAL, RegistryError
from alpha12.vocabulary import ModelStatus

app = ui.context()
st.title("Models")
pick_asset, pick_interval = st.columns(2)
asset = pick_asset.selectbox("Asset", app.universe(), key="models_asset")
interval = pick_interval.selectbox(
    "Timeframe",
    [*app.settings.intervals, FALLBACK_INTERVAL],
    key="models_interval",
    format_func=lambda i: "all (the asset's fallback model)" if i == FALLBACK_INTERVAL else i,
)


def versions_table() -> None:
    versions = app.model_versions(asset, interval)
    if versions.empty:
        st.info(f"No model of {asset} {interval} has been trained yet.")
        return
    st.dataframe(
        versions.drop(columns=["asset", "interval"]),
        hide_index=True,
        column_config={
            "version": st.column_config.NumberColumn("v"),
            "trained_at": ui.time_column("trained (UTC)"),
            "as_of": ui.time_column("as of (UTC)"),
            "window_start": ui.time_column("window from"),
            "window_end": ui.time_column("window to"),
            "brier": st.column_config.NumberColumn("Brier", format="%.4f"),
            "roc_auc": st.column_config.NumberColumn("AUC", format="%.3f"),
            "log_loss": st.column_config.NumberColumn("log loss", format="%.3f"),
            "ece": st.column_config.NumberColumn("ECE", format="%.3f"),
            "base_rate": st.column_config.NumberColumn("base rate", format="%.3f"),
            "signal_trades": st.column_config.NumberColumn("signal trades"),
            "signal_win_rate": st.column_config.NumberColumn("signal WR", format="%.3f"),
            "signal_profit_factor": st.column_config.NumberColumn("signal PF", format="%.2f"),
        },
    )
    roll_back(versions)


def roll_back(versions) -> None:
    others = versions.loc[versions["status"] != ModelStatus.ACTIVE, "version"].tolist()
    if not others:
        return
    version = st.selectbox(
        "Re-activate version", others, key="rollback_version", format_func=lambda v: f"v{v}"
    )
    if ui.confirmed_action(
        f"rollback-{asset}-{interval}",
        f"Roll back to v{version}",
        f"Make **v{version}** serve {asset} {interval} again? The monitor judges it from its "
        "next trades on.",
    ):
        try:
            app.roll_back(asset, interval, version)
        except RegistryError as error:
            st.error(str(error))
            return
        ui.flash(f"v{version} now serves {asset} {interval}.")
        st.rerun()


def recalibration_log() -> None:
    routine = st.toggle(
        "Include routine decisions (healthy, waiting for trades)", key="models_routine"
    )
    log = app.recalibration_log(asset, interval, routine=routine)
    if log.empty:
        st.info("No recalibration decisions recorded for this pair.")
        return
    st.dataframe(
        ui.recalibration_summary(log)[
            [
                "ts",
                "trigger",
                "action",
                "before",
                "after",
                "versus",
                "evidence",
                "new_version",
                "reasons",
                "message",
            ]
        ],
        hide_index=True,
        column_config={
            "ts": ui.time_column("time (UTC)"),
            "before": st.column_config.TextColumn("trades judged (before)"),
            "after": st.column_config.TextColumn("challenger (after)"),
            "versus": st.column_config.TextColumn("Brier: challenger vs incumbent"),
            "evidence": st.column_config.TextColumn("decided on"),
            "new_version": st.column_config.NumberColumn("new v"),
            "reasons": st.column_config.TextColumn("trigger reason"),
            "message": st.column_config.TextColumn("outcome", width="large"),
        },
    )


def shadow_setups() -> None:
    shadow = app.shadow_trades(asset, interval)
    if shadow.empty:
        return
    st.subheader("Shadow setups")
    st.caption(
        "Would-be trades of a challenger waiting in shadow, or of a serving model without an "
        "edge on a timeframe that does not trade without one: made and resolved like real "
        "setups, never counted as real trades. The monitor judges a serving model by its "
        "shadow trades too; a shadow challenger is decided on the Brier score of the bars "
        "resolved after both models' training windows."
    )
    st.dataframe(
        shadow[
            [
                "ts",
                "model_version",
                "direction",
                "probability",
                "status",
                "exit_reason",
                "pnl_pct",
                "r_multiple",
            ]
        ],
        hide_index=True,
        column_config={"ts": ui.time_column("opened (UTC)"), "model_version": "v"},
    )


st.subheader("Versions")
versions_table()
shadow_setups()

if interval != FALLBACK_INTERVAL:  # a fallback serves several timeframes: judged on each
    st.subheader("Serving model: calibration at training and live")
    ui.calibration_section(app.calibration(asset, interval))
st.subheader("Recalibration log")
recalibration_log()
