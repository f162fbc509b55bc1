"""A seeded synthetic market: reproducible 5-minute bars whose return dynamics switch regime.

Design, per asset:

- Log price is a random walk whose 5-minute returns follow a per-regime AR process
  ``r[t] = phi * r[t-1] + psi * mean(r[t-12:t]) + sigma[t] * z[t]``. The ``phi`` term gives 5m
  autocorrelation; the ``psi`` term looks back one hour, so 1h bars feel the regime too
  (a lag-1 AR on 5m alone is diluted to ~0.02 autocorrelation at 1h).
  Measured lag-1 autocorrelations within regime (5m / 1h): trending ~ +0.22 / +0.35,
  mean_reverting ~ -0.18 / -0.23, noise ~ 0 / 0.
- Innovations are scaled per regime so every regime has the same hourly volatility: a model
  cannot tell regimes apart by volatility alone, only by the serial dependence it must learn.
- Regimes last a whole number of days drawn from MIN_REGIME_DAYS..MAX_REGIME_DAYS; each new
  regime differs from the previous one, so all three keep occurring.
- Volatility is stochastic: log-vol is a mean-reverting AR(1) with a one-day half-life.
  Innovations are Student-t (5 dof) for fat tails.
- Volatility and volume follow a U-shape over the UTC day (highest around midnight, lowest
  around noon); volume also scales with the current volatility and the bar's shock size, so it
  correlates with absolute returns.
- The market trades 24/7: every 5-minute slot exists and each open equals the previous close.
  `session_bars` makes a stock market of it: only the bars of an exchange's sessions, opening
  each session where the 24/7 price stands (an overnight gap), more volatile after the open and
  with a U-shaped volume over the session.

Reproducibility: day ``d`` draws only from ``SeedSequence([seed, crc32(asset), d])`` and state
(price, log-vol, last hour of returns, regime) is carried from day to day, so a longer run
repeats a shorter one exactly over their common span. Asset parameters (start price, volatility,
volume scale) depend only on the asset name.
"""

import re
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.signal import lfilter, lfiltic

REGIMES: tuple[str, ...] = ("trending", "mean_reverting", "noise")
MIN_REGIME_DAYS, MAX_REGIME_DAYS = 2, 6

BAR = pd.Timedelta(minutes=5)
BARS_PER_DAY = 288
BARS_PER_HOUR = 12

# (phi, psi) of the return AR process per regime, see the module docstring.
_DEPENDENCE = {"trending": (0.15, 0.40), "mean_reverting": (-0.15, -0.70), "noise": (0.0, 0.0)}

_LOG_VOL_PERSISTENCE = 0.5 ** (1 / BARS_PER_DAY)  # one-day half-life
_LOG_VOL_SD = 0.35  # stationary standard deviation of log-vol
_T_DOF = 5
_VOLUME_SEASON, _VOLATILITY_SEASON = 0.6, 0.25  # amplitude of the intraday U-shape
_WICK_SCALE = 0.6  # wick length in units of the bar's sigma
_VOLUME_NOISE_SD = 0.25

_SESSION_VOLUME_SEASON = 0.6  # amplitude of the U-shaped volume over a session
_OPENING_VOLATILITY = 1.5  # extra volatility at the open, fading over about half an hour
_OPENING_FADE = 0.08  # of the session's length (31 minutes of a 6.5-hour NYSE session)

# Familiar price levels so demo charts of the majors look right; other assets get a hashed one.
_FAMILIAR_START_PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "BNB": 550.0}


def ar_coefficients(regime: str) -> np.ndarray:
    """Coefficients a[0..11] of r[t] = sum_k a[k] * r[t-1-k] + innovation for `regime`."""
    phi, psi = _DEPENDENCE[regime]
    coefficients = np.full(BARS_PER_HOUR, psi / BARS_PER_HOUR)
    coefficients[0] += phi
    return coefficients


def _hourly_sd_gain(coefficients: np.ndarray, horizon: int = 5_000) -> float:
    """Stationary sd of an hour's summed returns relative to a unit random walk's sqrt(12)."""
    impulse = np.zeros(horizon)
    impulse[0] = 1.0
    response = lfilter([1.0], np.r_[1.0, -coefficients], impulse)
    hourly_response = np.convolve(response, np.ones(BARS_PER_HOUR))
    return float(np.sqrt((hourly_response**2).sum() / BARS_PER_HOUR))


# Dividing innovations by the gain equalises hourly volatility across regimes.
_INNOVATION_SCALE = {regime: 1.0 / _hourly_sd_gain(ar_coefficients(regime)) for regime in REGIMES}


@dataclass(frozen=True)
class AssetParams:
    start_price: float
    daily_vol: float  # sd of a day's log return in the noise regime
    bar_volume: float  # typical volume of one 5m bar, in units of the asset


