"""A stock market end to end: the synthetic session market, the engine replaying it for weeks
(due only when a session bar closes, no warning while the market is closed), cooldowns that
count trading time, and months of session bars through import-csv, backfill, train and lab."""

import dataclasses
import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest

from alpha12 import calendars, cli
from alpha12 import engine as engine_module
from alpha12.bars import validate
from alpha12.clock import ManualClock
from alpha12.config import SEED_TIMEFRAMES
from alpha12.engine import Engine
from alpha12.monitor import cooldown_left
from alpha12.services import Alpha12
from alpha12.sources import SourceError
from alpha12.sources.replay import CsvReplay, SyntheticReplay
from alpha12.timeframes import INTERVALS
from alpha12.vocabulary import Action

NYSE = calendars.get("XNYS")
STOCKS = {"SPY": "XNYS"}
NEW_YORK = "America/New_York"


def calendar_of(asset: str):
    return calendars.get(STOCKS.get(asset, calendars.ALWAYS_OPEN))


@pytest.fixture(scope="module")
def market() -> SyntheticReplay:
    return SyntheticReplay(seed=5, history_days=120, future_days=30, calendar_of=calendar_of)


def test_the_synthetic_session_market_trades_only_in_sessions(market):
    end = market.default_start + pd.Timedelta(days=30)
    for interval in INTERVALS:
        bars = market.fetch("SPY", interval, None, end)
        assert len(bars) > 0
        assert validate(bars, interval, end, NYSE).rejected.empty, interval
    five = market.fetch("SPY", "5m", None, end)
    local = pd.DatetimeIndex(five["ts"]).tz_convert(NEW_YORK)
    assert local.day_of_week.max() <= 4  # no weekend
    minute = pd.Series(local.hour * 60 + local.minute, index=five.index)
    assert minute.min() == 9 * 60 + 30 and minute.max() < 16 * 60
    # A new session opens where the market moved overnight, not at the last close.
    first = pd.Series(local.date).ne(pd.Series(local.date).shift()).to_numpy()[1:]
    gaps = np.abs(np.log(five["open"].to_numpy()[1:] / five["close"].to_numpy()[:-1]))
    assert gaps[first].mean() > 5 * gaps[~first].mean()
    # More volatile after the open; volume U-shaped over the session.
    moves = np.abs(np.log(five["close"] / five["open"]))
    assert moves[minute < 600].mean() > 1.5 * moves[(minute >= 720) & (minute < 840)].mean()
    volume = five["volume"].groupby(minute).mean()
    midday = volume.loc[720:840].mean()
    assert volume.loc[:600].mean() > 1.5 * midday and volume.loc[930:].mean() > 1.5 * midday


def test_a_24_7_asset_is_unchanged_beside_a_stock(market):
    end = market.default_start
    plain = SyntheticReplay(seed=5, history_days=120, future_days=30)
    for interval in ("5m", "4h"):
        pd.testing.assert_frame_equal(
            market.fetch("BTC", interval, None, end), plain.fetch("BTC", interval, None, end)
        )


class RecordingReplay(SyntheticReplay):
    """The synthetic market, remembering when each pair was asked for bars."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, str, pd.Timestamp]] = []

    def fetch(self, asset, interval, start, end):
        self.asked.append((asset, interval, end))
        return super().fetch(asset, interval, start, end)


@pytest.fixture
def stock_app(settings, monkeypatch):
    """An app over a fresh store following SPY (XNYS) and BTC (24/7) on 1h and 1d, on a manual
    clock at a Friday's open; no warm start and no monitor run (not what is tested here)."""
    monkeypatch.setattr(engine_module, "warm_start", lambda *args: {})
    settings = dataclasses.replace(
        settings,
        assets=("SPY", "BTC"),
        intervals=("1h", "1d"),
        calendars=STOCKS,
        monitor_period_minutes=1e9,
    )
    source = RecordingReplay(12, 10, future_days=40, calendar_of=settings.calendar)
    start = pd.Timestamp("2025-01-17 09:30", tz=NEW_YORK)  # a Friday; MLK day follows
    app = Alpha12.open(settings=settings, clock=ManualClock(start), source=source)
    yield app, source
    app.close()


