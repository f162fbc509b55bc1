"""Feature snapshots: one row per analysed bar, its prediction and, once known, its target.

Also the filtered views the Snapshots page pages through and exports, and the archive of old
rows into Parquet.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alpha12 import features
from alpha12.clock import utc
from alpha12.features import FEATURE_NAMES
from alpha12.snapshots import SNAPSHOT_SOURCE, TARGET_COLUMNS, stored_values
from alpha12.store.connection import arrow_table, equal_to
from alpha12.timeframes import interval_delta
from alpha12.vocabulary import FALLBACK_INTERVAL, ModelStatus, Pair

SNAPSHOT_COLUMNS = (
    "id",
    "asset",
    "interval",
    "ts",
    "source",
    *FEATURE_NAMES,
    "probability",
    "model_version",
    "model_scope",
    "setup_generated",
    "target",
    "target_ts",
    "pnl_pct",
)
_OPTIONAL_COLUMNS = ("probability", "model_version", "model_scope", "setup_generated")
# Rows older than the cutoff and outside what the models need, by id.
_ARCHIVABLE = """
    WITH ranked AS (
        SELECT id, asset, interval, ts,
               row_number() OVER (PARTITION BY asset, interval, source ORDER BY ts DESC) AS newest
        FROM snapshots),
    needed AS (
        SELECT asset, interval, min(window_start) AS since FROM models
        WHERE status = ? GROUP BY ALL)
    SELECT r.id FROM ranked r
    LEFT JOIN needed own ON own.asset = r.asset AND own.interval = r.interval
    LEFT JOIN needed pooled ON pooled.asset = r.asset AND pooled.interval = ?
    WHERE r.ts < ? AND r.newest > ? AND r.ts < least(coalesce(own.since, 'infinity'::TIMESTAMPTZ),
                                        coalesce(pooled.since, 'infinity'::TIMESTAMPTZ))"""


@dataclass(frozen=True)
class SnapshotQuery:
    """Filters of the snapshots table; None means "any"."""

    asset: str | None = None
    interval: str | None = None
    start: pd.Timestamp | None = None  # inclusive
    end: pd.Timestamp | None = None  # exclusive
    setup_generated: bool | None = None
    labelled: bool | None = None
    source: str | None = None
    model_version: int | None = None

    def where(self) -> tuple[str, list]:
        """A WHERE clause (fixed column names only) and its parameters."""
        clauses, params = equal_to(
            {
                "asset": self.asset,
                "interval": self.interval,
                "source": self.source,
                "model_version": self.model_version,
                "setup_generated": self.setup_generated,
            }
        )
        for clause, value in (("ts >= ?", self.start), ("ts < ?", self.end)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if self.labelled is not None:
            clauses.append("target IS NOT NULL" if self.labelled else "target IS NULL")
        return " AND ".join(clauses) or "TRUE", params


@dataclass
class PendingTail:
    """A pair's bars not yet snapshotted (`pending` of them, newest last) after enough history
    to compute their features; `newest_bar` is the pair's last stored bar (None: no bars)."""

    asset: str
    interval: str
    pending: int
    newest_bar: pd.Timestamp | None
    bars: pd.DataFrame | None  # None when nothing is pending


