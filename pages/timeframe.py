"""One pair in depth: its rolling performance, equity, price with setups, trades and model."""

import streamlit as st

from alpha12 import ui

app = ui.context()
st.title("Timeframe")
pick_asset, pick_interval = st.columns(2)
asset = pick_asset.selectbox("Asset", app.universe(), key="pair_asset")
interval = pick_interval.selectbox("Timeframe", list(app.settings.intervals), key="pair_interval")
# The job before the pair: a retrain that ends between the two reads then shows its outcome
# beside the model it promoted, never beside the one it replaced.
latest_job = app.latest_job(asset, interval)
pair = app.pair_overview(asset, interval)


def headline() -> None:
    status, win_rate, pf, trades, model = st.columns(5)
    badges = ui.status_badge(pair["status"]) + (f" {ui.no_edge_badge()}" if pair["no_edge"] else "")
    status.markdown(ui.fact("Status", badges, f"trigger: {pair['trigger']}"))
    win_rate.metric(
        "Win rate",
        ui.win_rate_text(pair),
        f"min {ui.percent(pair['win_rate_threshold'], 0)}",
        delta_color=ui.threshold_colour(pair["win_rate"], pair["win_rate_threshold"]),
        delta_arrow="off",
    )
    pf.metric(
        "Profit factor",
        ui.profit_factor_text(pair),
        f"min {ui.number(pair['profit_factor_threshold'])}",
        delta_color=ui.threshold_colour(pair["profit_factor"], pair["profit_factor_threshold"]),
        delta_arrow="off",
    )
    trades.metric(
        "Trades judged",
        pair["trades"],
        f"{pair['min_trades']} needed · {pair['pending']} open",
        delta_color=ui.threshold_colour(pair["trades"], pair["min_trades"]),
        delta_arrow="off",
    )
    model.markdown(ui.fact("Serving", ui.model_line(pair)))
    if pair["cooldown_remaining_s"] > 0:
        st.warning(f"Cooldown: {ui.duration(pair['cooldown_remaining_s'])} of clock time left.")
    if pair["reasons"]:
        st.warning("Degraded: " + "; ".join(pair["reasons"]))
    if pair["no_edge"]:
        st.info(f"No edge: {pair['no_edge_reason']}.", icon=":material/trending_flat:")


def retrain_control(job: dict | None) -> None:
    if job and job["active"]:
        job_progress()
        return
    if job:
        st.info(ui.job_text(job), icon=":material/model_training:")
    if ui.confirmed_action(
        f"retrain-{asset}-{interval}",
        "Force retrain",
        f"Retrain **{asset} {interval}** now? The challenger replaces the serving model only "
        "if its Brier score is at least as good.",
    ):
        app.request_retrain(asset, interval)
        st.rerun()


@st.fragment(run_every=2)
def job_progress() -> None:
    """The running job's progress; the whole page reloads once it has finished."""
    job = app.latest_job(asset, interval)
    if not job["active"]:
        st.rerun()
    st.button(
        "Force retrain",
        key="retrain-busy",
        disabled=True,
        help="A retrain of this pair is already queued or running.",
    )
    st.progress(float(job["progress"]), text=ui.job_text(job))


def performance_tab() -> None:
    window = st.slider("Rolling window (trades)", 10, 200, int(pair["min_trades"]), step=5)
    perf = app.performance(asset, interval, window)
    if perf.empty:
        st.info("No closed trades yet.")
        return
    marks = app.recalibration_log(asset, interval, actions=ui.MARKED_ACTIONS, limit=500)
    st.plotly_chart(
        ui.performance_figure(
            perf, pair["win_rate_threshold"], pair["profit_factor_threshold"], marks
        )
    )
    st.markdown("**Equity curve (R)**")
    st.plotly_chart(ui.equity_figure(perf, marks))


def trades_tab() -> None:
    trades = app.trades(asset, interval)
    st.caption(
        f"{len(trades)} setups; *warm_start* ones were traded out of sample during the "
        "warm start, *live* ones by the engine."
    )
    st.dataframe(
        trades[
            [
                "ts",
                "origin",
                "direction",
                "probability",
                "entry",
                "stop",
                "take_profit",
                "status",
                "exit_reason",
                "exit_ts",
                "pnl_pct",
                "r_multiple",
                "model_version",
                "model_scope",
            ]
        ],
        hide_index=True,
        column_config={
            "ts": ui.time_column("entry bar (UTC)"),
            "exit_ts": ui.time_column("exit (UTC)"),
            "origin": st.column_config.TextColumn("origin", help="live or warm_start"),
            "direction": st.column_config.NumberColumn("dir", help="1 long, -1 short"),
            "probability": st.column_config.NumberColumn("p(win)", format="%.3f"),
            "pnl_pct": st.column_config.NumberColumn("pnl %", format="%.3f"),
            "r_multiple": st.column_config.NumberColumn("R", format="%.2f"),
        },
    )


def model_tab() -> None:
    card = app.model_card(asset, interval)
    if card is None:
        st.info("No model serves this pair yet.")
        return
    metrics = card["metrics"]
    st.markdown(
        f"**v{card['version']}** ({card['scope']} model, {card['status']}, trigger "
        f"*{card['trigger']}*) trained on **{card['rows']}** rows from "
        f"{ui.timestamp(card['window_start'])} to {ui.timestamp(card['window_end'])}; "
        f"as of {ui.timestamp(card['as_of'])}."
    )
    cells = st.columns(6)
    for cell, (label, value) in zip(
        cells,
        [
            ("Brier", ui.number(metrics.get("brier"), 4)),
            ("ROC AUC", ui.number(metrics.get("roc_auc"), 3)),
            ("ECE", ui.number(metrics.get("ece"), 3)),
            ("Log loss", ui.number(metrics.get("log_loss"), 3)),
            ("Signal win rate", ui.percent(metrics.get("signal_win_rate"))),
            ("Signal PF", ui.profit_factor(metrics.get("signal_profit_factor"))),
        ],
        strict=True,
    ):
        cell.metric(label, value)
    st.caption(
        f"Evaluated out of sample on {metrics.get('eval_rows')} rows from "
        f"{metrics.get('eval_start', '—')}; base rate {ui.percent(metrics.get('base_rate'))}."
    )
    st.markdown("**Calibration: at training and live**")
    ui.calibration_section(app.calibration(asset, interval))
    st.markdown("**Feature importances**")
    if card["importances"]:
        st.plotly_chart(ui.importance_figure(card["importances"]))
    else:
        st.info("No importances recorded for this version.")


headline()
retrain_control(latest_job)
performance, price, trades, model = st.tabs(["Performance", "Price & setups", "Trades", "Model"])
with performance:
    performance_tab()
with price:
    st.plotly_chart(
        ui.price_figure(app.price_history(asset, interval), app.trades(asset, interval))
    )
with trades:
    trades_tab()
with model:
    model_tab()
