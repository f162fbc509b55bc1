"""The gate: every rejection reason, duplicates, ordering and time zones; and exact resampling."""

import numpy as np
import pandas as pd
import pytest

from alpha12.bars import BarsError, resample, validate, validate_many
from alpha12.sources.replay import SYNTHETIC_ORIGIN, SyntheticReplay
from alpha12.sources.synthetic import SyntheticMarket
from alpha12.timeframes import interval_seconds

COARSE = ("15m", "1h", "4h", "1d")


def raw_rows(n: int = 6, start: str = "2025-01-01") -> pd.DataFrame:
    """Valid rows as a CSV reader sees them: every cell a string, ISO UTC timestamps."""
    ts = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n, freq="5min")
    return pd.DataFrame(
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": ["100"] * n,
            "high": ["101"] * n,
            "low": ["99"] * n,
            "close": ["100.5"] * n,
            "volume": ["7"] * n,
        }
    )


def with_cell(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    changed = frame.astype(object)
    changed.loc[row, column] = value
    return changed


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("timestamp", "not a time", "unparseable timestamp"),
        ("close", np.nan, "missing value"),
        ("open", "inf", "infinite value"),
        ("high", "-inf", "infinite value"),
        ("volume", "12abc", "non-numeric value"),
        ("low", "0", "non-positive price"),
        ("open", "-5", "non-positive price"),
        ("high", "100.2", "high below open/close"),  # close is 100.5
        ("low", "100.2", "low above open/close"),  # open is 100
        ("volume", "-1", "negative volume"),
        ("timestamp", "2025-01-01T00:07:00Z", "timestamp off the interval grid"),
    ],
)
def test_each_bad_row_is_rejected_with_its_reason(column, value, reason):
    checked = validate(with_cell(raw_rows(), 2, column, value), "5m")
    assert checked.rejected[["row", "reason"]].to_dict("records") == [{"row": 2, "reason": reason}]
    assert len(checked.bars) == 5
    assert pd.Timestamp("2025-01-01 00:10", tz="UTC") not in set(checked.bars["ts"])
    assert checked.reason_counts() == {reason: 1}


def test_missing_column_is_a_frame_level_error():
    with pytest.raises(BarsError, match="volume"):
        validate(raw_rows().drop(columns="volume"), "5m")
    with pytest.raises(BarsError, match="timestamp"):
        validate(raw_rows().drop(columns="timestamp"), "5m")


def test_future_and_still_forming_bars_are_rejected_with_now():
    frame = raw_rows(6)  # 00:00 .. 00:25
    now = pd.Timestamp("2025-01-01 00:22", tz="UTC")
    checked = validate(frame, "5m", now=now)
    # 00:15 closes at 00:20 (kept); 00:20 closes at 00:25 > now; 00:25 opens after now.
    assert checked.bars["ts"].iloc[-1] == pd.Timestamp("2025-01-01 00:15", tz="UTC")
    assert checked.rejected.to_dict("records") == [
        {"row": 4, "ts": pd.Timestamp("2025-01-01 00:20", tz="UTC"), "reason": "bar still forming"},
        {"row": 5, "ts": pd.Timestamp("2025-01-01 00:25", tz="UTC"), "reason": "bar in the future"},
    ]
    assert len(validate(frame, "5m").bars) == 6  # without `now` both are fine


def test_bar_closing_exactly_at_now_is_kept():
    now = pd.Timestamp("2025-01-01 00:30", tz="UTC")
    assert len(validate(raw_rows(6), "5m", now=now).bars) == 6


def test_duplicates_are_counted_and_the_last_copy_kept():
    frame = raw_rows(4)
    later_copy = with_cell(frame.iloc[[1]], 1, "close", "100.9").reset_index(drop=True)
    checked = validate(pd.concat([frame, later_copy], ignore_index=True), "5m")
    assert checked.duplicates == 1
    assert checked.reason_counts() == {"duplicate timestamp (last copy kept)": 1}
    assert len(checked.bars) == 4
    assert checked.bars["close"].tolist() == [100.5, 100.9, 100.5, 100.5]


