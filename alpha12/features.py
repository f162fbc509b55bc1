"""The 39 causal features of each bar that alpha12's models learn from.

Sixteen are TA-Lib indicators reproduced exactly, seeding of Wilder smoothing and EMAs included
(the tests compare them with the `talib` module). The other 23 are returns, volatility, EMA
distances, volume z-scores, candle shape, channel position and calendar encodings. Every feature
is scale-free (a ratio, return, z-score or bounded oscillator), so a model transfers across price
levels. The row of bar t uses bars <= t only.

Undefined values are NaN, never 0 or inf: warm-up rows, and ratios whose denominator is zero (a
flat bar, a flat channel, a window of zero volume). TA-Lib returns 0 in those degenerate cases; the
one place we keep a 0 is the directional index inside ADX's recursion, where a NaN would blank
every later ADX value. For the same reason bars must be clean: a NaN price fed to the EMA and
Wilder recursions would blank them from that bar on.

`compute_features` does the whole history at once; `latest_features` does the newest bar from a
bounded tail and agrees with it to rounding (see TAIL_BARS); `latest_rows` does the newest bar of
many tails at once, as the cycle does for every pair.
"""

from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.signal import lfilter

FEATURES: dict[str, str] = {
    "rsi_14": "relative strength index, 14 bars (talib.RSI)",
    "atr_pct_14": "average true range, 14 bars, / close (talib.ATR)",
    "macd_pct": "MACD line, EMA 12 - EMA 26 of close, / close (talib.MACD)",
    "macd_signal_pct": "MACD signal line, EMA 9 of the MACD line, / close (talib.MACD)",
    "macd_hist_pct": "MACD histogram, line - signal, / close (talib.MACD)",
    "adx_14": "average directional index, 14 bars (talib.ADX)",
    "plus_di_14": "plus directional indicator, 14 bars (talib.PLUS_DI)",
    "minus_di_14": "minus directional indicator, 14 bars (talib.MINUS_DI)",
    "stoch_k_14_3": "slow stochastic %K: SMA 3 of fast %K over 14 bars (talib.STOCH)",
    "stoch_d_14_3": "slow stochastic %D: SMA 3 of slow %K (talib.STOCH)",
    "willr_14": "Williams %R, 14 bars (talib.WILLR)",
    "cci_20": "commodity channel index, 20 bars (talib.CCI)",
    "mfi_14": "money flow index, 14 bars (talib.MFI)",
    "roc_10": "rate of change over 10 bars, percent (talib.ROC)",
    "bb_pctb_20": "Bollinger %B: (close - lower) / (upper - lower), SMA 20 +- 2 sd",
    "bb_width_20": "Bollinger width: (upper - lower) / middle, SMA 20 +- 2 sd",
    "logret_1": "log return over the last bar",
    "logret_3": "log return over the last 3 bars",
    "logret_12": "log return over the last 12 bars",
    "logret_48": "log return over the last 48 bars",
    "rvol_12": "realised volatility: RMS of 1-bar log returns over 12 bars",
    "rvol_48": "realised volatility: RMS of 1-bar log returns over 48 bars",
    "rvol_ratio_12_48": "volatility regime: rvol_12 / rvol_48",
    "ema_dist_20": "close / EMA 20 of close - 1",
    "ema_dist_50": "close / EMA 50 of close - 1",
    "ema_cross_20_50": "EMA 20 / EMA 50 - 1",
    "volume_z_20": "volume z-score against the last 20 bars",
    "volume_z_100": "volume z-score against the last 100 bars",
    "body_frac": "candle body (close - open) / (high - low), in [-1, 1]",
    "upper_wick_frac": "upper wick (high - max(open, close)) / (high - low)",
    "lower_wick_frac": "lower wick (min(open, close) - low) / (high - low)",
    "range_atr_14": "bar range (high - low) / ATR 14",
    "autocorr_96": "lag-1 autocorrelation of 1-bar log returns over 96 bars (trend vs reversion)",
    "range_pos_50": "close's position in the 50-bar high-low channel, 0 = low, 1 = high",
    "range_pos_100": "close's position in the 100-bar high-low channel, 0 = low, 1 = high",
    "tod_sin": "sin of the bar's UTC time of day (open time)",
    "tod_cos": "cos of the bar's UTC time of day (open time)",
    "dow_sin": "sin of the bar's position in the UTC week, Monday 00:00 = 0",
    "dow_cos": "cos of the bar's position in the UTC week, Monday 00:00 = 0",
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)
TALIB_FEATURES: tuple[str, ...] = FEATURE_NAMES[:16]  # the ones defined exactly as TA-Lib does
_FEATURE_INDEX = pd.Index(FEATURE_NAMES)  # built once: latest_features runs every bar

