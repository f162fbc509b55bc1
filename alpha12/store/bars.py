"""Bars and the rows the gate rejected."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alpha12.bars import NUMERIC_COLUMNS, empty_bars
from alpha12.vocabulary import Pair


class BarsTable:
    def upsert_bars(self, asset: str, interval: str, bars: pd.DataFrame) -> int:
        """Insert the bars not stored yet; returns how many were new. Idempotent."""
        return self.upsert_many({(asset, interval): bars})[(asset, interval)]

    def upsert_many(self, batches: dict[Pair, pd.DataFrame]) -> dict[Pair, int]:
        """upsert_bars for several pairs in one transaction; how many bars were new per pair."""
        counts = dict.fromkeys(batches, 0)
        filled = {pair: bars for pair, bars in batches.items() if not bars.empty}
        if not filled:
            return counts
        # One concat, then the pair columns: tagging each pair's frame costs more than its bars.
        incoming = pd.concat(filled.values(), ignore_index=True)[["ts", *NUMERIC_COLUMNS]]
        sizes = [len(bars) for bars in filled.values()]
        for position, column in enumerate(("asset", "interval")):
            incoming[column] = np.repeat([pair[position] for pair in filled], sizes)
        inserted = self.write_frame(
            incoming,
            # The primary key's index finds the stored bars; an anti-join would scan them all.
            """INSERT OR IGNORE INTO bars
               SELECT i.asset, i.interval, i.ts, i.open, i.high, i.low, i.close, i.volume
               FROM incoming i RETURNING asset, interval, ts""",
        )
        # Counted in Python: a live tick inserts a bar or two a pair, and a pandas groupby of
        # them took milliseconds.
        spans: dict[Pair, list] = {}
        for asset, interval, ts in inserted:
            span = spans.setdefault((asset, interval), [ts, ts])
            span[0], span[1] = min(span[0], ts), max(span[1], ts)
            counts[(asset, interval)] += 1
        for pair, (first, last) in spans.items():
            self._widen_span(pair, first, last)
        return counts

    def _widen_span(self, pair: Pair, first, last) -> None:
        first, last = pd.Timestamp(first).tz_convert("UTC"), pd.Timestamp(last).tz_convert("UTC")
        with self._write_lock:
            known = self._bar_spans().get(pair)
            self._spans[pair] = (
                (first, last) if known is None else (min(known[0], first), max(known[1], last))
            )

    def read_bars(
        self,
        asset: str,
        interval: str,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        tail: int | None = None,
        warmup: int = 0,
    ) -> pd.DataFrame:
        """Stored bars in [start, end] (open times), oldest first; `tail` keeps the last N;
        `warmup` adds that many bars before `start` (what a recursive indicator needs)."""
        if warmup and start is not None:
            start = self._warmup_start(asset, interval, start, warmup)
        where, params = _pair_filter(asset, interval, start, end)
        order = "DESC" if tail else "ASC"
        limit = f"LIMIT {int(tail)}" if tail else ""
        frame = self.query(
            f"SELECT ts, open, high, low, close, volume FROM bars WHERE {where} "
            f"ORDER BY ts {order} {limit}",
            params,
        )
        if frame.empty:
            return empty_bars()
        return frame.iloc[::-1].reset_index(drop=True) if tail else frame

    def _warmup_start(self, asset: str, interval: str, start, warmup: int) -> pd.Timestamp:
        """The open time `warmup` bars before `start` (the oldest bar when fewer are stored)."""
        earlier = self.query(
            """SELECT min(ts) AS ts FROM (SELECT ts FROM bars
               WHERE asset = ? AND interval = ? AND ts < ? ORDER BY ts DESC LIMIT ?)""",
            [asset, interval, start, int(warmup)],
        )["ts"].iloc[0]
        return start if pd.isna(earlier) else earlier

    def last_bar_ts(self, asset: str, interval: str) -> pd.Timestamp | None:
        with self._write_lock:
            span = self._bar_spans().get((asset, interval))
        return None if span is None else span[1]

    def first_bars(self) -> dict[Pair, pd.Timestamp]:
        """The oldest stored bar of every pair."""
        with self._write_lock:
            return {pair: first for pair, (first, _) in self._bar_spans().items()}

    def _bar_spans(self) -> dict[Pair, tuple[pd.Timestamp, pd.Timestamp]]:
        """(first, last) stored bar of every pair; call with the write lock held. Asked for
        every pair on every engine tick, so read from the table once, then kept up to date by
        upsert_many (this process is the file's only writer)."""
        if self._spans is None:
            frame = self.query(
                "SELECT asset, interval, min(ts) AS first, max(ts) AS last FROM bars GROUP BY ALL"
            )
            self._spans = {
                (row.asset, row.interval): (
                    pd.Timestamp(row.first).tz_convert("UTC"),
                    pd.Timestamp(row.last).tz_convert("UTC"),
                )
                for row in frame.itertuples(index=False)
            }
        return self._spans

    def bar_assets(self) -> list[str]:
        """Assets with stored bars."""
        return sorted({asset for asset, _ in self.first_bars()})

    def bar_count(self) -> int:
        """Bars stored, all pairs together."""
        return int(self.scalar("SELECT count(*) FROM bars"))

    def bar_summary(self) -> pd.DataFrame:
        """Per stored pair: bar count, first and last bar, rejected rows."""
        return self.query(
            """WITH b AS (SELECT asset, interval, count(*) AS bars, min(ts) AS first_bar,
                                 max(ts) AS last_bar FROM bars GROUP BY ALL),
                    r AS (SELECT asset, interval, sum(count) AS rejected FROM rejections
                          GROUP BY ALL)
               SELECT b.*, coalesce(r.rejected, 0)::BIGINT AS rejected FROM b
               LEFT JOIN r USING (asset, interval) ORDER BY asset, interval"""
        )

    def record_rejections(
        self,
        asset: str | None,
        interval: str | None,
        origin: str,
        counts: dict[str, int],
        at: pd.Timestamp,
    ) -> None:
        if not counts:
            return
        with self.transaction() as cursor:
            cursor.executemany(
                "INSERT INTO rejections (recorded_at, asset, interval, origin, reason, count) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [[at, asset, interval, origin, reason, n] for reason, n in counts.items()],
            )


def _pair_filter(asset, interval, start, end) -> tuple[str, list]:
    clauses, params = ["asset = ?", "interval = ?"], [asset, interval]
    if start is not None:
        clauses.append("ts >= ?")
        params.append(start)
    if end is not None:
        clauses.append("ts <= ?")
        params.append(end)
    return " AND ".join(clauses), params