def test_shuffled_rows_are_sorted():
    frame = raw_rows(20)
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    checked = validate(shuffled, "5m")
    assert checked.reordered
    assert checked.bars["ts"].is_monotonic_increasing
    assert checked.bars["ts"].tolist() == validate(frame, "5m").bars["ts"].tolist()
    assert not validate(frame, "5m").reordered


def test_frames_validated_together_come_out_as_each_alone():
    """validate_many joins the frames of the same columns for the row checks: each frame's
    clean bars, rejected rows (positions in its own frame), repeats and order stay its own."""
    frame = raw_rows(8)
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    replayed = SyntheticReplay(12, 3).fetch(
        "BTC", "5m", None, SYNTHETIC_ORIGIN + pd.Timedelta(hours=2)
    )
    frames = [
        raw_rows(6),
        with_cell(raw_rows(), 2, "close", np.nan),
        pd.concat([shuffled, with_cell(frame.iloc[[1]], 1, "close", "100.9")], ignore_index=True),
        raw_rows(0),
        raw_rows().drop(columns="volume"),
        replayed,
        with_cell(raw_rows(5, "2025-02-01"), 4, "timestamp", "not a time"),
        replayed.iloc[:0],
        with_cell(with_cell(raw_rows(), 0, "low", "0"), 5, "high", "100.2"),
    ]
    now = SYNTHETIC_ORIGIN + pd.Timedelta(days=40)
    together = validate_many(frames, "5m", now)
    for frame, joined in zip(frames, together, strict=True):
        try:
            alone = validate(frame, "5m", now)
        except BarsError as error:
            assert isinstance(joined, BarsError) and str(joined) == str(error)
            continue
        pd.testing.assert_frame_equal(joined.bars, alone.bars)
        pd.testing.assert_frame_equal(joined.rejected, alone.rejected)
        assert (joined.duplicates, joined.reordered) == (alone.duplicates, alone.reordered)
    assert [len(t.rejected) for t in together if not isinstance(t, BarsError)] == [
        0,
        1,
        0,
        0,
        0,
        1,
        0,
        2,
    ]
    assert together[2].duplicates == 1 and together[2].reordered


def test_output_follows_the_bars_convention():
    checked = validate(raw_rows(3), "5m")
    assert list(checked.bars.columns) == ["ts", "open", "high", "low", "close", "volume"]
    assert str(checked.bars["ts"].dtype).endswith(", UTC]")
    assert (checked.bars[["open", "high", "low", "close", "volume"]].dtypes == "float64").all()
    assert checked.bars.index.equals(pd.RangeIndex(3))


def test_non_utc_time_zones_are_converted_to_utc():
    berlin = pd.date_range("2025-01-01 01:00", periods=3, freq="1h", tz="Europe/Berlin")
    frame = pd.DataFrame(
        {"ts": berlin, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0}
    )
    expected = pd.date_range("2025-01-01 00:00", periods=3, freq="1h", tz="UTC")
    assert validate(frame, "1h").bars["ts"].tolist() == expected.tolist()

    offsets = frame.assign(ts=berlin.strftime("%Y-%m-%dT%H:%M:%S%z"))  # text with +0100
    assert validate(offsets, "1h").bars["ts"].tolist() == expected.tolist()


