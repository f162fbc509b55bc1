"""Lab: replay stored history under several retraining policies side by side (a job on the
engine's trainer, behind any other), follow or cancel it, and re-open any kept run: its table
with error bars, the plain sentences, every policy's equity, the difference to never, a sweep
of the custom policy, downloads, and a policy's thresholds applied to the live settings."""

import json

import streamlit as st

from alpha12 import ui
from alpha12.errors import Alpha12Error
from alpha12.lab import figures, oracle
from alpha12.lab.policies import POLICIES, policies_text
from alpha12.lab.runner import sweep_table
from alpha12.lab.runs import results_view
from alpha12.vocabulary import OPEN_JOBS

app = ui.context()
st.title("Lab")
DEFAULT_POLICIES = ["never", "timer", "rolling", "seed", "guarded"]
SWEEP_WIN_RATES = [0.40, 0.45, 0.50, 0.55, 0.60]
SWEEP_COOLDOWNS = [0.0, 6.0, 12.0, 24.0, 48.0, 72.0]


def pair_choice(key: str) -> list[tuple[str, str]]:
    """Assets x timeframes picked on the page."""
    left, right = st.columns(2)
    assets = left.multiselect("Assets", app.universe(), app.universe()[:1], key=f"{key}_assets")
    intervals = right.multiselect(
        "Timeframes", app.settings.intervals, app.settings.intervals[:1], key=f"{key}_intervals"
    )
    return [(a, i) for a in assets for i in intervals]


def queue(run, message: str) -> None:
    """Queue a run (or sweep) through the facade; a refusal is shown in its plain words."""
    try:
        run_id = run()
    except Alpha12Error as error:
        st.error(str(error))
        return
    st.session_state["lab_open"] = run_id
    ui.flash(message.format(run_id=run_id))
    st.rerun()


def new_run() -> None:
    pairs = pair_choice("lab")
    kinds = st.multiselect("Policies", list(POLICIES), DEFAULT_POLICIES, key="lab_kinds")
    typed = st.text_input(
        "Policies with parameters (optional, comma-separated)",
        key="lab_typed",
        placeholder="timer:hours=72, custom:win_rate=0.5:cooldown_hours=24",
        help="A policy typed here replaces the same one ticked above.",
    )
    text = policies_text(kinds, typed)
    if ui.confirmed_action(
        "lab-run",
        "Run",
        f"Replay **{len(pairs)} pair(s)** under **{text or 'no policy'}**? It runs as a job on "
        "the engine's trainer, behind any other job.",
    ):
        queue(lambda: app.lab.request(pairs, text), "Lab run {run_id} queued.")


@st.fragment(run_every=ui.REFRESH_SECONDS)
def progress() -> None:
    """The open runs' progress; a full rerun when one ends, so its results show."""
    runs = app.lab.runs()
    active = runs[runs["status"].isin(OPEN_JOBS)]
    for row in active.itertuples():
        st.progress(
            float(row.progress) if row.progress == row.progress else 0.0,
            text=f"Lab run {row.id} {row.status}: {row.job_message or row.message}",
        )
    if st.session_state.pop("lab_active", False) and active.empty:
        st.rerun()
    st.session_state["lab_active"] = not active.empty


def cancel_buttons() -> None:
    runs = app.lab.runs()
    for run_id in runs.loc[runs["status"].isin(OPEN_JOBS), "id"]:
        if ui.confirmed_action(
            f"lab-cancel-{run_id}",
            f"Cancel run {run_id}",
            f"Stop lab run {run_id}? The parts already finished are kept; run it again "
            "(`python -m alpha12 lab --resume`) to finish it.",
        ):
            ui.flash(f"Lab run {run_id}: {app.lab.cancel(run_id)}.")
            st.rerun()


def past_runs() -> int | None:
    """The kept runs; the one chosen to open."""
    runs = app.lab.runs()
    if runs.empty:
        st.info("No lab run yet: choose pairs and policies above and press Run.")
        return None
    listing = runs.assign(
        pairs=[", ".join(" ".join(p) for p in json.loads(v)) for v in runs["pairs"]],
        policies=[", ".join(p["name"] for p in json.loads(v)) for v in runs["policies"]],
    )
    st.dataframe(
        listing[["id", "created_at", "status", "pairs", "policies", "code_version", "message"]],
        hide_index=True,
        column_config={"created_at": ui.time_column("created (market time)")},
    )
    ids = runs["id"].tolist()
    if st.session_state.get("lab_open") not in ids:
        st.session_state["lab_open"] = ids[0]
    return st.selectbox("Open run", ids, key="lab_open", format_func=lambda i: f"run {i}")


