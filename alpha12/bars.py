"""The one gate for outside market data: validation of OHLCV frames, and resampling.

Every frame from a source or a CSV passes `validate`, which returns the clean bars and every
rejected row with its reason, so nothing bad is stored and nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alpha12.calendars import ALWAYS_OPEN, Calendar, get
from alpha12.errors import UserError
from alpha12.timeframes import interval_delta

BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
NUMERIC_COLUMNS = (*PRICE_COLUMNS, "volume")
_TIME_ALIASES = ("ts", "timestamp", "time", "date", "datetime", "open_time")
UTC_MICROS = "datetime64[us, UTC]"
EPOCH_MS_ABOVE = 1e11  # epoch seconds this large would be past the year 5000: milliseconds


class BarsError(UserError, ValueError):
    """The frame as a whole cannot be read as bars (e.g. a required column is missing)."""


@dataclass
class Validated:
    """The outcome of the gate: clean bars, rejected rows with reasons, and what was fixed."""

    bars: pd.DataFrame
    # One row per rejected input row: its position, its time (NaT if unparseable), the reason.
    rejected: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["row", "ts", "reason"])
    )
    duplicates: int = 0  # repeated timestamps; the last valid copy is kept
    reordered: bool = False  # rows arrived out of order and were sorted

    def reason_counts(self) -> dict[str, int]:
        counts = self.rejected["reason"].value_counts().to_dict() if len(self.rejected) else {}
        if self.duplicates:
            counts["duplicate timestamp (last copy kept)"] = self.duplicates
        return {str(k): int(v) for k, v in counts.items()}


def empty_bars() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in NUMERIC_COLUMNS})
    frame.insert(0, "ts", pd.Series(dtype="datetime64[us, UTC]"))
    return frame


def validate(
    frame: pd.DataFrame,
    interval: str,
    now: pd.Timestamp | None = None,
    calendar: Calendar | None = None,
) -> Validated:
    """Clean bars of `interval` from `frame`, plus the rows rejected and why.

    Raises BarsError only for a frame-level problem (missing columns); every row-level
    problem becomes a rejected row. A bar must sit on the grid of its market's `calendar`
    (24/7 when None) and open while that market is open. With `now`, bars in the future and
    the still-forming last bar (closing after `now`) are rejected too.
    """
    checked = validate_many([frame], interval, now, calendar)[0]
    if isinstance(checked, BarsError):
        raise checked
    return checked


def validate_many(
    frames: list[pd.DataFrame],
    interval: str,
    now: pd.Timestamp | None = None,
    calendar: Calendar | None = None,
) -> list[Validated | BarsError]:
    """validate of each frame (its Validated, or its BarsError), in one pass over all their
    rows: the checks are row by row, so frames of the same columns are checked joined (a
    collection pass validates hundreds of one-bar answers; per frame, pandas' overhead was
    most of the pass). Only the repeats and the order are judged within each frame. The
    frames share one market's `calendar` (24/7 when None)."""
    calendar = calendar or get(ALWAYS_OPEN)
    groups: dict[tuple, list[int]] = {}
    for position, frame in enumerate(frames):
        groups.setdefault(_same_columns(frame, position), []).append(position)
    checked: list[Validated | BarsError] = [BarsError("not validated")] * len(frames)
    for positions in groups.values():
        joined = [frames[p] for p in positions]
        try:
            table = _standard_columns(pd.concat(joined, ignore_index=True))
        except BarsError as error:  # the columns are the same: so is the error
            for position in positions:
                checked[position] = error
            continue
        sizes = [len(frame) for frame in joined]
        validated = _validate_table(table, sizes, interval, now, calendar)
        for position, one in zip(positions, validated, strict=True):
            checked[position] = one
    return checked