WEEKS = 3


@pytest.mark.slow
def test_the_engine_follows_the_sessions_for_weeks_without_a_warning(stock_app):
    app, source = stock_app
    engine, clock = Engine(app.context), app.clock
    weekend = []
    for _ in range(WEEKS * 7 * 24):  # hourly ticks, at :30 New York time as the bars close
        engine.tick()
        local = clock.now().tz_convert(NEW_YORK)
        if local.day_of_week == 5 and local.hour == 12:
            weekend.append(app.collection_status().set_index(["asset", "interval"]))
        clock.advance(hours=1)
    end = clock.now()
    events = app.store.query("SELECT level, message FROM events")
    assert events[events["level"].isin(["warning", "error"])].empty
    for interval in ("1h", "1d"):
        asked = [when for asset, i, when in source.asked if (asset, i) == ("SPY", interval)]
        closes = NYSE.bar_closes(
            pd.DatetimeIndex(source.fetch("SPY", interval, None, end)["ts"]), interval
        )
        # Each ask after the first follows a bar close: never twice in a closed market.
        between = [((closes > a) & (closes <= b)).sum() for a, b in itertools.pairwise(asked)]
        assert min(between) >= 1, interval
        stored = app.store.read_bars("SPY", interval)
        expected = source.fetch("SPY", interval, None, end)
        assert stored["ts"].tolist() == expected["ts"].tolist()  # none missing, none invented
    btc = [when for asset, i, when in source.asked if (asset, i) == ("BTC", "1h")]
    assert len(btc) >= WEEKS * 7 * 24 - 2  # the 24/7 market is asked every hour
    assert len(weekend) == WEEKS
    for status in weekend:  # on Saturdays the stock is fresh and next due on Monday
        assert status.loc[("SPY", "1h"), "freshness_s"] == 0
        assert status.loc[("SPY", "1d"), "freshness_s"] == 0
        monday = status.loc[("SPY", "1h"), "next_close"].tz_convert(NEW_YORK)
        assert (monday.day_of_week, monday.hour, monday.minute) in [(0, 10, 30), (1, 10, 30)]
        assert status.loc[("BTC", "1h"), "freshness_s"] < 3600


def test_cooldowns_expire_after_the_stated_trading_time(stock_app):
    app, _ = stock_app
    attempt = pd.Timestamp("2024-11-29 13:00", tz=NEW_YORK)  # the half day's close, a Friday
    daily, hourly = SEED_TIMEFRAMES["1d"], SEED_TIMEFRAMES["1h"]
    assert daily.cooldown_hours == 72 and hourly.cooldown_hours == 8

    def left(thresholds, interval, when: str, calendar=NYSE) -> float:
        now = pd.Timestamp(when, tz=NEW_YORK)
        return cooldown_left(attempt, thresholds, now, calendar, interval) / pd.Timedelta(hours=1)

    # 1d: three sessions (Mon 12-02, Tue, Wed), whatever the weekend.
    assert left(daily, "1d", "2024-12-02 08:00") == 72
    assert left(daily, "1d", "2024-12-03 16:00") == 24
    assert left(daily, "1d", "2024-12-04 15:59") > 0
    assert left(daily, "1d", "2024-12-04 16:00") == 0
    # 1h: eight trading hours, Monday's 6.5 and Tuesday's first 1.5.
    assert left(hourly, "1h", "2024-12-02 16:00") == 1.5
    assert left(hourly, "1h", "2024-12-03 11:00") == 0
    # 24/7: wall time, as before (the weekend used it up).
    always = calendars.get(calendars.ALWAYS_OPEN)
    assert left(daily, "1d", "2024-12-02 08:00", always) == 72 - 67
    # The monitor reads the stored attempt on the asset's calendar.
    columns = ("trigger", "win_rate", "profit_factor", "trades", "reasons", "challenger_score")
    columns += ("incumbent_score", "new_version", "metrics_before", "metrics_after", "evidence")
    app.store.record_recalibrations(
        [
            dict.fromkeys(columns)
            | {"asset": "SPY", "interval": "1d", "ts": attempt.tz_convert("UTC")}
            | {"trigger": "forced", "action": Action.FAILED}
            | {"message": "an attempt starts a cooldown"}
        ]
    )
    monitor = app.context.monitor
    monday = pd.Timestamp("2024-12-02 16:00", tz=NEW_YORK)
    (assessment,) = monitor.assess_all([("SPY", "1d")], monday)
    assert assessment.cooldown_remaining == pd.Timedelta(hours=48)