def show_run(run_id: int) -> None:
    kept = app.lab.open(run_id)
    table, lab = kept.lab.table, kept.lab
    st.caption(f"Run {run_id} · {kept.record['status']} · {kept.record['message']}")
    for problem in lab.problems.values():
        st.warning(problem)
    if table.empty:
        st.info("No part of this run has finished yet.")
        return
    st.dataframe(results_view(table), hide_index=True)
    st.caption(oracle.REGRET_MEANING)
    for sentence in lab.sentences.values():
        st.markdown(f"- {sentence}")
    pairs = list(lab.sentences)
    pair = st.selectbox("Pair", pairs, key="lab_pair", format_func=" ".join)
    st.plotly_chart(figures.equity_chart(*lab.curves(*pair), f"{' '.join(pair)}: equity in R"))
    if "never" in set(table["policy"]):
        st.plotly_chart(figures.difference_heatmap(table))
    sweep = sweep_table(table)
    if sweep[["win_rate", "cooldown_hours"]].drop_duplicates().shape[0] > 1:
        st.plotly_chart(figures.sweep_heatmap(sweep))
    downloads(run_id)
    apply_thresholds(kept)


def downloads(run_id: int) -> None:
    csv, parquet = st.columns(2)
    for column, file_format in ((csv, "csv"), (parquet, "parquet")):
        column.download_button(
            f"Download {file_format.upper()}",
            app.lab.export(run_id, file_format),
            file_name=f"alpha12-lab-{run_id}.{file_format}",
            key=f"lab_download_{file_format}",
        )


def apply_thresholds(kept) -> None:
    """A seed, guarded, page_hinkley or custom policy's thresholds and trigger made the live
    settings of a timeframe."""
    left, right = st.columns(2)
    policy = left.selectbox("Policy", kept.policies, key="lab_apply_policy")
    interval = right.selectbox(
        "Timeframe", sorted({i for _, i in kept.pairs}), key="lab_apply_interval"
    )
    run_id = kept.id
    if ui.confirmed_action(
        f"lab-apply-{run_id}",
        f"Apply this policy's thresholds to {interval}",
        f"Make **{policy}**'s win rate, profit factor, minimum trades, cooldown and trigger the "
        f"live settings of **{interval}**? The change is audited and applies at the next monitor "
        "run.",
    ):
        try:
            problems = app.lab.apply(run_id, interval, policy)
        except Alpha12Error as error:
            st.error(str(error))
            return
        if problems:
            st.error("Not applied: " + "; ".join(problems))
            return
        ui.flash(f"{policy}'s thresholds now apply to {interval}.")
        st.rerun()


def sweep_request() -> None:
    """One pair, the custom policy over a small grid of win-rate threshold x cooldown, queued
    as a lab run without the oracle."""
    left, middle, right = st.columns(3)
    pair = left.selectbox(
        "Pair", [(a, i) for a in app.universe() for i in app.settings.intervals],
        key="sweep_pair", format_func=" ".join,
    )  # fmt: skip
    win_rates = middle.multiselect(
        "Win-rate thresholds", SWEEP_WIN_RATES, [0.45, 0.55], key="sweep_win_rates"
    )
    cooldowns = right.multiselect(
        "Cooldowns (hours)", SWEEP_COOLDOWNS, [12.0, 24.0], key="sweep_cooldowns"
    )
    if ui.confirmed_action(
        "lab-sweep",
        "Run sweep",
        f"Replay {' '.join(pair)} under {len(win_rates) * len(cooldowns)} custom policies? "
        "It runs as a job; open it below when it is done.",
    ):
        queue(lambda: app.lab.request_sweep(pair, win_rates, cooldowns), "Sweep {run_id} queued.")


st.subheader("New run")
new_run()
progress()
cancel_buttons()
with st.expander("Sweep: win-rate threshold x cooldown of the custom policy"):
    sweep_request()
st.subheader("Runs")
opened = past_runs()
if opened is not None:
    show_run(opened)
