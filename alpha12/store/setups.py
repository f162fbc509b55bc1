"""Trade setups: opened by the signal rule, closed by the tracker."""

from __future__ import annotations

import pandas as pd


class SetupsTable:
    def insert_setups(self, setups: pd.DataFrame) -> pd.DataFrame:
        """Insert setups (columns as signals.Setup, optionally resolved); their id, asset and
        interval."""
        if setups.empty:
            return pd.DataFrame(columns=["id", "asset", "interval"])
        names = ", ".join(setups.columns)
        inserted = self.write_frame(
            setups,
            f"INSERT INTO setups ({names}) SELECT {names} FROM incoming "
            "RETURNING id, asset, interval",
        )
        return pd.DataFrame(inserted, columns=["id", "asset", "interval"])

    def open_setups(self, pairs: list[tuple[str, str]]) -> pd.DataFrame:
        """The open setups of the (asset, interval) `pairs`, oldest first."""
        return self.query_with(
            pd.DataFrame(pairs, columns=["asset", "interval"]),
            "SELECT s.* FROM setups s JOIN incoming USING (asset, interval) "
            "WHERE s.status = 'open' ORDER BY s.ts, s.id",
        )

    def close_setups(self, resolved: pd.DataFrame) -> int:
        """Record exits (tracker.resolve's columns); an already closed setup is left alone."""
        if resolved.empty:
            return 0
        return self.write_frame(
            resolved,
            """UPDATE setups s SET status = 'closed', exit_ts = r.exit_ts,
                      exit_price = r.exit_price, exit_reason = r.exit_reason,
                      pnl_pct = r.pnl_pct, r_multiple = r.r_multiple
               FROM incoming r WHERE s.id = r.id AND s.status = 'open'""",
        )[0][0]

    def serving_trades(self, keys: pd.DataFrame, now: pd.Timestamp, window: int) -> pd.DataFrame:
        """The newest `window` trades closed by `now` of each pair of `keys` (asset, interval,
        version, scope: the serving model), oldest first (the equity curve's order)."""
        return self.query_with(
            keys,
            """SELECT s.asset, s.interval, s.exit_ts, s.pnl_pct, s.r_multiple
               FROM setups s JOIN incoming k ON s.asset = k.asset AND s.interval = k.interval
                AND s.model_version IS NOT DISTINCT FROM k.version
                AND s.model_scope IS NOT DISTINCT FROM k.scope
               WHERE s.status = 'closed' AND s.exit_ts <= ?
               QUALIFY row_number() OVER (PARTITION BY s.asset, s.interval
                                          ORDER BY s.exit_ts DESC) <= ?
               ORDER BY s.asset, s.interval, s.exit_ts""",
            [now, window],
        )

    def pair_setups(self, asset: str, interval: str, limit: int) -> pd.DataFrame:
        """The pair's setups (live and warm-start), newest first."""
        return self.query(
            "SELECT * EXCLUDE (asset, interval) FROM setups WHERE asset = ? AND interval = ? "
            "ORDER BY ts DESC LIMIT ?",
            [asset, interval, limit],
        )

    def closed_trades(self, asset: str, interval: str) -> pd.DataFrame:
        """The pair's closed trades by exit time."""
        return self.query(
            "SELECT exit_ts, pnl_pct, r_multiple, origin, model_version, model_scope FROM setups "
            "WHERE asset = ? AND interval = ? AND status = 'closed' ORDER BY exit_ts, id",
            [asset, interval],
        )