class SnapshotsTable:
    # -- the analysis's writes ------------------------------------------------------------

    def insert_snapshots(self, rows: pd.DataFrame) -> int:
        """Insert snapshot rows (of any pairs: columns asset, interval, ts, ...) not stored
        yet; the key is (asset, interval, ts, source). Features are stored as
        `snapshots.stored_values`, whatever the caller passed."""
        if rows.empty:
            return 0
        optional = [c for c in _OPTIONAL_COLUMNS if c in rows.columns]
        columns = ["asset", "interval", "ts", *TARGET_COLUMNS, *optional]
        names = ", ".join([*columns, *FEATURE_NAMES])
        stored = stored_values(rows[list(FEATURE_NAMES)].to_numpy(dtype="float64"))
        incoming = arrow_table(
            {name: rows[name] for name in columns} | dict(zip(FEATURE_NAMES, stored.T, strict=True))
        )
        # The time bounds let DuckDB skip the row groups of older snapshots (zone maps), so a
        # live insert checks only the newest rows for an existing key.
        return self.write_frame(
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

    def update_targets(self, rows: pd.DataFrame) -> int:
        """Fill the targets that have become known (rows of any pairs); a known target is
        never rewritten."""
        if rows.empty:
            return 0
        matured = rows.loc[rows["target"].notna(), ["asset", "interval", "ts", *TARGET_COLUMNS]]
        if matured.empty:
            return 0
        return self.write_frame(
            arrow_table(dict(matured.items())),
            """UPDATE snapshots s SET target = m.target, target_ts = m.target_ts,
                      pnl_pct = m.pnl_pct
               FROM incoming m WHERE s.asset = m.asset AND s.interval = m.interval
                 AND s.source = ? AND s.ts = m.ts AND s.target IS NULL""",
            [SNAPSHOT_SOURCE],
        )[0][0]

    def mark_walked(self, asset: str, interval: str, marks: pd.DataFrame) -> None:
        """What a warm-start walk decided at each bar (ts, probability, model_version,
        model_scope, setup_generated), written onto the pair's snapshots."""
        self.write_frame(
            marks,
            """UPDATE snapshots s SET probability = m.probability,
                      model_version = m.model_version, model_scope = m.model_scope,
                      setup_generated = m.setup_generated
               FROM incoming m WHERE s.asset = ? AND s.interval = ? AND s.source = ?
                 AND s.ts = m.ts""",
            [asset, interval, SNAPSHOT_SOURCE],
        )

    # -- the analysis's reads -------------------------------------------------------------

    def pending_tails(self, pairs: list[Pair]) -> list[PendingTail]:
        """Every pair's PendingTail, in two queries whatever the number of pairs.

        Only a bounded tail is read: features.TAIL_BARS of history reproduce the full-history
        values, so the live cycle never recomputes history.
        """
        if not pairs:
            return []
        counts = [
            (asset, interval, pending, None if newest is None else utc(newest))
            for asset, interval, pending, newest in self.rows_with(
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
        ]
        tails = self._tails([count for count in counts if count[2] > 0])
        return [PendingTail(*count, tails.get(count[:2])) for count in counts]

    def _tails(self, counts: list[tuple]) -> dict[Pair, pd.DataFrame]:
        """The last TAIL_BARS + pending bars of each (asset, interval, pending, newest bar) in
        `counts`: one read of a time window that holds them when bars have no gaps, then a
        per-pair read for any pair whose window fell short of both that count and the pair's
        first bar."""
        if not counts:
            return {}
        windows = [
            (asset, interval, wanted, newest - wanted * interval_delta(interval))
            for asset, interval, pending, newest in counts
            for wanted in [pending + features.TAIL_BARS]
        ]
        asset, interval, _, since = zip(*windows, strict=True)
        # Rows are tagged with the pair's position, not its names: half a million strings
        # cost more to fetch than the prices.
        found = self.query_with(
            pd.DataFrame(
                {"asset": asset, "interval": interval, "since": since, "pair": range(len(since))}
            ),
            """SELECT w.pair, b.ts, b.open, b.high, b.low, b.close, b.volume
               FROM bars b JOIN incoming w ON b.asset = w.asset AND b.interval = w.interval
                    AND b.ts >= w.since
               ORDER BY w.pair, b.ts""",
        )
        spans = _spans(found.pop("pair").to_numpy())  # popped once: slicing rows is then cheap
        first_bars = self.first_bars()
        tails = {}
        for pair, (asset, interval, wanted, since) in enumerate(windows):
            key = (asset, interval)
            start, stop = spans.get(pair, (0, 0))
            whole_history = key in first_bars and since <= first_bars[key]
            if stop == start or (stop - start < wanted and not whole_history):  # a gap
                tails[key] = self.read_bars(asset, interval, tail=wanted)
            else:
                first = max(start, stop - wanted)
                tails[key] = found.iloc[first:stop].reset_index(drop=True)
        return tails

    def labelled_snapshots(
        self,
        asset: str,
        interval: str,
        known_by: pd.Timestamp | None = None,
        newest: int | None = None,
    ) -> pd.DataFrame:
        """The labelled snapshots of the pair, oldest first: ts, target_ts, label, pnl_long
        and the features. All of them, or only those whose label was known by `known_by`, or
        only the `newest` of those (a training window: a bounded read of a long history)."""
        limit = "" if newest is None else f"ORDER BY ts DESC LIMIT {int(newest)}"
        return self.query(
            f"""SELECT * FROM (
                  SELECT ts, target_ts, target AS label, pnl_pct AS pnl_long,
                         {", ".join(FEATURE_NAMES)}
                  FROM snapshots WHERE asset = ? AND interval = ? AND source = ?
                    AND target IS NOT NULL
                    AND (CAST(? AS TIMESTAMPTZ) IS NULL OR target_ts <= ?) {limit}
                ) ORDER BY ts""",
            [asset, interval, SNAPSHOT_SOURCE, known_by, known_by],
        )

    def live_predictions(self, keys: pd.DataFrame, now: pd.Timestamp, newest: int) -> pd.DataFrame:
        """The resolved live predictions of each pair's serving model in `keys` (asset,
        interval, version, scope, since: monitor.calibration_since): the probability it gave
        each of at most `newest` bars after `since` (the window's bar count; a cap that keeps
        the read bounded on irregular bars too), and the bar's target, known by `now`."""
        return self.query_with(
            keys,
            """SELECT s.asset, s.interval, s.ts, s.probability, s.target
               FROM snapshots s JOIN incoming k ON s.asset = k.asset AND s.interval = k.interval
                AND s.model_version = k.version AND s.model_scope = k.scope AND s.ts > k.since
               WHERE s.source = ? AND s.probability IS NOT NULL AND s.target IS NOT NULL
                 AND s.target_ts <= ?
               QUALIFY row_number() OVER (PARTITION BY s.asset, s.interval
                                          ORDER BY s.ts DESC) <= ?""",
            [SNAPSHOT_SOURCE, now, newest],
        )

    def labelled_after(
        self, asset: str, interval: str, after: pd.Timestamp, now: pd.Timestamp
    ) -> pd.DataFrame:
        """The pair's snapshots after `after` whose targets were known by `now`, oldest
        first: ts, label and the features."""
        return self.query(
            f"""SELECT ts, target AS label, {", ".join(FEATURE_NAMES)}
                FROM snapshots WHERE asset = ? AND interval = ? AND source = ?
                  AND ts > ? AND target_ts <= ? ORDER BY ts""",
            [asset, interval, SNAPSHOT_SOURCE, after, now],
        )

    def snapshot_features(
        self,
        asset: str,
        interval: str,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        after: pd.Timestamp | None = None,
        newest: int | None = None,
    ) -> pd.DataFrame:
        """ts and the features of the pair's snapshots in [start, end] and after `after`,
        oldest first; `newest` keeps only the newest N of them."""
        clauses = ["asset = ?", "interval = ?", "source = ?"]
        params: list = [asset, interval, SNAPSHOT_SOURCE]
        for clause, value in (("ts >= ?", start), ("ts <= ?", end), ("ts > ?", after)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        limit = "" if newest is None else f"ORDER BY ts DESC LIMIT {int(newest)}"
        return self.query(
            f"SELECT * FROM (SELECT ts, {', '.join(FEATURE_NAMES)} FROM snapshots "
            f"WHERE {' AND '.join(clauses)} {limit}) ORDER BY ts",
            params,
        )

    def labelled_count(self, asset: str, interval: str, at: pd.Timestamp) -> int:
        """How many of the pair's targets were known at `at`."""
        return int(
            self.scalar(
                "SELECT count(*) FROM snapshots WHERE asset = ? AND interval = ? AND source = ? "
                "AND target IS NOT NULL AND target_ts <= ?",
                [asset, interval, SNAPSHOT_SOURCE, at],
            )
        )

    # -- the Snapshots page ---------------------------------------------------------------

    def snapshot_page(
        self, query: SnapshotQuery, order_by: str, descending: bool, limit: int, offset: int
    ) -> tuple[pd.DataFrame, int]:
        """One page of the matching snapshots, sorted and paged in DuckDB, and how many
        match."""
        if order_by not in SNAPSHOT_COLUMNS:
            raise ValueError(f"cannot sort snapshots by {order_by!r}")
        where, params = query.where()
        total = self.scalar(f"SELECT count(*) FROM snapshots WHERE {where}", params)
        order = f"ORDER BY {order_by} {'DESC' if descending else 'ASC'} NULLS LAST, id"
        # Page the ids first and read whole rows for that page only: sorting 50 wide columns
        # to skip to a deep offset is several times slower.
        rows = self.query(
            f"SELECT * FROM snapshots WHERE id IN (SELECT id FROM snapshots WHERE {where} "
            f"{order} LIMIT ? OFFSET ?) {order}",
            [*params, int(limit), int(offset)],
        )
        return rows, int(total)

    def snapshot_export(self, query: SnapshotQuery, file_format: str) -> bytes:
        """Every matching snapshot as a CSV or Parquet file, written by DuckDB."""
        if file_format not in ("csv", "parquet"):
            raise ValueError(f"unknown export format {file_format!r}")
        where, params = query.where()
        options = "FORMAT csv, HEADER" if file_format == "csv" else "FORMAT parquet"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"snapshots.{file_format}"
            self.rows(  # the path is a parameter too: any folder name works
                f"COPY (SELECT * FROM snapshots WHERE {where} ORDER BY ts, id) TO ? ({options})",
                [*params, str(path)],
            )
            return path.read_bytes()

    def snapshot_choices(self) -> dict:
        """Values the snapshot filters offer: sources, model versions and the time range."""
        first, last = self.rows("SELECT min(ts), max(ts) FROM snapshots")[0]
        return {
            "sources": self.query("SELECT DISTINCT source FROM snapshots ORDER BY 1")[
                "source"
            ].tolist(),
            "model_versions": self.query(
                "SELECT DISTINCT model_version FROM snapshots WHERE model_version IS NOT NULL "
                "ORDER BY 1"
            )["model_version"].tolist(),
            "first": first,
            "last": last,
        }

    def feature_sample(self, query: SnapshotQuery, feature: str, rows: int) -> pd.DataFrame:
        """A random sample (value, target) of one feature over the labelled matching rows."""
        if feature not in FEATURE_NAMES:
            raise ValueError(f"unknown feature {feature!r}")
        where, params = query.where()
        return self.query(
            f"SELECT * FROM (SELECT {feature} AS value, target FROM snapshots WHERE {where} "
            f"AND target IS NOT NULL AND {feature} IS NOT NULL) "
            f"USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE (12)",  # a constant, by DuckDB
            params,
        )

    # -- the archive ----------------------------------------------------------------------

    def archive_snapshots(self, older_than: pd.Timestamp, keep_rows: int, file: Path) -> int:
        """Move the snapshots older than `older_than` that no model needs (beyond each pair's
        newest `keep_rows`, outside every active model's training window) into a Parquet
        `file`; deleted only once the file reads back with the same count. Rows moved."""
        with self.transaction() as cursor:
            cursor.execute(
                f"CREATE OR REPLACE TEMP TABLE archived AS {_ARCHIVABLE}",
                [ModelStatus.ACTIVE, FALLBACK_INTERVAL, older_than, keep_rows],
            )
            rows = cursor.execute("SELECT count(*) FROM archived").fetchall()[0][0]
            if rows:
                file.parent.mkdir(parents=True, exist_ok=True)
                cursor.execute(
                    "COPY (SELECT * FROM snapshots WHERE id IN (SELECT id FROM archived) "
                    "ORDER BY asset, interval, ts) TO ? (FORMAT parquet, COMPRESSION zstd)",
                    [str(file)],
                )
                written = cursor.execute("SELECT count(*) FROM read_parquet(?)", [str(file)])
                if written.fetchall()[0][0] != rows:
                    raise OSError(f"{file} holds fewer rows than were archived; nothing deleted")
                cursor.execute("DELETE FROM snapshots WHERE id IN (SELECT id FROM archived)")
            cursor.execute("DROP TABLE archived")
        self.rows("CHECKPOINT")  # hand the freed blocks back to the file
        return rows


def _spans(pairs: np.ndarray) -> dict[int, tuple[int, int]]:
    """Each pair's rows [start, stop) in rows sorted by pair (a groupby of the hundreds of
    thousands of tail rows cost more than slicing them)."""
    if not len(pairs):
        return {}
    changes = np.flatnonzero(pairs[1:] != pairs[:-1]) + 1
    starts, stops = np.r_[0, changes], np.r_[changes, len(pairs)]
    return {int(pairs[a]): (int(a), int(b)) for a, b in zip(starts, stops, strict=True)}