def asset_params(asset: str) -> AssetParams:
    """Stable parameters for `asset`, derived from crc32 of its name (independent of the seed)."""
    rng = np.random.default_rng(zlib.crc32(asset.encode()))
    base_symbol = re.sub(r"[-/]?(USDT|USDC|USD)$", "", asset.upper())
    start_price = _FAMILIAR_START_PRICES.get(base_symbol, 10 ** rng.uniform(0.0, 4.0))
    daily_vol = rng.uniform(0.025, 0.045)
    bar_notional = 10 ** rng.uniform(6.0, 7.0)  # quote currency traded per 5 minutes
    return AssetParams(float(start_price), float(daily_vol), float(bar_notional / start_price))


def intraday_shape(amplitude: float) -> np.ndarray:
    """U-shape over the UTC day per 5m bar: 1 + amplitude at midnight, 1 - amplitude at noon."""
    day_fraction = (np.arange(BARS_PER_DAY) + 0.5) / BARS_PER_DAY
    return 1.0 + amplitude * np.cos(2 * np.pi * day_fraction)


_VOLUME_SHAPE = intraday_shape(_VOLUME_SEASON)
_VOLATILITY_SHAPE = intraday_shape(_VOLATILITY_SEASON)


@dataclass(frozen=True)
class _State:
    """What one day hands to the next."""

    close: float
    log_vol: float
    last_hour_returns: np.ndarray  # oldest first
    regime: str | None
    regime_days_left: int


def _initial_state(params: AssetParams) -> _State:
    return _State(params.start_price, 0.0, np.zeros(BARS_PER_HOUR), None, 0)


def _next_regime(rng: np.random.Generator, state: _State) -> tuple[str, int]:
    """Keep the regime while it has days left, otherwise switch to a different one."""
    if state.regime is not None and state.regime_days_left > 0:
        return state.regime, state.regime_days_left
    candidates = [regime for regime in REGIMES if regime != state.regime]
    duration = int(rng.integers(MIN_REGIME_DAYS, MAX_REGIME_DAYS + 1))
    return candidates[rng.integers(len(candidates))], duration


def _log_vol_path(rng: np.random.Generator, start: float) -> np.ndarray:
    """AR(1) log-vol for one day, continuing from yesterday's last value."""
    shock_sd = _LOG_VOL_SD * np.sqrt(1 - _LOG_VOL_PERSISTENCE**2)
    shocks = rng.standard_normal(BARS_PER_DAY)
    return lfilter(
        [shock_sd], [1.0, -_LOG_VOL_PERSISTENCE], shocks, zi=[_LOG_VOL_PERSISTENCE * start]
    )[0]


def _simulate_day(
    rng: np.random.Generator, state: _State, params: AssetParams
) -> tuple[dict[str, np.ndarray], _State]:
    """One day of OHLCV arrays, plus the state for the next day (which holds the day's regime)."""
    regime, days_left = _next_regime(rng, state)
    log_vol = _log_vol_path(rng, state.log_vol)
    shocks = rng.standard_t(_T_DOF, BARS_PER_DAY) / np.sqrt(_T_DOF / (_T_DOF - 2))
    wicks = np.abs(rng.standard_normal((2, BARS_PER_DAY))) * _WICK_SCALE
    volume_noise = rng.normal(0.0, _VOLUME_NOISE_SD, BARS_PER_DAY)

    # exp(log_vol - LOG_VOL_SD**2) keeps the mean variance at the nominal level.
    bar_vol = params.daily_vol / np.sqrt(BARS_PER_DAY)
    sigma = bar_vol * _VOLATILITY_SHAPE * np.exp(log_vol - _LOG_VOL_SD**2)
    denominator = np.r_[1.0, -ar_coefficients(regime)]
    initial = lfiltic([1.0], denominator, state.last_hour_returns[::-1])
    innovations = sigma * _INNOVATION_SCALE[regime] * shocks
    returns = lfilter([1.0], denominator, innovations, zi=initial)[0]

    close = state.close * np.exp(np.cumsum(returns))
    open_ = np.r_[state.close, close[:-1]]
    volume = params.bar_volume * _VOLUME_SHAPE * np.exp(log_vol + volume_noise)
    day = {
        "open": open_,
        "high": np.maximum(open_, close) * np.exp(sigma * wicks[0]),
        "low": np.minimum(open_, close) * np.exp(-sigma * wicks[1]),
        "close": close,
        "volume": volume * (0.5 + np.abs(shocks)),  # big shocks trade more
    }
    next_state = _State(
        float(close[-1]), float(log_vol[-1]), returns[-BARS_PER_HOUR:], regime, days_left - 1
    )
    return day, next_state