def _same_columns(frame: pd.DataFrame, position: int) -> tuple:
    """Frames with the same key join without changing a value's type; a frame whose column
    names repeat, or with categories (joined, they would turn into objects), stays alone."""
    if not frame.columns.is_unique or any(isinstance(t, pd.CategoricalDtype) for t in frame.dtypes):
        return ("alone", position)
    return tuple(zip(map(str, frame.columns), map(str, frame.dtypes), strict=True))


def _validate_table(
    table: pd.DataFrame, sizes: list[int], interval: str, now, calendar: Calendar
) -> list[Validated]:
    """The Validated of each of the frames joined in `table` (`sizes` rows each, in order)."""
    ts = _parse_times(table["ts"])
    numbers = {c: _numbers(table[c]) for c in NUMERIC_COLUMNS}
    checks = _row_checks(table, ts, numbers, interval, now, calendar)
    # np.select takes the first true condition: the first failing check names the row's reason.
    failed = np.select([bad for _, bad in checks], np.arange(len(checks)), default=-1)
    ok = failed < 0
    clean = pd.DataFrame({"ts": ts[ok].array, **{c: numbers[c][ok] for c in NUMERIC_COLUMNS}})
    starts = np.cumsum([0, *sizes])
    in_frame = np.arange(len(table)) - np.repeat(starts[:-1], sizes)  # a row's own position
    reasons = np.array([reason for reason, _ in checks], dtype=object)[failed[~ok]]
    rejected = pd.DataFrame(
        {"row": in_frame[~ok], "ts": ts[~ok].array, "reason": reasons.astype(str)}
    )
    # Each frame's clean and rejected rows are one slice of each, in the frames' order.
    clean_ends = np.concatenate([[0], np.cumsum(ok)])[starts]
    bad_ends = np.concatenate([[0], np.cumsum(~ok)])[starts]
    return [
        _one_frame(
            clean.iloc[clean_ends[i] : clean_ends[i + 1]],
            rejected.iloc[bad_ends[i] : bad_ends[i + 1]],
        )
        for i in range(len(sizes))
    ]


def _one_frame(clean: pd.DataFrame, rejected: pd.DataFrame) -> Validated:
    """One frame's Validated from its clean rows (in arrival order) and its rejected ones."""
    times = clean["ts"].to_numpy()
    reordered = bool(len(times) > 1 and (times[1:] < times[:-1]).any())
    before = len(clean)
    if len(times) > 1 and not (times[1:] > times[:-1]).all():  # repeats, or out of order
        clean = clean.drop_duplicates("ts", keep="last").sort_values("ts", kind="stable")
    return Validated(
        clean.reset_index(drop=True),
        rejected.reset_index(drop=True),
        before - len(clean),
        reordered,
    )


def _numbers(values: pd.Series) -> np.ndarray:
    """float64 values; anything that is not a number becomes NaN."""
    if pd.api.types.is_float_dtype(values.dtype):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _standard_columns(frame: pd.DataFrame) -> pd.DataFrame:
    lower = {str(c).strip().lower(): c for c in frame.columns}
    time_column = next((lower[a] for a in _TIME_ALIASES if a in lower), None)
    missing = [c for c in NUMERIC_COLUMNS if c not in lower]
    if time_column is None:
        missing.insert(0, "timestamp")
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise BarsError(f"missing column(s): {', '.join(missing)} (found: {found})")
    table = frame[[time_column, *(lower[c] for c in NUMERIC_COLUMNS)]].copy()
    table.columns = list(BAR_COLUMNS)
    return table.reset_index(drop=True)


