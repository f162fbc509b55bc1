"""Feature snapshots and their targets: the vectorised backfill, the live per-bar update, and
the training frames models learn from.

A snapshot row holds bar t's 39 features (from bars <= t), the serving model's probability and
whether a setup was generated; its target (the long triple-barrier outcome) is filled only
once it is known, with `target_ts` saying when that was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alpha12 import features, targets
from alpha12.config import Settings, TimeframeSettings
from alpha12.features import FEATURE_NAMES
from alpha12.store import Store
from alpha12.timeframes import interval_delta

SNAPSHOT_SOURCE = "background_analysis"
MAX_TRAIN_ROWS = 1000  # the most recent labelled rows: recalibration follows the current regime
TARGET_COLUMNS = ("target", "target_ts", "pnl_pct")
STORED_DIGITS = 4  # significant digits of a stored feature (see stored_features)


def outcomes(
    bars: pd.DataFrame,
    interval: str,
    timeframe: TimeframeSettings,
    round_trip_cost_bps: float,
    direction: int = 1,
    last: int | None = None,
) -> pd.DataFrame:
    """Triple-barrier outcomes of a setup at every bar (or only the `last` bars), barriers
    from the bar's ATR(14) over all of `bars`."""
    atr = features.atr(bars["high"], bars["low"], bars["close"])
    if last is not None:
        bars, atr = bars.iloc[-last:], np.asarray(atr)[-last:]
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
    rows = for_pair(snapshot_rows(bars, interval, settings), asset, interval)
    added = insert_snapshots(store, rows)
    update_targets(store, rows)
    return added


def for_pair(rows: pd.DataFrame, asset: str, interval: str) -> pd.DataFrame:
    """`rows` tagged with their pair, as the snapshot writes take them."""
    return rows.assign(asset=asset, interval=interval)


def insert_snapshots(store: Store, rows: pd.DataFrame) -> int:
    """Insert snapshot rows (of any pairs: columns asset, interval, ts, ...) not stored yet;
    the key is (asset, interval, ts, source). Features are stored as `stored_features`."""
    if rows.empty:
        return 0
    columns = ["asset", "interval", "ts", *FEATURE_NAMES, *TARGET_COLUMNS, *_optional_columns(rows)]
    names = ", ".join(columns)
    incoming = rows[columns].copy()
    incoming[list(FEATURE_NAMES)] = stored_features(rows)
    # The time bounds let DuckDB skip the row groups of older snapshots (zone maps), so a live
    # insert checks only the newest rows for an existing key.
    return store.write_frame(
        incoming,
        f"""INSERT INTO snapshots (source, {names})
            SELECT ?, {names} FROM incoming i WHERE NOT EXISTS (
                SELECT 1 FROM snapshots s
                WHERE s.asset = i.asset AND s.interval = i.interval AND s.source = ?
                  AND s.ts = i.ts
                  AND s.ts BETWEEN (SELECT min(ts) FROM incoming)
                               AND (SELECT max(ts) FROM incoming))""",
        [SNAPSHOT_SOURCE, SNAPSHOT_SOURCE],
    )[0][0]


def stored_features(rows: pd.DataFrame) -> pd.DataFrame:
    """The features as snapshots store them and models see them: STORED_DIGITS significant
    digits in float32. Far below what the models can tell apart (their trees split on 255
    bins), and it lets DuckDB compress the features to about 2.9 bytes a value instead of 4."""
    values = rows[list(FEATURE_NAMES)].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log10(np.abs(values)))
    scale = 10.0 ** (STORED_DIGITS - 1 - np.where(np.isfinite(magnitude), magnitude, 0))
    rounded = np.round(values * scale) / scale
    return pd.DataFrame(
        rounded.astype("float32").astype("float64"), columns=FEATURE_NAMES, index=rows.index
    )


def _optional_columns(rows: pd.DataFrame) -> list[str]:
    optional = ("probability", "model_version", "model_scope", "setup_generated")
    return [c for c in optional if c in rows.columns]


def update_targets(store: Store, rows: pd.DataFrame) -> int:
    """Fill the targets that have become known (rows of any pairs); a known target is never
    rewritten."""
    if rows.empty:
        return 0
    matured = rows.loc[rows["target"].notna(), ["asset", "interval", "ts", *TARGET_COLUMNS]]
    if matured.empty:
        return 0
    return store.write_frame(
        matured,
        """UPDATE snapshots s SET target = m.target, target_ts = m.target_ts, pnl_pct = m.pnl_pct
           FROM incoming m WHERE s.asset = m.asset AND s.interval = m.interval
             AND s.source = ? AND s.ts = m.ts AND s.target IS NULL""",
        [SNAPSHOT_SOURCE],
    )[0][0]


@dataclass
class PendingTail:
    """A pair's bars not yet snapshotted (`pending` of them, newest last) after enough history
    to compute their features; `newest_bar` is the pair's last stored bar (None: no bars)."""

    asset: str
    interval: str
    pending: int
    newest_bar: pd.Timestamp | None
    bars: pd.DataFrame | None  # None when nothing is pending