def _day_rng(seed: int, asset: str, day: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(asset.encode()), day]))


def _check_origin(origin: pd.Timestamp) -> pd.Timestamp:
    """`origin` in UTC; raises ValueError unless it is a timezone-aware UTC midnight."""
    origin = pd.Timestamp(origin)
    if origin.tzinfo is None:
        raise ValueError(f"origin must be timezone-aware (UTC), got {origin}")
    utc = origin.tz_convert("UTC")
    if utc != utc.normalize():
        raise ValueError(f"origin must be midnight UTC, got {origin}")
    return utc


@lru_cache(maxsize=64)
def generate(
    seed: int, asset: str, origin: pd.Timestamp, days: int
) -> tuple[pd.DataFrame, pd.Series]:
    """`days` days of 5m bars for `asset` from `origin` (UTC midnight) and each bar's regime.

    Cached, so callers must not mutate the results (SyntheticMarket hands out copies).
    """
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    origin = _check_origin(origin)
    params = asset_params(asset)
    n_bars = days * BARS_PER_DAY
    columns = {name: np.empty(n_bars) for name in ("open", "high", "low", "close", "volume")}
    regime_codes = np.empty(n_bars, dtype=np.int8)
    state = _initial_state(params)
    for day in range(days):
        day_arrays, state = _simulate_day(_day_rng(seed, asset, day), state, params)
        rows = slice(day * BARS_PER_DAY, (day + 1) * BARS_PER_DAY)
        for name, values in day_arrays.items():
            columns[name][rows] = values
        regime_codes[rows] = REGIMES.index(state.regime)
    bars = pd.DataFrame({"ts": pd.date_range(origin, periods=n_bars, freq=BAR)} | columns)
    regimes = pd.Series(pd.Categorical.from_codes(regime_codes, categories=REGIMES), name="regime")
    return bars, regimes


@dataclass(frozen=True)
class SyntheticMarket:
    """A reproducible market: the same seed and origin always yield the same bars."""

    seed: int  # non-negative
    origin: pd.Timestamp  # first bar's open time, UTC midnight

    def __post_init__(self) -> None:
        # Normalised to UTC so equal origins share generate()'s cache.
        object.__setattr__(self, "origin", _check_origin(self.origin))

    def base_bars(self, asset: str, days: int) -> pd.DataFrame:
        """A bars frame of `days` * 288 five-minute bars starting at `origin`."""
        return generate(self.seed, asset, self.origin, days)[0].copy()

    def regimes(self, asset: str, days: int) -> pd.Series:
        """The regime label of each base bar, aligned with base_bars' rows."""
        return generate(self.seed, asset, self.origin, days)[1].copy()


def session_bars(base: pd.DataFrame, calendar) -> pd.DataFrame:
    """The 5m bars of `base` (a 24/7 market) inside `calendar`'s sessions, reshaped like a
    stock's: each session opens at the 24/7 price then (the move while closed is its overnight
    gap), its returns and wicks are scaled up after the open, and its volume follows a U over
    the session instead of the UTC day."""
    ts = pd.DatetimeIndex(base["ts"])
    closed, off_grid = calendar.stamp_problems(ts, "5m")
    bars = base[~closed & ~off_grid].reset_index(drop=True)
    ts = pd.DatetimeIndex(bars["ts"])
    session, _ = calendar.session_of(ts)
    opens, closes = calendar.opens[session], calendar.closes[session]
    position = np.asarray((ts - opens) / (closes - opens))  # 0 at the open, near 1 at the close
    scale = 1.0 + _OPENING_VOLATILITY * np.exp(-position / _OPENING_FADE)
    o, h, low, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))
    returns = np.log(c / o) * scale
    cumulative = pd.Series(returns).groupby(session).cumsum().to_numpy()
    first = np.r_[True, session[1:] != session[:-1]]
    session_open = pd.Series(np.where(first, o, np.nan)).ffill().to_numpy()
    close = session_open * np.exp(cumulative)
    open_ = np.where(first, o, np.r_[np.nan, close[:-1]])
    upper, lower = np.log(h / np.maximum(o, c)) * scale, np.log(np.minimum(o, c) / low) * scale
    slot = ((ts - ts.normalize()) // BAR).to_numpy()  # the base volume's place in the UTC day
    volume_shape = 1.0 + _SESSION_VOLUME_SEASON * np.cos(2 * np.pi * position)
    return pd.DataFrame(
        {
            "ts": bars["ts"],
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(upper),
            "low": np.minimum(open_, close) * np.exp(-lower),
            "close": close,
            "volume": bars["volume"].to_numpy() / _VOLUME_SHAPE[slot] * volume_shape,
        }
    )