# Rows at positions >= WARMUP_BARS have all 39 features on clean data; the 100-bar windows
# (volume_z_100, range_pos_100) are the last to fill, at position 99.
WARMUP_BARS: int = 99

# latest_features looks back this many bars. Windowed features need at most 100 of them and are
# then bit-identical to the full history. The recursions (EMAs, Wilder smoothing) remember the
# past only through their seed, whose error shrinks geometrically; the slowest is the 50-bar EMA,
# by 49/51 per bar. Seeded at bar 49 of the tail, it has 950 bars to decay:
# (49/51)**950 ~ 3e-17, below float64 rounding even for a seed off by the whole price. Wilder's
# 14-bar smoothing decays by 13/14: ADX, which nests two such recursions, is off by about
# 1000 * (13/14)**950 ~ 1e-28. Measured on BTC 5m: a 700-bar tail is within 3e-12 relative, a
# 500-bar one only 3e-8; 1000 bars came out bit-identical.
TAIL_BARS: int = 1000

# The features that run a recursion (EMA, Wilder smoothing) through the whole tail. Every other
# one reads only the last WINDOW_BARS bars (windows, lags, calendar), so latest_rows computes
# it over those alone: the same value, since _rolling folds a window in the same order however
# long the series is.
_RECURSIVE = frozenset(
    {
        "rsi_14", "atr_pct_14", "macd_pct", "macd_signal_pct", "macd_hist_pct", "adx_14",
        "plus_di_14", "minus_di_14", "ema_dist_20", "ema_dist_50", "ema_cross_20_50",
        "range_atr_14",
    }
)  # fmt: skip
WINDOW_BARS: int = WARMUP_BARS + 1

# _spread works through rows in blocks this long, so that its `window` passes over a block stay
# in the CPU cache; over whole arrays it runs 2-3 times slower.
_BLOCK_ROWS = 16_384
_DAY_SECONDS = 86_400
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday = 0


def _lag(x: np.ndarray, bars: int) -> np.ndarray:
    """x shifted `bars` rows later, NaN where no earlier value exists."""
    out = np.full(x.shape, np.nan)
    out[..., bars:] = x[..., : max(x.shape[-1] - bars, 0)]
    return out


def _change(x: np.ndarray, bars: int = 1) -> np.ndarray:
    """x[t] - x[t - bars], NaN where no earlier value exists."""
    out = np.full(x.shape, np.nan)
    np.subtract(x[..., bars:], x[..., : max(x.shape[-1] - bars, 0)], out=out[..., bars:])
    return out


def _rolling(x: np.ndarray, window: int, combine: np.ufunc) -> np.ndarray:
    """`combine` (np.add, np.maximum, ...) folded over each row's last `window` values.

    NaN until a full window exists. Runs of 1, 2, 4, ... values are built by doubling and joined
    along the binary digits of `window`: O(n log window), and every row is folded in the same
    order however long the series is, so a tail gives bit-identical values to the full history.
    """
    n = x.shape[-1]
    out = np.full(x.shape, np.nan)
    if n < window:
        return out
    total = out[..., window - 1 :]  # folds the `covered` most recent values of each window
    runs, span, covered = x, 1, 0  # runs[i] folds the `span` values ending at row i
    while True:
        if window & span:
            older = runs[..., window - 1 - covered : n - covered]
            if covered:
                combine(total, older, out=total)
            else:
                total[...] = older
            covered += span
        if 2 * span > window:
            return out
        doubled = np.empty(x.shape)
        doubled[..., :span] = np.nan  # too early for a full run; never read
        combine(runs[..., span:], runs[..., :-span], out=doubled[..., span:])
        runs, span = doubled, 2 * span


def _rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    return _rolling(x, window, np.add) / window


def _is_flat(x: np.ndarray, window: int) -> np.ndarray:
    """Whether each row's last `window` values are all equal. Their spread is then exactly 0,
    where arithmetic would leave the rounding error of their mean (and a noisy %B or z-score)."""
    return _rolling(abs(_change(x)), window - 1, np.add) == 0.0


