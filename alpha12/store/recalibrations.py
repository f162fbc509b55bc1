"""The recalibrations table: every decision the monitor took, and the counts it judges by."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from alpha12.snapshots import SNAPSHOT_SOURCE
from alpha12.store.connection import equal_to
from alpha12.vocabulary import ATTEMPTS, ROUTINE_ACTIONS

_COLUMNS = (
    "asset",
    "interval",
    "ts",
    "trigger",
    "action",
    "win_rate",
    "profit_factor",
    "trades",
    "reasons",
    "challenger_score",
    "incumbent_score",
    "new_version",
    "metrics_before",
    "metrics_after",
    "message",
    "evidence",
)


class RecalibrationsTable:
    def record_recalibrations(self, rows: list[dict]) -> None:
        """Decisions (each with the keys of _COLUMNS), in one transaction."""
        if not rows:
            return
        # One statement over an Arrow table, not executemany: a walk records thousands of
        # decisions, and DuckDB runs executemany a row at a time (0.7 ms a row, measured).
        # Plain pa.array, not connection.arrow_table: a NaN score stays NaN, as it was stored.
        names = ", ".join(_COLUMNS)
        self.write_frame(
            pa.table({column: pa.array([row[column] for row in rows]) for column in _COLUMNS}),
            f"INSERT INTO recalibrations ({names}) SELECT {names} FROM incoming",
        )

    def last_attempt(self, asset: str, interval: str) -> pd.Timestamp | None:
        """When the pair's last training attempt (what starts a cooldown) was decided."""
        return self.scalar(
            "SELECT max(ts) FROM recalibrations WHERE asset = ? AND interval = ? "
            "AND action IN (SELECT unnest(?))",
            [asset, interval, list(ATTEMPTS)],
        )

    def pair_counts(self, keys: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
        """Per pair of `keys` (asset, interval, version, scope: the serving model): open real
        setups, targets known by `now`, the last training attempt and the serving model's
        newest setup (real or shadow: a model trading in shadow is not silent), in one query."""
        return self.query_with(
            keys[["asset", "interval", "version", "scope"]],
            """SELECT k.asset, k.interval,
                 (SELECT count(*) FROM setups s WHERE s.asset = k.asset
                   AND s.interval = k.interval AND s.status = 'open' AND NOT s.shadow)
                   AS pending,
                 (SELECT count(*) FROM snapshots n WHERE n.asset = k.asset
                   AND n.interval = k.interval AND n.source = ? AND n.target IS NOT NULL
                   AND n.target_ts <= ?) AS labelled,
                 (SELECT max(r.ts) FROM recalibrations r WHERE r.asset = k.asset
                   AND r.interval = k.interval AND r.action IN (SELECT unnest(?))) AS last_attempt,
                 (SELECT max(s.ts) FROM setups s WHERE s.asset = k.asset
                   AND s.interval = k.interval AND s.ts <= ?
                   AND s.model_version IS NOT DISTINCT FROM k.version
                   AND s.model_scope IS NOT DISTINCT FROM k.scope) AS last_setup
               FROM incoming k""",
            [SNAPSHOT_SOURCE, now, list(ATTEMPTS), now],
        )

    def recalibration_log(
        self,
        asset: str | None,
        interval: str | None,
        actions: tuple[str, ...] | None,
        routine: bool,
        after_id: int,
        limit: int,
    ) -> pd.DataFrame:
        """Decisions, newest (clock time) first; `routine=False` leaves out the pairs merely
        found healthy or waiting for trades (most rows)."""
        clauses, params = equal_to({"asset": asset, "interval": interval})
        clauses.append("id > ?")
        params.append(after_id)
        if actions is not None:
            clauses.append("list_contains(?, action)")
            params.append(list(actions))
        if not routine:
            clauses.append("NOT list_contains(?, action)")
            params.append(list(ROUTINE_ACTIONS))
        return self.query(
            f"SELECT * FROM recalibrations WHERE {' AND '.join(clauses)} "
            "ORDER BY ts DESC, id DESC LIMIT ?",
            [*params, limit],
        )

    def latest_recalibration_id(self) -> int:
        return int(self.scalar("SELECT coalesce(max(id), 0) FROM recalibrations"))

    def first_forced_since(self, asset: str, interval: str, since: pd.Timestamp) -> dict | None:
        """The pair's first forced recalibration at or after `since` (what a job recorded):
        action, challenger and incumbent scores, new version."""
        found = self.query(
            """SELECT action, challenger_score, incumbent_score, new_version FROM recalibrations
               WHERE asset = ? AND interval = ? AND trigger = 'forced' AND ts >= ?
               ORDER BY id LIMIT 1""",
            [asset, interval, since],
        )
        return None if found.empty else found.iloc[0].to_dict()
