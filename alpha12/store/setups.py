"""Trade setups: opened by the signal rule, closed by the tracker.

A shadow setup (`shadow`) is a would-be trade: made and resolved by the same code as a real one
but never counted as a real trade. Only the tracker (open_setups) and the monitor's judging
(serving_trades) see both kinds; every other read is of one kind.
"""

from __future__ import annotations

import pandas as pd


class SetupsTable:
    def insert_setups(self, setups: pd.DataFrame) -> pd.DataFrame:
        """Insert setups (columns as signals.Setup, optionally resolved); their id, asset,
        interval and shadow flag."""
        returned = ["id", "asset", "interval", "shadow"]
        if setups.empty:
            return pd.DataFrame(columns=returned)
        names = ", ".join(setups.columns)
        inserted = self.write_frame(
            setups,
            f"INSERT INTO setups ({names}) SELECT {names} FROM incoming "
            "RETURNING id, asset, interval, shadow",
        )
        return pd.DataFrame(inserted, columns=returned)

    def delete_setups(self, asset: str, interval: str, origin: str) -> None:
        """Forget the pair's setups of one origin (a warm-start walk cut short)."""
        with self.transaction() as cursor:
            cursor.execute(
                "DELETE FROM setups WHERE asset = ? AND interval = ? AND origin = ?",
                [asset, interval, origin],
            )

    def open_setups(self, pairs: list[tuple[str, str]]) -> pd.DataFrame:
        """The open setups of the (asset, interval) `pairs`, real and shadow, oldest first:
        what resolving them takes (tracker.resolve), not the columns their exits will fill
        (every time column costs the cycle a conversion on each read)."""
        return self.query_with(
            pd.DataFrame(pairs, columns=["asset", "interval"]),
            """SELECT s.id, s.asset, s.interval, s.ts, s.direction, s.entry, s.stop,
                      s.take_profit, s.shadow, s.model_version, s.model_scope
               FROM setups s JOIN incoming USING (asset, interval)
               WHERE s.status = 'open' ORDER BY s.ts, s.id""",
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
        version, scope: the serving model), oldest first (the equity curve's order). Shadow
        trades of that model count too: the monitor judges a model by every trade its signals
        made, real or not (a model without an edge may trade only in shadow)."""
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

    def pair_setups(
        self, asset: str, interval: str, limit: int, shadow: bool = False
    ) -> pd.DataFrame:
        """The pair's real setups (live and warm-start), or with `shadow` its shadow ones,
        newest first."""
        return self.query(
            "SELECT * EXCLUDE (asset, interval) FROM setups WHERE asset = ? AND interval = ? "
            "AND shadow = ? ORDER BY ts DESC LIMIT ?",
            [asset, interval, shadow, limit],
        )

    def closed_trades(self, asset: str, interval: str) -> pd.DataFrame:
        """The pair's closed real trades by exit time."""
        return self.query(
            "SELECT exit_ts, pnl_pct, r_multiple, origin, model_version, model_scope FROM setups "
            "WHERE asset = ? AND interval = ? AND status = 'closed' AND NOT shadow "
            "ORDER BY exit_ts, id",
            [asset, interval],
        )
