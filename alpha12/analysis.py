"""Feature snapshots and their targets: the vectorised backfill, the live per-bar update, and
the training frames models learn from.

A snapshot row holds bar t's 39 features (from bars <= t), the serving model's probability and
whether a setup was generated; its target (the long triple-barrier outcome) is filled only
once it is known, with `target_ts` saying when that was.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alpha12 import features, targets
from alpha12.bars import empty_bars
from alpha12.config import Settings, TimeframeSettings
from alpha12.features import FEATURE_NAMES
from alpha12.store import Store

SNAPSHOT_SOURCE = "background_analysis"
MAX_TRAIN_ROWS = 1000  # the most recent labelled rows: recalibration follows the current regime
TARGET_COLUMNS = ("target", "target_ts", "pnl_pct")


def outcomes(
    bars: pd.DataFrame,
    interval: str,
    timeframe: TimeframeSettings,
    round_trip_cost_bps: float,
    direction: int = 1,
) -> pd.DataFrame:
    """Triple-barrier outcomes of a setup at every bar, barriers from the bar's ATR(14)."""
    atr = features.atr(bars["high"], bars["low"], bars["close"])
    return targets.triple_barrier(
        bars,
        atr,
        interval=interval,
        tp_mult=timeframe.tp_mult,
        sl_mult=timeframe.sl_mult,
        horizon=timeframe.horizon_bars,
        direction=direction,
        round_trip_cost_bps=round_trip_cost_bps,
    )


def snapshot_rows(bars: pd.DataFrame, interval: str, settings: Settings) -> pd.DataFrame:
    """Features and (where known) long targets for every bar of `bars`, in one pass."""
    table = features.compute_features(bars)
    table.insert(0, "ts", bars["ts"].to_numpy())
    known = outcomes(bars, interval, settings.timeframe(interval), settings.round_trip_cost_bps)
    table["target"] = known["label"].to_numpy()
    table["target_ts"] = known["target_ts"].to_numpy()
    table["pnl_pct"] = known["pnl_pct"].to_numpy()
    return table


def backfill_pair(store: Store, settings: Settings, asset: str, interval: str) -> int:
    """Snapshots and targets for the pair's whole stored history; returns rows added."""
    bars = store.read_bars(asset, interval)
    if bars.empty:
        return 0
    rows = snapshot_rows(bars, interval, settings)
    added = insert_snapshots(store, asset, interval, rows)
    update_targets(store, asset, interval, rows)
    return added


def insert_snapshots(store: Store, asset: str, interval: str, rows: pd.DataFrame) -> int:
    """Insert snapshot rows not stored yet (keyed by asset, interval, ts, source)."""
    if rows.empty:
        return 0
    columns = ["ts", *FEATURE_NAMES, *TARGET_COLUMNS, *_optional_columns(rows)]
    names = ", ".join(columns)
    return store.write_frame(
        rows[columns],
        f"""INSERT OR IGNORE INTO snapshots (asset, interval, source, {names})
            SELECT ?, ?, ?, {names} FROM incoming""",
        [asset, interval, SNAPSHOT_SOURCE],
    )[0][0]


def _optional_columns(rows: pd.DataFrame) -> list[str]:
    optional = ("probability", "model_version", "model_scope", "setup_generated")
    return [c for c in optional if c in rows.columns]


def update_targets(store: Store, asset: str, interval: str, rows: pd.DataFrame) -> int:
    """Fill the targets that have become known; a known target is never rewritten."""
    matured = rows.loc[rows["target"].notna(), ["ts", *TARGET_COLUMNS]]
    if matured.empty:
        return 0
    return store.write_frame(
        matured,
        """UPDATE snapshots s SET target = m.target, target_ts = m.target_ts, pnl_pct = m.pnl_pct
           FROM incoming m WHERE s.asset = ? AND s.interval = ? AND s.source = ?
             AND s.ts = m.ts AND s.target IS NULL""",
        [asset, interval, SNAPSHOT_SOURCE],
    )[0][0]


def last_snapshot_ts(store: Store, asset: str, interval: str) -> pd.Timestamp | None:
    value = store.scalar(
        "SELECT max(ts) FROM snapshots WHERE asset = ? AND interval = ? AND source = ?",
        [asset, interval, SNAPSHOT_SOURCE],
    )
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


