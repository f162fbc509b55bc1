"""System: the engine and the clock, data freshness, recent errors, the per-timeframe
settings (validated, saved, audited, applied at the monitor's next run) and a CSV upload of
bars (through the same gate as `python -m alpha12 import-csv`)."""

import streamlit as st

from alpha12 import ui
from alpha12.config import EDITABLE, TRIGGERS
from alpha12.errors import Alpha12Error
from alpha12.sources.csv_files import MAX_UPLOAD_MB
from alpha12.timeframes import INTERVALS

app = ui.context()
st.title("System")
FIELD_HELP = {
    "win_rate": "minimum recent win rate (0 to 1) before the pair counts as degraded",
    "profit_factor": "minimum recent profit factor",
    "min_trades": "resolved trades needed before the monitor judges the pair",
    "cooldown_hours": "clock hours between two recalibration attempts of a pair",
    "min_rows": "labelled snapshot rows needed to train a model (at least 20)",
    "trigger": "threshold: the point win rate or profit factor below its minimum degrades the "
    "pair; guarded: only when the upper end of its 95% interval is below; page_hinkley: when "
    "the Page-Hinkley test detects a fall in the mean R of its trades",
    "max_calibration_gap": "live ECE (from 300 resolved predictions) beyond which the serving "
    "model counts as degraded",
}
# field -> (type, step, display format) of its input
FIELD_INPUT = {
    "win_rate": (float, 0.01, "%.3f"),
    "profit_factor": (float, 0.05, "%.2f"),
    "min_trades": (int, 1, "%d"),
    "cooldown_hours": (float, 1.0, "%.1f"),
    "min_rows": (int, 10, "%d"),
    "max_calibration_gap": (float, 0.01, "%.2f"),
}


@st.fragment(run_every=ui.REFRESH_SECONDS)
def engine_and_clock() -> None:
    status = app.system_status()
    engine, heartbeat, clock, schedule = st.columns(4)
    colour = ui.ENGINE_COLOURS.get(status["state"], "gray")
    engine.markdown(
        ui.fact(
            "Engine",
            f":{colour}-background[:{colour}[**{status['state']}**]]",
            f"{status['restarts']} restart(s)",
        )
    )
    beat = f"{ui.duration(status['heartbeat_age_s'])} ago" if status["heartbeat"] else "never"
    heartbeat.markdown(ui.fact("Heartbeat", beat, ui.timestamp(status["heartbeat"])))
    clock.markdown(
        ui.fact(
            f"{status['clock'].title()} clock",
            ui.timestamp(status["clock_now"]),
            f"{status['speed']:g}× speed" + (", paused" if status["paused"] else ""),
        )
    )
    schedule.markdown(
        ui.fact(
            "Next monitor run",
            ui.timestamp(status["next_monitor"]),
            f"every {status['monitor_period_minutes']:g} min of clock time; next collection "
            + ui.timestamp(status["next_collection"]),
        )
    )
    collection = app.collection_status()
    st.dataframe(
        collection[
            [
                "asset",
                "interval",
                "bars",
                "first_bar",
                "last_bar",
                "freshness_s",
                "next_close",
                "rejected",
            ]
        ],
        hide_index=True,
        column_config={
            "first_bar": ui.time_column("first bar"),
            "last_bar": ui.time_column("last bar"),
            "freshness_s": st.column_config.NumberColumn(
                "since last close (s)",
                format="%.0f",
                help="clock seconds since the newest stored bar closed",
            ),
            "next_close": ui.time_column("next bar closes", help="when it is collected next"),
            "rejected": st.column_config.NumberColumn("rejected rows"),
        },
    )


def recent_errors() -> None:
    errors = app.recent_errors()
    if errors.empty:
        st.success("No warnings or errors recorded.")
        return
    st.dataframe(
        errors[["ts", "level", "component", "asset", "interval", "message"]],
        hide_index=True,
        column_config={"ts": ui.time_column("time (UTC)", seconds=True)},
    )