def pending_tails(store: Store, pairs: list[tuple[str, str]]) -> list[PendingTail]:
    """Every pair's PendingTail, in two queries whatever the number of pairs.

    Only a bounded tail is read: features.TAIL_BARS of history reproduce the full-history
    values, so the live cycle never recomputes history.
    """
    if not pairs:
        return []
    counts = store.query_with(
        pd.DataFrame(pairs, columns=["asset", "interval"]),
        """WITH snapped AS (
             SELECT asset, interval, max(ts) AS last FROM snapshots
             JOIN incoming USING (asset, interval) WHERE source = ? GROUP BY ALL)
           SELECT k.asset, k.interval, count(b.ts) AS pending,
                  coalesce(max(b.ts), any_value(s.last)) AS newest_bar
           FROM incoming k LEFT JOIN snapped s USING (asset, interval)
           LEFT JOIN bars b ON b.asset = k.asset AND b.interval = k.interval
                AND b.ts > coalesce(s.last, TIMESTAMPTZ '1970-01-01')
           GROUP BY ALL""",
        [SNAPSHOT_SOURCE],
    )
    counts["newest_bar"] = counts["newest_bar"].astype("datetime64[us, UTC]")
    tails = _tails(store, counts[counts["pending"] > 0])
    return [
        PendingTail(
            row.asset,
            row.interval,
            int(row.pending),
            None if pd.isna(row.newest_bar) else row.newest_bar,
            tails.get((row.asset, row.interval)),
        )
        for row in counts.itertuples(index=False)
    ]


def _tails(store: Store, counts: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """The last TAIL_BARS + pending bars of each pair in `counts`: one read of a time window
    that holds them when bars have no gaps, then a per-pair read for any pair whose window
    fell short of both that count and the pair's first bar."""
    if counts.empty:
        return {}
    wanted = counts["pending"] + features.TAIL_BARS
    windows = counts.assign(
        wanted=wanted,
        since=counts["newest_bar"] - wanted * counts["interval"].map(interval_delta),
    )
    found = store.query_with(
        windows[["asset", "interval", "since"]],
        """SELECT b.asset, b.interval, b.ts, b.open, b.high, b.low, b.close, b.volume
           FROM bars b JOIN incoming w ON b.asset = w.asset AND b.interval = w.interval
                AND b.ts >= w.since
           ORDER BY b.asset, b.interval, b.ts""",
    )
    grouped = dict(iter(found.groupby(["asset", "interval"], sort=False)))
    first_bars = store.first_bars()
    tails = {}
    for row in windows.itertuples(index=False):
        key = (row.asset, row.interval)
        bars = grouped.get(key)
        whole_history = key in first_bars and row.since <= first_bars[key]
        if bars is None or (len(bars) < row.wanted and not whole_history):  # a gap: read exactly
            tails[key] = store.read_bars(row.asset, row.interval, tail=row.wanted)
        else:
            tails[key] = bars.iloc[-row.wanted :, 2:].reset_index(drop=True)
    return tails


def tail_features(bars: pd.DataFrame, pending: int) -> pd.DataFrame:
    """Feature rows (with ts) of the last `pending` bars of a tail."""
    if pending == 1:
        latest = features.latest_features(bars.iloc[-features.TAIL_BARS :])
        table = pd.DataFrame([latest.to_numpy()], columns=FEATURE_NAMES)
    else:
        table = features.compute_features(bars).iloc[-pending:].reset_index(drop=True)
    table.insert(0, "ts", bars["ts"].iloc[-pending:].to_numpy())
    return table


def matured_targets(bars: pd.DataFrame, interval: str, settings: Settings) -> pd.DataFrame:
    """The targets the newest bars of a tail may have settled (ts, target, target_ts, pnl_pct)."""
    timeframe = settings.timeframe(interval)
    recent = (timeframe.horizon_bars + 2) * 4
    known = outcomes(bars, interval, timeframe, settings.round_trip_cost_bps, last=recent)
    return pd.DataFrame(
        {
            "ts": bars["ts"].iloc[-recent:].to_numpy(),
            "target": known["label"].to_numpy(),
            "target_ts": known["target_ts"].to_numpy(),
            "pnl_pct": known["pnl_pct"].to_numpy(),
        }
    )


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


def as_of_view(
    history: pd.DataFrame,
    as_of: pd.Timestamp,
    rows: int = MAX_TRAIN_ROWS,
    hours: float | None = None,
) -> pd.DataFrame:
    """What a model trained at `as_of` may see: labels known by then, the most recent `rows`
    (and, given `hours`, only bars of that much market time before `as_of`), and short
    outcomes only where they too were known."""
    known = history[history["target_ts"] <= as_of]
    if hours is not None:
        known = known[known["ts"] > as_of - pd.Timedelta(hours=hours)]
    view = known.iloc[-rows:].copy()
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