def _spread(x: np.ndarray, centre: np.ndarray, window: int, magnitude: np.ufunc) -> np.ndarray:
    """Sum of magnitude(x[t-k] - centre[t]) over each row's last `window` values (two-pass, so
    no cancellation). Each row has its own centre, so this loops over the offsets k, within
    cache-sized blocks of rows: O(n * window). Row results do not depend on the blocking."""
    n = x.shape[-1]
    out = np.full(x.shape, np.nan)
    scratch = np.empty((*x.shape[:-1], min(n, _BLOCK_ROWS)))
    for start in range(window - 1, n, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n)
        total, current = out[..., start:stop], centre[..., start:stop]
        work = scratch[..., : stop - start]
        total[...] = 0.0
        for offset in range(window):
            np.subtract(x[..., start - offset : stop - offset], current, out=work)
            total += magnitude(work, out=work)
    out[_is_flat(x, window)] = 0.0
    return out


def _smooth(x: np.ndarray, alpha: float, period: int, start: int) -> np.ndarray:
    """y[t] = y[t-1] + alpha * (x[t] - y[t-1]), seeded at `start` with the mean of the `period`
    values ending there (TA-Lib's seeding for EMA and Wilder smoothing); NaN before `start`."""
    y = np.full(x.shape, np.nan)
    if start < x.shape[-1]:
        y[..., start] = x[..., start - period + 1 : start + 1].mean(axis=-1)
        seed = (1.0 - alpha) * y[..., start : start + 1]
        y[..., start + 1 :] = lfilter([alpha], [1.0, alpha - 1.0], x[..., start + 1 :], zi=seed)[0]
    return y


def _ema(x: np.ndarray, period: int, start: int | None = None) -> np.ndarray:
    """TA-Lib's EMA (k = 2 / (period + 1)), seeded by default as soon as `period` values exist."""
    return _smooth(x, 2.0 / (period + 1), period, period - 1 if start is None else start)


def _wilder(x: np.ndarray, period: int, start: int) -> np.ndarray:
    """Wilder's smoothing (k = 1 / period), seeded at `start`."""
    return _smooth(x, 1.0 / period, period, start)


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, period: int = 14) -> np.ndarray:
    """Wilder's average true range exactly as talib.ATR computes it; NaN for the first `period`."""
    high, low, close = (np.asarray(x, dtype=np.float64) for x in (high, low, close))
    return _wilder(_true_range(high, low, close), period, start=period)