def test_epoch_milliseconds_and_seconds():
    expected = pd.date_range("2025-01-01", periods=3, freq="5min", tz="UTC")
    millis = expected.as_unit("ms").asi8
    for stamps in (millis, millis // 1000):
        frame = pd.DataFrame(
            {"open_time": stamps, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 0}
        )
        assert validate(frame, "5m").bars["ts"].tolist() == expected.tolist()
        as_text = frame.astype(str)  # how a CSV reader hands them over
        assert validate(as_text, "5m").bars["ts"].tolist() == expected.tolist()


def test_epoch_text_with_a_bad_stamp_rejects_only_that_row():
    frame = raw_rows(4)
    epoch_ms = pd.to_datetime(frame["timestamp"]).astype("datetime64[ms, UTC]").astype("int64")
    frame["timestamp"] = epoch_ms.astype(str).where(frame.index != 1, "soon")
    checked = validate(frame, "5m")
    assert checked.reason_counts() == {"unparseable timestamp": 1}
    assert checked.bars["ts"].iloc[0] == pd.Timestamp("2025-01-01", tz="UTC")


def test_daily_grid_is_utc_midnight():
    frame = pd.DataFrame(
        {
            "date": ["2025-01-01", "2025-01-02T00:00:00Z", "2025-01-03T05:00:00Z"],
            "open": 1.0,
            "high": 2.0,
            "low": 0.5,
            "close": 1.5,
            "volume": 1.0,
        }
    )
    checked = validate(frame, "1d")
    assert len(checked.bars) == 2
    assert checked.reason_counts() == {"timestamp off the interval grid": 1}


# -- resampling ---------------------------------------------------------------------------------


def hand_rolled(base: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Buckets by integer division of epoch seconds, kept only when every 5m bar is present."""
    seconds = interval_seconds(interval)
    epoch = base["ts"].astype("datetime64[s, UTC]").astype("int64")
    bucket = epoch // seconds * seconds
    grouped = base.groupby(bucket.to_numpy())
    coarse = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
            "count": grouped.size(),
        }
    )
    coarse = coarse[coarse["count"] == seconds // 300].drop(columns="count")
    coarse.insert(0, "ts", pd.to_datetime(coarse.index, unit="s", utc=True))
    return coarse.reset_index(drop=True)


def same_bars(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        actual.assign(ts=actual["ts"].astype("datetime64[us, UTC]")).reset_index(drop=True),
        expected.assign(ts=expected["ts"].astype("datetime64[us, UTC]")),
        check_exact=True,
    )


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    # 9 days of 5m bars, cut mid-day and mid-4h so the last coarse buckets are still forming.
    full = SyntheticMarket(seed=5, origin=SYNTHETIC_ORIGIN).base_bars("BTC", 9)
    return full[full["ts"] < pd.Timestamp("2025-01-09 13:40", tz="UTC")].reset_index(drop=True)


@pytest.mark.parametrize("interval", COARSE)
def test_resample_is_exact_left_labelled_utc_aligned_and_complete(base, interval):
    coarse = resample(base, interval)
    same_bars(coarse, hand_rolled(base, interval))
    epoch_seconds = coarse["ts"].astype("datetime64[s, UTC]").astype("int64")
    assert (epoch_seconds % interval_seconds(interval) == 0).all()
    assert coarse["ts"].iloc[0] == base["ts"].iloc[0]  # left label: the first bucket's open
    # nothing still forming: the last bucket ends at or before the last 5m bar's close
    last_close = base["ts"].iloc[-1] + pd.Timedelta(minutes=5)
    ends = coarse["ts"] + pd.Timedelta(seconds=interval_seconds(interval))
    assert ends.iloc[-1] <= last_close
    assert ends.iloc[-1] + pd.Timedelta(seconds=interval_seconds(interval)) > last_close


def test_resample_drops_exactly_the_forming_buckets(base):
    assert resample(base, "1d")["ts"].iloc[-1] == pd.Timestamp("2025-01-08", tz="UTC")
    assert resample(base, "4h")["ts"].iloc[-1] == pd.Timestamp("2025-01-09 08:00", tz="UTC")
    assert resample(base, "1h")["ts"].iloc[-1] == pd.Timestamp("2025-01-09 12:00", tz="UTC")
    assert resample(base, "15m")["ts"].iloc[-1] == pd.Timestamp("2025-01-09 13:15", tz="UTC")


def test_resample_of_nothing_is_empty_bars():
    assert resample(validate(raw_rows(0), "5m").bars, "1h").empty


@pytest.mark.parametrize("interval", COARSE)
def test_replay_serves_exactly_the_resampled_bars(interval):
    replay = SyntheticReplay(seed=5, history_days=6, future_days=3)
    end = pd.Timestamp("2025-01-09 13:40", tz="UTC")
    base = replay.market.base_bars("BTC", 9)
    expected = hand_rolled(base[base["ts"] + pd.Timedelta(minutes=5) <= end], interval)
    same_bars(replay.fetch("BTC", interval, None, end), expected)