def new_bar_features(store: Store, asset: str, interval: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tail bars, feature rows) for the bars that have no snapshot yet.

    Only a bounded tail is read: features.TAIL_BARS of history reproduce the full-history
    values, so the live cycle never recomputes history.
    """
    last = last_snapshot_ts(store, asset, interval)
    pending = store.scalar(
        "SELECT count(*) FROM bars WHERE asset = ? AND interval = ? AND ts > ?",
        [asset, interval, last if last is not None else pd.Timestamp(0, tz="UTC")],
    )
    if not pending:
        return empty_bars(), pd.DataFrame(columns=["ts"])
    bars = store.read_bars(asset, interval, tail=features.TAIL_BARS + pending)
    if pending == 1:
        latest = features.latest_features(bars.iloc[-features.TAIL_BARS :])
        table = pd.DataFrame([latest.to_numpy()], columns=FEATURE_NAMES)
    else:
        table = features.compute_features(bars).iloc[-pending:].reset_index(drop=True)
    table.insert(0, "ts", bars["ts"].iloc[-pending:].to_numpy())
    return bars, table


def refresh_targets(
    store: Store, settings: Settings, asset: str, interval: str, bars: pd.DataFrame
) -> int:
    """Fill targets that matured with the newest bars, from the tail already read."""
    known = outcomes(bars, interval, settings.timeframe(interval), settings.round_trip_cost_bps)
    rows = pd.DataFrame(
        {
            "ts": bars["ts"],
            "target": known["label"],
            "target_ts": known["target_ts"],
            "pnl_pct": known["pnl_pct"],
        }
    )
    recent = rows.iloc[-(settings.timeframe(interval).horizon_bars + 2) * 4 :]
    return update_targets(store, asset, interval, recent)


def labelled_history(store: Store, settings: Settings, asset: str, interval: str) -> pd.DataFrame:
    """Every labelled snapshot of the pair with both directions' outcomes, oldest first.

    Columns: ts, target_ts, label, pnl_long, short_target_ts, pnl_short and the features.
    Only `as_of_view` of it may be shown to a model.
    """
    frame = store.query(
        f"""SELECT ts, target_ts, target AS label, pnl_pct AS pnl_long,
                   {", ".join(FEATURE_NAMES)}
            FROM snapshots WHERE asset = ? AND interval = ? AND source = ?
              AND target IS NOT NULL ORDER BY ts""",
        [asset, interval, SNAPSHOT_SOURCE],
    )
    bars = store.read_bars(asset, interval)
    short = outcomes(
        bars, interval, settings.timeframe(interval), settings.round_trip_cost_bps, direction=-1
    ).set_index(bars["ts"])
    frame["short_target_ts"] = short["target_ts"].reindex(frame["ts"]).to_numpy()
    frame["pnl_short"] = short["pnl_pct"].reindex(frame["ts"]).to_numpy()
    return frame


def as_of_view(history: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """What a model trained at `as_of` may see: labels known by then, the most recent
    MAX_TRAIN_ROWS, and short outcomes only where they too were known."""
    view = history[history["target_ts"] <= as_of].iloc[-MAX_TRAIN_ROWS:].copy()
    view.loc[~(view["short_target_ts"] <= as_of), "pnl_short"] = np.nan
    return view.drop(columns="short_target_ts").reset_index(drop=True)


def training_frame(
    store: Store, settings: Settings, asset: str, interval: str, as_of: pd.Timestamp
) -> pd.DataFrame:
    """The rows a model trained `as_of` may learn from (see `labelled_history`)."""
    return as_of_view(labelled_history(store, settings, asset, interval), as_of)


def pooled_training_frame(
    store: Store, settings: Settings, asset: str, as_of: pd.Timestamp
) -> pd.DataFrame:
    """All of an asset's timeframes together, for its fallback model, oldest first."""
    frames = [training_frame(store, settings, asset, i, as_of) for i in settings.intervals]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return training_frame(store, settings, asset, settings.intervals[0], as_of)
    pooled = pd.concat(frames).sort_values("ts", kind="stable")
    return pooled.iloc[-MAX_TRAIN_ROWS:].reset_index(drop=True)