def settings_form() -> None:
    table = app.timeframe_settings().set_index("interval")
    st.dataframe(
        table, column_config={k: st.column_config.Column(help=FIELD_HELP[k]) for k in EDITABLE}
    )
    interval = st.selectbox("Timeframe to edit", list(table.index), key="settings_interval")
    current = table.loc[interval]
    with st.form(f"settings-{interval}"):
        columns = st.columns(len(EDITABLE))
        trigger = columns[-1].selectbox(
            "trigger",
            TRIGGERS,
            index=TRIGGERS.index(current["trigger"]),
            help=FIELD_HELP["trigger"],
        )
        changes = {
            field: column.number_input(
                field,
                value=kind(current[field]),
                step=kind(step),
                format=shown,
                help=FIELD_HELP[field],
            )
            for column, (field, (kind, step, shown)) in zip(
                columns[:-1], FIELD_INPUT.items(), strict=True
            )
        } | {"trigger": trigger}
        password = (
            st.text_input("Admin password", type="password", key="settings_password")
            if ui.admin_required()
            else None
        )
        if st.form_submit_button("Save", type="primary"):
            save(interval, changes, password)


def save(interval: str, changes: dict, password: str | None) -> None:
    if not ui.authorized(password):
        st.error(ui.WRONG_PASSWORD)
        return
    problems = app.update_timeframe_settings(interval, changes)
    if problems:
        st.error("Not saved: " + "; ".join(problems))
        return
    ui.flash(f"Settings of {interval} saved; the monitor applies them at its next run.")
    st.rerun()


def csv_upload() -> None:
    uploaded = st.file_uploader(
        f"A CSV of bars (timestamp,open,high,low,close,volume; at most {MAX_UPLOAD_MB} MB)",
        type="csv",
        key="upload_file",
        help="Named ASSET_INTERVAL.csv (e.g. BTC_1h.csv), or give the asset and timeframe.",
    )
    asset_column, interval_column = st.columns(2)
    asset = asset_column.text_input("Asset (blank: from the file name)", key="upload_asset")
    interval = interval_column.selectbox(
        "Timeframe", [None, *INTERVALS], key="upload_interval", format_func=_interval_choice
    )
    if uploaded is None:
        return
    if ui.confirmed_action(
        "upload",
        f"Import {uploaded.name}",
        f"Import the bars of **{uploaded.name}**? Invalid rows are rejected with a reason; "
        "bars already stored are kept.",
    ):
        data = uploaded.getvalue()
        show_import(app.import_csv_upload(uploaded.name, data, asset.strip() or None, interval))


def alerts_and_backup() -> None:
    """Two admin actions of a service: prove the alert URLs work, and back up now (in this
    process, which owns the store, while the engine runs)."""
    test, copy = st.columns(2)
    with test:
        if ui.confirmed_action(
            "test-alert",
            "Send a test alert",
            "Send a test alert to every URL under **[alerts]** in the settings?",
        ):
            with st.spinner("Sending the test alert…"):
                delivered, message = app.send_test_alert()
            (st.success if delivered else st.warning)(f"Test alert: {message}.")
    with copy:
        if ui.confirmed_action(
            "backup",
            "Back up now",
            f"Copy the database and the models into a new folder in **{app.store.path.parent}** "
            "named by the time (backup-YYYYmmdd-HHMMSS)? The engine keeps running.",
        ):
            back_up()


def back_up() -> None:
    folder = app.default_backup_folder()
    try:
        with st.spinner("Backing up…"):
            manifest = app.backup(folder)
    except Alpha12Error as error:
        st.error(f"No backup: {error}")
        return
    st.success(
        f"Backup written to {folder}: {sum(manifest.tables.values()):,} rows and "
        f"{len(manifest.models)} model files, verified."
    )


def _interval_choice(interval: str | None) -> str:
    return "from the file name" if interval is None else interval


def show_import(reports) -> None:
    for report in reports:
        if report.error:
            st.error(f"Not imported: {report.error}")
            continue
        st.success(
            f"{report.path}: {report.imported} bars of {report.asset} {report.interval} imported "
            f"({report.already_stored} already stored, {report.duplicates} duplicates, "
            f"{report.rejected_total} rejected)"
        )
        for reason, count in report.rejected.items():
            st.caption(f"{count:,} rejected: {reason}")


st.subheader("Engine and clock")
engine_and_clock()
st.subheader("Recent warnings and errors")
recent_errors()
st.subheader("Alerts and backup")
alerts_and_backup()
st.subheader("Settings per timeframe")
settings_form()
st.subheader("Import bars from a CSV file")
csv_upload()
st.subheader("Settings changes")
st.dataframe(
    app.settings_audit(),
    hide_index=True,
    column_config={"wall_ts": ui.time_column("when (UTC)", seconds=True)},
)