@pytest.mark.slow
def test_months_of_session_bars_import_backfill_train_and_lab(tmp_path, isolated_env, capsys):
    source = SyntheticReplay(seed=7, history_days=300, future_days=0, calendar_of=calendar_of)
    end = source.default_start
    folder = tmp_path / "spy"
    folder.mkdir()
    rows = {}
    for interval in ("5m", "1h", "1d"):
        bars = source.fetch("SPY", interval, None, end)
        bars.assign(ts=bars["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
            folder / f"SPY_{interval}.csv", index=False
        )
        rows[interval] = len(bars)
    assert rows["5m"] > 15_000 and rows["1d"] > 200  # months of it
    config = tmp_path / "alpha12.toml"
    config.write_text(
        'assets = ["SPY"]\nintervals = ["5m", "1h", "1d"]\nn_jobs = 1\n[calendars]\nSPY = "XNYS"\n'
    )
    base = ["--db", tmp_path / "spy.duckdb", "--config", config]

    def run(*args) -> str:
        code = cli.main([str(a) for a in (*base, *args)])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    imported = run("import-csv", folder)
    for interval, n in rows.items():
        assert (
            f"SPY_{interval}.csv: {n:,} imported, 0 already stored, 0 duplicates, 0 rejected"
            in imported
        )
    backfilled = run("backfill")
    added = re.search(r"([\d,]+) snapshots added", backfilled)
    assert added and int(added[1].replace(",", "")) > 15_000
    trained = run("train", "--asset", "SPY")
    for interval in rows:  # every session timeframe trains a model of its own
        assert re.search(rf"SPY\s+{interval}\s+recalibrated v1 promoted", trained), trained
    status = json.loads(run("status", "--json"))
    pairs = {(p["asset"], p["interval"]): p for p in status["pairs"]}
    assert all(pairs[("SPY", i)]["rejected"] == 0 for i in rows)
    lab = json.loads(
        run("lab", "--asset", "SPY", "--interval", "1h", "--policies", "never,seed", "--json")
    )
    assert [r["policy"] for r in lab["results"]] == ["never", "seed"]


def test_price_history_marks_the_short_bars(stock_app):
    app, _ = stock_app
    stamps = ["2024-11-27 14:30", "2024-11-27 15:30", "2024-11-29 11:30", "2024-11-29 12:30"]
    ts = pd.DatetimeIndex(stamps, tz=NEW_YORK).tz_convert("UTC").as_unit("us")
    bars = pd.DataFrame({"ts": ts, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0})
    app.store.upsert_bars("SPY", "1h", bars.assign(volume=1.0))
    history = app.price_history("SPY", "1h")
    assert history["short"].tolist() == [False, True, False, True]  # 16:00 and 13:00 cut them


def test_csv_replay_serves_session_files_on_their_calendar(market, tmp_path):
    end = market.default_start
    bars = market.fetch("SPY", "1h", None, end)
    bars.to_csv(tmp_path / "SPY_1h.csv", index=False)
    replay = CsvReplay(tmp_path, history_days=30, calendar_of=calendar_of)
    served = replay.fetch("SPY", "1h", None, end)
    pd.testing.assert_series_equal(served["ts"], bars["ts"])
    # Read as a 24/7 market, every 9:30-aligned bar is off the grid: nothing to replay.
    with pytest.raises(SourceError, match="hold no valid bars"):
        CsvReplay(tmp_path, history_days=30)
