"""Overview: every asset × timeframe at a glance, live, with a per-timeframe forced retrain."""

import streamlit as st

from alpha12 import ui
from alpha12.metrics import timeframe_summary
from alpha12.vocabulary import JobKind

app = ui.context()
intervals = list(app.settings.intervals)
st.title("Overview")


def grid_row(label: str, cells: list[str]) -> None:
    columns = st.columns([0.6] + [2] * len(cells))
    columns[0].markdown(f"**{label}**")
    for column, cell in zip(columns[1:], cells, strict=True):
        column.container(border=True).markdown(cell)


def toast_new_recalibrations() -> None:
    """A toast per recalibration decision made since this session last looked."""
    seen = st.session_state.get("seen_recalibration")
    latest = app.latest_recalibration_id()
    if seen is not None and latest > seen:
        for row in app.recalibration_log(routine=False, after_id=seen, limit=3).itertuples():
            st.toast(ui.decision_text(row))
    st.session_state["seen_recalibration"] = latest


@st.fragment(run_every=ui.REFRESH_SECONDS)
def live_grid() -> None:
    grid = app.overview()
    header = st.columns([0.6] + [2] * len(intervals))
    for column, interval in zip(header[1:], intervals, strict=True):
        column.subheader(interval, divider="gray")
    for asset, rows in grid.groupby("asset", sort=False):
        cells = rows.set_index("interval").reindex(intervals).reset_index().to_dict("records")
        grid_row(asset, [ui.pair_card(cell) for cell in cells])
    summary = timeframe_summary(grid).set_index("interval").reindex(intervals).reset_index()
    grid_row("All", [ui.summary_card(row) for row in summary.to_dict("records")])
    jobs = app.open_jobs()
    jobs = jobs[jobs["kind"] == JobKind.RETRAIN]  # lab runs show on the Lab page
    if len(jobs):
        st.info(
            "Retrain jobs: "
            + " · ".join(
                f"{j.asset} {j.interval} {j.status} ({j.message})" for j in jobs.itertuples()
            ),
            icon=":material/model_training:",
        )
    toast_new_recalibrations()
    st.caption(f"Refreshed every {ui.REFRESH_SECONDS} s · {ui.timestamp(app.clock.now())}")


@st.fragment(run_every=ui.REFRESH_SECONDS)
def recalibration_feed() -> None:
    routine = st.toggle(
        "Include routine decisions (healthy, waiting for trades)", key="feed_routine"
    )
    feed = app.recalibration_log(routine=routine, limit=30)
    st.dataframe(
        feed[["ts", "asset", "interval", "trigger", "action", "message"]],
        hide_index=True,
        column_config={
            "ts": ui.time_column("time (UTC)"),
            "message": st.column_config.TextColumn("what happened", width="large"),
        },
    )


live_grid()
st.subheader("Force retrain")
st.caption(
    "Queues one forced retrain per asset of the timeframe (cooldown and health ignored); the "
    "engine works the jobs one at a time and promotes a challenger only if its Brier score "
    "beats the serving model's."
)
for column, interval in zip(st.columns(len(intervals)), intervals, strict=True):
    with column:
        if ui.confirmed_action(
            f"retrain-{interval}",
            f"Retrain {interval}",
            f"Retrain **every asset on {interval}** now?",
        ):
            queued = app.request_retrain_timeframe(interval)
            st.toast(f"{len(queued)} retrain job(s) queued for {interval}")
st.subheader("Latest recalibration decisions")
recalibration_feed()
