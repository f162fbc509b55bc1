"""Snapshots: filter, sort and page the feature snapshots in DuckDB, look at a feature's
distribution by outcome and its drift, and download the filtered set."""

import datetime as dt

import pandas as pd
import streamlit as st

from alpha12 import ui
from alpha12.drift import MIN_DRIFT_ROWS, PSI_MODERATE, PSI_SIGNIFICANT
from alpha12.features import FEATURE_NAMES, FEATURES
from alpha12.store import SnapshotQuery
from alpha12.store.snapshots import SNAPSHOT_COLUMNS

ANY = "any"
PAGE_SIZES = (50, 100, 500)
LEADING_COLUMNS = [c for c in SNAPSHOT_COLUMNS if c not in FEATURE_NAMES]  # then the features
app = ui.context()
st.title("Snapshots")
choices = app.snapshot_choices()


def choose(column, label: str, options: list, key: str):
    """A select box whose first option means "no filter" (returned as None)."""
    picked = column.selectbox(label, [ANY, *options], key=key)
    return None if picked == ANY else picked


def yes_no(column, label: str, key: str) -> bool | None:
    picked = column.selectbox(label, [ANY, "yes", "no"], key=key)
    return None if picked == ANY else picked == "yes"


def date_range(column) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The picked dates as [start, end) UTC bounds; an empty store has no range to pick."""
    if choices["first"] is None:
        column.date_input("Dates", value=None, disabled=True, key="snap_dates")
        return None, None
    first, last = choices["first"].date(), choices["last"].date()
    picked = column.date_input(
        "Dates (UTC)", value=(first, last), min_value=first, max_value=last, key="snap_dates"
    )
    dates = picked if isinstance(picked, tuple) else (picked,)  # one date while picking
    start, end = (dates[0], dates[-1]) if dates else (None, None)
    return (
        pd.Timestamp(start, tz="UTC") if start else None,
        pd.Timestamp(end + dt.timedelta(days=1), tz="UTC") if end else None,
    )


def filters() -> SnapshotQuery:
    top = st.columns(4)
    bottom = st.columns(4)
    start, end = date_range(top[2])
    return SnapshotQuery(
        asset=choose(top[0], "Asset", app.universe(), "snap_asset"),
        interval=choose(top[1], "Timeframe", list(app.settings.intervals), "snap_interval"),
        start=start,
        end=end,
        source=choose(top[3], "Source", choices["sources"], "snap_source"),
        setup_generated=yes_no(bottom[0], "Setup generated", "snap_setup"),
        labelled=yes_no(bottom[1], "Labelled (target known)", "snap_labelled"),
        model_version=choose(bottom[2], "Model version", choices["model_versions"], "snap_version"),
    )


def table(query: SnapshotQuery) -> None:
    sort, order, size, page_box = st.columns(4)
    order_by = sort.selectbox(
        "Sort by", SNAPSHOT_COLUMNS, index=SNAPSHOT_COLUMNS.index("ts"), key="snap_sort"
    )
    descending = (
        order.radio("Order", ["descending", "ascending"], horizontal=True, key="snap_order")
        == "descending"
    )
    limit = size.selectbox("Rows per page", PAGE_SIZES, index=1, key="snap_size")
    page = page_box.number_input("Page", min_value=1, value=1, step=1, key="snap_page")
    rows, total = app.snapshot_page(query, order_by, descending, limit, (page - 1) * limit)
    first = min((page - 1) * limit + 1, total)
    st.caption(
        f"Rows {first:,}–{(page - 1) * limit + len(rows):,} of {total:,} matching "
        f"(page {page} of {max(1, -(-total // limit)):,})"
    )
    st.dataframe(
        rows,
        hide_index=True,
        column_order=[*LEADING_COLUMNS, *FEATURE_NAMES],
        column_config=column_config(),
        height=420,
    )
    csv, parquet, _ = st.columns([1, 1, 4])
    csv.download_button(
        "Download CSV",
        lambda: app.snapshot_export(query, "csv"),
        file_name="snapshots.csv",
        mime="text/csv",
        icon=":material/download:",
    )
    parquet.download_button(
        "Download Parquet",
        lambda: app.snapshot_export(query, "parquet"),
        file_name="snapshots.parquet",
        mime="application/octet-stream",
        icon=":material/download:",
    )


def column_config() -> dict:
    config = {
        name: st.column_config.NumberColumn(name, help=FEATURES[name], format="%.4g")
        for name in FEATURE_NAMES
    }
    return config | {
        "ts": ui.time_column("bar (UTC)"),
        "target_ts": ui.time_column("target known (UTC)"),
        "probability": st.column_config.ProgressColumn(
            "p(win)", min_value=0.0, max_value=1.0, format="%.3f"
        ),
        "setup_generated": st.column_config.CheckboxColumn("setup"),
        "target": st.column_config.NumberColumn("target", help="1: a long won; 0: it lost"),
        "pnl_pct": st.column_config.NumberColumn("pnl %", format="%.3f"),
    }


def distribution(query: SnapshotQuery) -> None:
    feature = st.selectbox(
        "Feature",
        FEATURE_NAMES,
        key="snap_feature",
        format_func=lambda name: f"{name}: {FEATURES[name]}",
    )
    sample = app.feature_sample(query, feature)
    if sample.empty:
        st.info("No labelled snapshots match the filters.")
        return
    st.caption(f"{len(sample):,} labelled rows (a random sample of at most 20,000).")
    st.plotly_chart(ui.distribution_figure(sample, feature))


def drift(query: SnapshotQuery) -> None:
    if query.asset is None or query.interval is None:
        st.info(
            "Pick an asset and a timeframe to compare recent snapshots with the serving "
            "model's training window."
        )
        return
    report = app.feature_drift(query.asset, query.interval)
    if report is None:
        st.info("No model serves this pair yet.")
        return
    if report["psi"] is None:
        st.info(
            f"{report['recent_rows']} snapshots since the serving model's training window "
            f"(and {report['reference_rows']} inside it): drift is measured from "
            f"{MIN_DRIFT_ROWS} on each side."
        )
        return
    st.caption(
        f"Population stability index of the {report['recent_rows']} newest snapshots against the "
        f"{report['reference_rows']} inside the training window "
        f"({ui.timestamp(report['window_start'])} to {ui.timestamp(report['window_end'])}); "
        f"below {PSI_MODERATE} is stable, above {PSI_SIGNIFICANT} a significant shift. "
        "Calendar features are left "
        "out: they follow the clock, not the market."
    )
    st.plotly_chart(ui.drift_figure(report["psi"]))


query = filters()
table(query)
left, right = st.columns(2)
with left:
    st.subheader("Distribution by outcome")
    distribution(query)
with right:
    st.subheader("Drift (PSI)")
    drift(query)