def _parse_times(values: pd.Series) -> pd.Series:
    """UTC timestamps; failures become NaT. Each value on its own: a number (or the text of one,
    as a CSV holds) is epoch seconds, or milliseconds above EPOCH_MS_ABOVE; other text is a date.
    (Deciding for the whole column would lose the valid rows of the minority format.)"""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values if values.dt.tz is not None else values.dt.tz_localize("UTC")
        return parsed.dt.tz_convert("UTC").astype(UTC_MICROS)
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    text, millis = numbers.isna(), numbers.abs() > EPOCH_MS_ABOVE
    parts = [
        pd.to_datetime(chosen, utc=True, errors="coerce", **how).astype(UTC_MICROS)
        for chosen, how in (
            (numbers[~text & ~millis], {"unit": "s"}),
            (numbers[millis], {"unit": "ms"}),
            (values[text].astype("string"), {"format": "mixed"}),
        )
        if len(chosen)
    ]
    if len(parts) == 1:  # the usual file: one format throughout
        return parts[0]
    return pd.concat(parts).reindex(values.index) if parts else values.astype(UTC_MICROS)


def _row_checks(table, ts, numbers, interval, now, calendar) -> list[tuple[str, np.ndarray]]:
    """(reason, boolean mask) pairs in the order a row is judged."""
    o, h, low, c, v = (numbers[k] for k in NUMERIC_COLUMNS)
    stacked = np.column_stack([o, h, low, c, v])
    raw_missing = table[list(NUMERIC_COLUMNS)].isna().to_numpy().any(axis=1)
    micros = ts.array.asi8  # microseconds since the epoch (see _parse_times); NaT is the minimum
    known = micros != np.iinfo(np.int64).min
    stamps = pd.DatetimeIndex(ts.where(known, pd.Timestamp(0, tz="UTC")))  # NaT judged above
    closed, off_grid = calendar.stamp_problems(stamps, interval)
    with np.errstate(invalid="ignore"):
        checks = [
            ("unparseable timestamp", ~known),
            ("missing value", raw_missing),
            ("non-numeric value", np.isnan(stacked).any(axis=1) & ~raw_missing),
            ("infinite value", np.isinf(stacked).any(axis=1)),
            ("non-positive price", (stacked[:, :4] <= 0).any(axis=1)),
            ("high below open/close", h < np.maximum(o, c)),
            ("low above open/close", low > np.minimum(o, c)),
            ("negative volume", v < 0),
            ("market closed", known & closed),
            ("timestamp off the interval grid", known & off_grid),
        ]
    if now is not None:
        now_micros = _micros(pd.Timestamp(now) - pd.Timestamp(0, tz="UTC"))
        closes = _micros_of(calendar.bar_closes(stamps[~closed], interval))
        forming = np.zeros(len(micros), dtype=bool)
        forming[~closed] = closes > now_micros
        checks.append(("bar in the future", known & (micros > now_micros)))
        checks.append(("bar still forming", known & forming))
    return checks


def _micros(delta: pd.Timedelta) -> int:
    return delta // pd.Timedelta(microseconds=1)


def _micros_of(times: pd.DatetimeIndex) -> np.ndarray:
    return times.as_unit("us").asi8


def resample(frame: pd.DataFrame, interval: str, calendar: Calendar | None = None) -> pd.DataFrame:
    """Coarser bars from finer ones, on the bar grid of the market's `calendar` (24/7, i.e.
    UTC-aligned, when None): left-labelled, first/max/min/last/sum.

    A bucket is emitted only once it has closed, i.e. when the finer bars reach its end,
    so a resample never invents a still-forming bar.
    """
    if frame.empty:
        return empty_bars()
    calendar = calendar or get(ALWAYS_OPEN)
    ts = pd.DatetimeIndex(frame["ts"])
    finer = (ts[1:] - ts[:-1]).min() if len(ts) > 1 else interval_delta(interval)
    buckets = calendar.bar_of(ts, interval)[0].as_unit(ts.unit).rename("ts")
    coarse = (
        frame.drop(columns="ts")
        .groupby(buckets, sort=True)
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    )
    last_close = calendar.cut_at_close(ts[-1:], ts[-1:] + finer)[0]
    coarse = coarse[calendar.bar_closes(coarse.index, interval) <= last_close]
    return coarse.reset_index()