def _true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high - low, |high - previous close|, |low - previous close|); NaN on bar 0."""
    previous_close = _lag(close, 1)
    return np.maximum(high - low, np.maximum(abs(high - previous_close), abs(low - previous_close)))


def _rsi(close: np.ndarray, period: int) -> np.ndarray:
    change = _change(close)
    gain = _wilder(np.maximum(change, 0.0), period, start=period)
    loss = _wilder(np.maximum(-change, 0.0), period, start=period)
    return 100.0 * gain / (gain + loss)


def _cycle_angle(seconds: np.ndarray, period: int) -> np.ndarray:
    return (2.0 * np.pi / period) * (seconds % period)


def _epoch_seconds(ts: pd.Series) -> np.ndarray:
    # to_numpy gives UTC times of any zone; 20 times cheaper than the .dt accessor per tail.
    return ts.to_numpy(dtype="datetime64[s]").astype(np.int64)


_PRICES = ("open", "high", "low", "close", "volume")


class _Bars:
    """Bars as float arrays, plus the intermediates several features share (built once). One
    series per array, or several of one length stacked as rows: every formula works along the
    last axis, so each row gets exactly the values its series would get alone."""

    def __init__(self, prices: Sequence[np.ndarray], seconds: np.ndarray) -> None:
        self.open, self.high, self.low, self.close, self.volume = prices
        self.seconds = seconds

    @classmethod
    def of(cls, bars: pd.DataFrame) -> "_Bars":
        prices = [bars[column].to_numpy(dtype=np.float64) for column in _PRICES]
        return cls(prices, _epoch_seconds(bars["ts"]))

    @classmethod
    def stacked(cls, tails: Sequence[pd.DataFrame]) -> "_Bars":
        """Tails of one length, one per row."""
        prices = [
            np.stack([tail[column].to_numpy(dtype=np.float64) for tail in tails])
            for column in _PRICES
        ]
        return cls(prices, np.stack([_epoch_seconds(tail["ts"]) for tail in tails]))

    def last(self, bars: int) -> "_Bars":
        """The same series cut to their last `bars` bars (views, no copy)."""
        prices = [getattr(self, column)[..., -bars:] for column in _PRICES]
        return _Bars(prices, self.seconds[..., -bars:])

    @cached_property
    def log_close(self) -> np.ndarray:
        return np.log(self.close)

    def logret(self, bars: int) -> np.ndarray:
        return _change(self.log_close, bars)

    def _rvol(self, window: int) -> np.ndarray:
        return np.sqrt(_rolling_mean(self.logret(1) ** 2, window))

    @cached_property
    def rvol_12(self) -> np.ndarray:
        return self._rvol(12)

    @cached_property
    def rvol_48(self) -> np.ndarray:
        return self._rvol(48)

    @cached_property
    def bar_range(self) -> np.ndarray:
        return self.high - self.low

    @cached_property
    def true_range(self) -> np.ndarray:
        return _true_range(self.high, self.low, self.close)

    @cached_property
    def atr_14(self) -> np.ndarray:
        return _wilder(self.true_range, 14, start=14)

    @cached_property
    def typical_price(self) -> np.ndarray:
        return (self.high + self.low + self.close) / 3.0

    @cached_property
    def ema_20(self) -> np.ndarray:
        return _ema(self.close, 20)

    @cached_property
    def ema_50(self) -> np.ndarray:
        return _ema(self.close, 50)

    @cached_property
    def macd(self) -> tuple[np.ndarray, np.ndarray]:
        """MACD line and signal. TA-Lib starts both EMAs at bar 25, where the slow one first
        exists, so the fast EMA's seed is the SMA of bars 14..25, not 0..11."""
        line = _ema(self.close, 12, start=25) - _ema(self.close, 26, start=25)
        signal = _ema(line, 9, start=33)
        line[..., :33] = np.nan  # TA-Lib reports all three series from bar 33
        return line, signal

    @cached_property
    def directional(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """+DI, -DI and ADX over 14 bars, seeded as TA-Lib seeds them."""
        up, down = _change(self.high), -_change(self.low)
        plus_move = np.where(up > np.maximum(down, 0.0), up, 0.0)
        minus_move = np.where(down > np.maximum(up, 0.0), down, 0.0)
        # TA-Lib seeds each Wilder sum with bars 1..13 over 14, i.e. bar 0 counts as no move,
        # and reports DI from bar 14 on.
        range_moves = self.true_range.copy()
        range_moves[..., :1] = 0.0
        plus, minus, true_range = (
            _wilder(moves, 14, start=13) for moves in (plus_move, minus_move, range_moves)
        )
        plus_di, minus_di = 100.0 * plus / true_range, 100.0 * minus / true_range
        plus_di[..., :14] = minus_di[..., :14] = np.nan
        directional_sum = plus + minus
        # DX = |+DI - -DI| / (+DI + -DI), in which the true range cancels. Without any directional
        # move it is 0/0; counting that as 0 keeps the ADX recursion alive (TA-Lib skips the bar).
        dx = 100.0 * np.divide(
            abs(plus - minus),
            directional_sum,
            out=np.zeros_like(directional_sum),
            where=directional_sum != 0,
        )
        return plus_di, minus_di, _wilder(dx, 14, start=27)

    @cached_property
    def channel_14(self) -> tuple[np.ndarray, np.ndarray]:
        return self.channel(14)

    def channel(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """Highest high and lowest low over the last `window` bars."""
        return _rolling(self.high, window, np.maximum), _rolling(self.low, window, np.minimum)

    def channel_position(self, window: int) -> np.ndarray:
        top, bottom = self.channel(window)
        return (self.close - bottom) / (top - bottom)

    @cached_property
    def stochastic(self) -> tuple[np.ndarray, np.ndarray]:
        top, bottom = self.channel_14
        fast_k = 100.0 * (self.close - bottom) / (top - bottom)
        slow_k = _rolling_mean(fast_k, 3)
        slow_d = _rolling_mean(slow_k, 3)
        slow_k[..., :17] = np.nan  # TA-Lib reports %K from bar 17 too, where %D starts
        return slow_k, slow_d

    def williams_r(self) -> np.ndarray:
        top, bottom = self.channel_14
        return -100.0 * (top - self.close) / (top - bottom)

    def cci(self, window: int = 20) -> np.ndarray:
        """(TP - SMA(TP)) / (0.015 * mean absolute deviation of TP from that SMA)."""
        tp = self.typical_price
        mean = _rolling_mean(tp, window)
        mean_deviation = _spread(tp, mean, window, np.abs) / window
        return (tp - mean) / (0.015 * mean_deviation)

    def mfi(self, window: int = 14) -> np.ndarray:
        tp = self.typical_price
        flow = tp * self.volume
        change = _change(tp)
        # Like TA-Lib (0.6+), a change within 1e-14 of the prices' size is no change, so that
        # rounding in (high + low + close) / 3 cannot turn a tie into money flow.
        moved = abs(change) > 1e-14 * (abs(tp) + abs(_lag(tp, 1)))
        inflow = np.where(moved & (change > 0), flow, 0.0)
        outflow = np.where(moved & (change < 0), flow, 0.0)
        inflow[..., :1] = outflow[..., :1] = np.nan  # bar 0 has no previous price to compare with
        inflow, outflow = _rolling(inflow, window, np.add), _rolling(outflow, window, np.add)
        return 100.0 * inflow / (inflow + outflow)

    @cached_property
    def bollinger(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lower band, band height (upper - lower) and middle band: SMA 20 +- 2 population sd."""
        middle = _rolling_mean(self.close, 20)
        sd = np.sqrt(_spread(self.close, middle, 20, np.square) / 20)
        return middle - 2.0 * sd, 4.0 * sd, middle

    def volume_z(self, window: int) -> np.ndarray:
        """(volume - mean) / population sd over the last `window` bars. The variance comes from
        E[v^2] - E[v]^2, O(n log window): volume varies too much for that to cancel badly."""
        mean = _rolling_mean(self.volume, window)
        variance = _rolling_mean(self.volume**2, window) - mean**2
        variance[_is_flat(self.volume, window)] = 0.0
        return (self.volume - mean) / np.sqrt(np.maximum(variance, 0.0))

    def autocorrelation(self, window: int) -> np.ndarray:
        """Pearson correlation of r[t] with r[t-1] over the last `window` pairs: positive while
        moves persist (trend), negative while they revert."""
        now, before = self.logret(1), _lag(self.logret(1), 1)
        mean_now, mean_before = _rolling_mean(now, window), _rolling_mean(before, window)
        covariance = _rolling_mean(now * before, window) - mean_now * mean_before
        spread_now = _rolling_mean(now**2, window) - mean_now**2
        spread_before = _rolling_mean(before**2, window) - mean_before**2
        return covariance / np.sqrt(np.maximum(spread_now * spread_before, 0.0))

    @cached_property
    def day_angle(self) -> np.ndarray:
        """The bar's open time of day as an angle, midnight UTC = 0."""
        return _cycle_angle(self.seconds, _DAY_SECONDS)

    @cached_property
    def week_angle(self) -> np.ndarray:
        """The bar's open time in the week as an angle, Monday 00:00 UTC = 0."""
        return _cycle_angle(self.seconds + _EPOCH_WEEKDAY * _DAY_SECONDS, 7 * _DAY_SECONDS)


_FORMULAS: dict[str, Callable[[_Bars], np.ndarray]] = {
    "rsi_14": lambda b: _rsi(b.close, 14),
    "atr_pct_14": lambda b: b.atr_14 / b.close,
    "macd_pct": lambda b: b.macd[0] / b.close,
    "macd_signal_pct": lambda b: b.macd[1] / b.close,
    "macd_hist_pct": lambda b: (b.macd[0] - b.macd[1]) / b.close,
    "adx_14": lambda b: b.directional[2],
    "plus_di_14": lambda b: b.directional[0],
    "minus_di_14": lambda b: b.directional[1],
    "stoch_k_14_3": lambda b: b.stochastic[0],
    "stoch_d_14_3": lambda b: b.stochastic[1],
    "willr_14": lambda b: b.williams_r(),
    "cci_20": lambda b: b.cci(20),
    "mfi_14": lambda b: b.mfi(14),
    "roc_10": lambda b: 100.0 * (b.close / _lag(b.close, 10) - 1.0),
    "bb_pctb_20": lambda b: (b.close - b.bollinger[0]) / b.bollinger[1],
    "bb_width_20": lambda b: b.bollinger[1] / b.bollinger[2],
    "logret_1": lambda b: b.logret(1),
    "logret_3": lambda b: b.logret(3),
    "logret_12": lambda b: b.logret(12),
    "logret_48": lambda b: b.logret(48),
    "rvol_12": lambda b: b.rvol_12,
    "rvol_48": lambda b: b.rvol_48,
    "rvol_ratio_12_48": lambda b: b.rvol_12 / b.rvol_48,
    "ema_dist_20": lambda b: b.close / b.ema_20 - 1.0,
    "ema_dist_50": lambda b: b.close / b.ema_50 - 1.0,
    "ema_cross_20_50": lambda b: b.ema_20 / b.ema_50 - 1.0,
    "volume_z_20": lambda b: b.volume_z(20),
    "volume_z_100": lambda b: b.volume_z(100),
    "body_frac": lambda b: (b.close - b.open) / b.bar_range,
    "upper_wick_frac": lambda b: (b.high - np.maximum(b.open, b.close)) / b.bar_range,
    "lower_wick_frac": lambda b: (np.minimum(b.open, b.close) - b.low) / b.bar_range,
    "range_atr_14": lambda b: b.bar_range / b.atr_14,
    "autocorr_96": lambda b: b.autocorrelation(96),
    "range_pos_50": lambda b: b.channel_position(50),
    "range_pos_100": lambda b: b.channel_position(100),
    "tod_sin": lambda b: np.sin(b.day_angle),
    "tod_cos": lambda b: np.cos(b.day_angle),
    "dow_sin": lambda b: np.sin(b.week_angle),
    "dow_cos": lambda b: np.cos(b.week_angle),
}


def feature_matrix(bars: pd.DataFrame, names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """One row per feature in `names`, one column per bar; inf (from a zero denominator) -> NaN."""
    prepared = _Bars.of(bars)
    return _values(names, lambda name: _FORMULAS[name](prepared), (len(bars),))


def compute_features(bars: pd.DataFrame, names: Sequence[str] = FEATURE_NAMES) -> pd.DataFrame:
    """The features `names` (default all 39) of every bar, float64, indexed like `bars`.

    Row t depends only on rows <= t. Warm-up rows and undefined ratios are NaN.
    """
    # The matrix is ours alone, so pandas may keep it rather than copy it (a third of the time).
    values = feature_matrix(bars, names).T
    return pd.DataFrame(values, index=bars.index, columns=list(names), copy=False)


def latest_features(tail_bars: pd.DataFrame) -> pd.Series:
    """The newest bar's 39 features from at most its last TAIL_BARS bars.

    Equals compute_features(all history).iloc[-1] to float rounding, and exactly when the
    history is no longer than TAIL_BARS. Named after the newest bar's index label.
    """
    return pd.Series(latest_values(tail_bars), index=_FEATURE_INDEX, name=tail_bars.index[-1])


def latest_values(tail_bars: pd.DataFrame) -> np.ndarray:
    """latest_features as a bare array, in FEATURE_NAMES order."""
    return latest_rows([tail_bars])[0]


def latest_rows(tails: Sequence[pd.DataFrame]) -> np.ndarray:
    """latest_values of every tail, one row each. Tails of one length are stacked and computed
    as one array (a tail's maths costs less than the Python around it), and the windowed
    features only over the last WINDOW_BARS bars, which is all they read."""
    rows = np.empty((len(tails), len(FEATURE_NAMES)))
    by_length: dict[int, list[int]] = {}
    for position, tail in enumerate(tails):
        if tail.empty:
            raise ValueError("latest_features needs at least one bar")
        by_length.setdefault(min(len(tail), TAIL_BARS), []).append(position)
    for length, positions in by_length.items():
        stacked = _Bars.stacked([tails[p].iloc[-length:] for p in positions])
        rows[positions] = _latest(stacked).T
    return rows


def _latest(full: _Bars) -> np.ndarray:
    """The newest bar's features of each stacked series: (features, series)."""
    recent = full.last(WINDOW_BARS)
    return _values(
        FEATURE_NAMES,
        lambda name: _FORMULAS[name](full if name in _RECURSIVE else recent)[..., -1],
        full.close.shape[:-1],
    )


def _values(names: Sequence[str], formula: Callable[[str], np.ndarray], shape: tuple) -> np.ndarray:
    """formula(name) for each of `names`, one row each; inf (a zero denominator) -> NaN."""
    values = np.empty((len(names), *shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        for row, name in enumerate(names):
            values[row] = formula(name)
    values[np.isinf(values)] = np.nan
    return values
