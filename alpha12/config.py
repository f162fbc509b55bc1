"""Typed settings: SEED.md's defaults, overridden by alpha12.toml, then by ALPHA12_* variables.

Every problem in the overrides is collected with its key path and reported in one
`SettingsError`, so a user fixes a config file in one pass instead of one traceback at a time.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alpha12 import calendars
from alpha12.alerts import AlertSettings
from alpha12.errors import UserError
from alpha12.logs import LEVEL_NAMES
from alpha12.timeframes import INTERVALS

SOURCES = ("synthetic", "csv", "yfinance", "ccxt")
BACKENDS = ("local", "dask")
ENV_PREFIX = "ALPHA12_"
# A size DuckDB's memory_limit takes: a number and a unit.
MEMORY_LIMIT = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)
# Variables read by the app or the loader itself, not settings.
ENV_SKIPPED = frozenset(
    {"ALPHA12_CONFIG", "ALPHA12_ADMIN_PASSWORD", "ALPHA12_REQUIRE_BROWSER", "ALPHA12_ENGINE"}
)
# The timeframe settings an admin may edit in the app (saved in the store, audited).
EDITABLE = (
    "win_rate",
    "profit_factor",
    "min_trades",
    "cooldown_hours",
    "min_rows",
    "trigger",
    "max_calibration_gap",
)
# The live degradation rules a timeframe may judge by (monitor.performance_reasons): "threshold"
# the point win rate and profit factor against the thresholds, "guarded" the upper ends of their
# 95% intervals, "page_hinkley" a detected fall in mean R. Each is also a lab policy (seed,
# guarded, page_hinkley), which is how the default is chosen.
TRIGGERS = ("threshold", "guarded", "page_hinkley")
DEFAULT_TRIGGER = "guarded"


class SettingsError(UserError, ValueError):
    """Invalid settings; `problems` lists each one as 'key.path: what is wrong'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class TimeframeSettings:
    """What counts as healthy, how often to retrain and how trades are shaped on one timeframe."""

    win_rate: float  # minimum recent win rate before the pair counts as degraded
    profit_factor: float  # minimum recent profit factor
    min_trades: int  # resolved trades needed before the monitor judges at all
    cooldown_hours: float  # clock time between two recalibration attempts of a pair
    min_rows: int  # labelled snapshot rows needed to train a model
    horizon_bars: int  # a setup expires (and a target resolves) after this many bars
    tp_mult: float  # take-profit distance in ATRs
    sl_mult: float  # stop distance in ATRs
    entry_threshold: float  # calibrated probability needed for a long (1 - it for a short)
    train_rows: int  # newest labelled rows a model trains on (chosen by bench/bench_window.py)
    trigger: str = DEFAULT_TRIGGER  # the degradation rule, one of TRIGGERS
    max_calibration_gap: float = 0.10  # live ECE beyond this degrades the serving model
    # Whether a serving model without an out-of-sample edge (metrics.edge_verdict) opens real
    # setups; when not, its setups open in shadow, so the monitor still judges it.
    trade_without_edge: bool = True

    def problems(self, path: str) -> list[str]:
        checks = [
            (0 <= self.win_rate <= 1, "win_rate", "must be within [0, 1]"),
            (self.profit_factor >= 0, "profit_factor", "must be >= 0"),
            (self.min_trades >= 1, "min_trades", "must be >= 1"),
            (self.cooldown_hours >= 0, "cooldown_hours", "must be >= 0"),
            (self.min_rows >= 20, "min_rows", "must be >= 20"),
            (self.horizon_bars >= 1, "horizon_bars", "must be >= 1"),
            (self.tp_mult > 0, "tp_mult", "must be > 0"),
            (self.sl_mult > 0, "sl_mult", "must be > 0"),
            (0.5 < self.entry_threshold < 1, "entry_threshold", "must be within (0.5, 1)"),
            (self.train_rows >= self.min_rows, "train_rows", "must be >= min_rows"),
            (self.trigger in TRIGGERS, "trigger", f"must be one of {', '.join(TRIGGERS)}"),
            (0 < self.max_calibration_gap <= 1, "max_calibration_gap", "must be within (0, 1]"),
            (isinstance(self.trade_without_edge, bool), "trade_without_edge", "must be a bool"),
        ]
        return [f"{path}.{key}: {message}" for ok, key, message in checks if not ok]


def _tf(win_rate, profit_factor, min_trades, cooldown_hours, min_rows, horizon_bars, train_rows):
    return TimeframeSettings(
        win_rate=win_rate,
        profit_factor=profit_factor,
        min_trades=min_trades,
        cooldown_hours=cooldown_hours,
        min_rows=min_rows,
        horizon_bars=horizon_bars,
        tp_mult=1.5,
        sl_mult=1.5,
        entry_threshold=0.55,
        train_rows=train_rows,
    )


# SEED.md: thresholds, min trades, cooldown hours, min rows and horizon per timeframe; the
# training window from bench/bench_window.py's table (README, "The training window").
SEED_TIMEFRAMES: dict[str, TimeframeSettings] = {
    "5m": _tf(0.45, 1.0, 50, 2, 300, 12, 1000),
    "15m": _tf(0.48, 1.1, 40, 4, 200, 12, 500),
    "1h": _tf(0.52, 1.2, 30, 8, 150, 12, 1000),
    "4h": _tf(0.55, 1.3, 20, 24, 100, 12, 250),
    "1d": _tf(0.58, 1.4, 15, 72, 80, 10, 250),
}


@dataclass(frozen=True)
class Settings:
    assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    intervals: tuple[str, ...] = INTERVALS
    source: str = "synthetic"
    csv_dir: Path | None = None  # folder of ASSET_INTERVAL.csv files for source = "csv"
    seed: int = 12  # synthetic market seed
    replay_speed: float = 600.0  # market seconds per real second for replayed sources
    replay_start: str | None = None  # ISO time the replay starts at; None picks a default
    history_days: int = 365  # market days served before the replay start
    db_path: Path = Path("storage.duckdb")
    models_dir: Path = Path("runs/timeframe_models")
    fee_bps: float = 2.0  # per side
    slippage_bps: float = 1.0  # per side
    # Wall-clock time between monitor runs, for every market at once; the cooldowns and silence
    # limits it judges by count each asset's trading time (alpha12.calendars).
    monitor_period_minutes: float = 60.0
    trade_window: int = 100  # most recent resolved trades the monitor judges
    n_jobs: int = 2  # local joblib workers for training bursts
    backend: str = "local"  # where models train: "local" cores or a "dask" cluster
    dask_scheduler: str | None = None  # e.g. "tcp://10.0.0.5:8786" when backend = "dask"
    source_timeout_s: float = 30.0
    yfinance_tickers: dict[str, str] = field(
        default_factory=lambda: {"BTC": "BTC-USD", "ETH": "ETH-USD", "SOL": "SOL-USD"}
    )
    ccxt_exchange: str = "binance"  # a ccxt exchange id, for source = "ccxt"
    ccxt_symbols: dict[str, str] = field(
        default_factory=lambda: {"BTC": "BTC/USDT", "ETH": "ETH/USDT", "SOL": "SOL/USDT"}
    )
    timeframes: dict[str, TimeframeSettings] = field(default_factory=lambda: dict(SEED_TIMEFRAMES))
    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR or CRITICAL
    log_file: Path | None = None  # also log to this file, rotated
    log_json: bool = False  # JSON lines instead of plain lines
    alerts: AlertSettings = field(default_factory=AlertSettings)
    memory_limit: str = "512MB"  # DuckDB's memory cap (it spills to disk beyond), e.g. "2GB"
    # asset -> its market's calendar: "24/7" or an exchange (XNYS, XNAS, XLON, ...); an asset
    # without an entry is 24/7, or for source = "yfinance" its ticker's (calendars.yahoo_default)
    calendars: dict[str, str] = field(default_factory=dict)

    @property
    def round_trip_cost_bps(self) -> float:
        return 2 * (self.fee_bps + self.slippage_bps)

    def timeframe(self, interval: str) -> TimeframeSettings:
        return self.timeframes[interval]

    def calendar_name(self, asset: str) -> str:
        if asset in self.calendars:
            return self.calendars[asset]
        if self.source == "yfinance":
            return calendars.yahoo_default(self.yfinance_tickers.get(asset, asset))
        return calendars.ALWAYS_OPEN

    def calendar(self, asset: str) -> calendars.Calendar:
        """The asset's market calendar (see alpha12.calendars)."""
        return calendars.get(self.calendar_name(asset))

    def fallback_timeframe(self) -> TimeframeSettings:
        """What an asset's pooled fallback model is fitted with. Fitting reads two settings:
        min_rows, the largest of the timeframes' (a model that serves every timeframe needs at
        least the evidence the most demanding of them needs), and entry_threshold, the
        largest (its reported signal results are those of its strictest user). Its rows are
        each timeframe's own training window, purged by each row's own horizon; the pairs it
        serves trade and are judged with their own timeframe's settings."""
        serving = [self.timeframe(i) for i in self.intervals]
        return dataclasses.replace(
            serving[0],
            min_rows=max(t.min_rows for t in serving),
            entry_threshold=max(t.entry_threshold for t in serving),
            train_rows=max(t.train_rows for t in serving),
        )

    def problems(self) -> list[str]:
        found = []
        if self.source not in SOURCES:
            found.append(f"source: {self.source!r} is not one of {', '.join(SOURCES)}")
        if self.backend not in BACKENDS:
            found.append(f"backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.backend == "dask" and not self.dask_scheduler:
            found.append("dask_scheduler: required when backend = 'dask'")
        if self.source == "csv" and self.csv_dir is None:
            found.append("csv_dir: required when source = 'csv'")
        if not self.assets:
            found.append("assets: at least one asset is needed")
        found += [
            f"intervals: unknown timeframe {i!r} (known: {', '.join(INTERVALS)})"
            for i in self.intervals
            if i not in INTERVALS
        ]
        for name in ("replay_speed", "monitor_period_minutes", "source_timeout_s"):
            if getattr(self, name) <= 0:
                found.append(f"{name}: must be > 0")
        for name in ("fee_bps", "slippage_bps"):
            if getattr(self, name) < 0:
                found.append(f"{name}: must be >= 0")
        if self.trade_window < 1 or self.n_jobs < 1 or self.history_days < 1:
            found.append("trade_window, n_jobs and history_days: must be >= 1")
        for interval, tf in self.timeframes.items():
            found += tf.problems(f"timeframes.{interval}")
        if self.log_level.upper() not in LEVEL_NAMES:
            found.append(f"log_level: {self.log_level!r} is not one of {', '.join(LEVEL_NAMES)}")
        if not MEMORY_LIMIT.fullmatch(self.memory_limit.strip()):
            found.append(f"memory_limit: {self.memory_limit!r} is not a size like '512MB' or '2GB'")
        if self.source == "ccxt" and not self.ccxt_exchange:
            found.append("ccxt_exchange: required when source = 'ccxt'")
        return found + self._calendar_problems() + self.alerts.problems("alerts")

    def _calendar_problems(self) -> list[str]:
        named = [(a, n) for a, n in self.calendars.items() if n != calendars.ALWAYS_OPEN]
        if not named:  # 24/7 only: exchange_calendars is never loaded
            return []
        known = calendars.names(aliases=True)
        choices = ", ".join(calendars.names())
        return [
            f"calendars.{asset}: {name!r} is not a known calendar; choose one of {choices}"
            for asset, name in named
            if name not in known
        ]

    def with_timeframe(self, interval: str, **changes: Any) -> Settings:
        """A copy with some of one timeframe's settings changed, validated."""
        updated = dict(self.timeframes)
        updated[interval] = dataclasses.replace(self.timeframes[interval], **changes)
        return _validated(dataclasses.replace(self, timeframes=updated))


def load_settings(config_path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Defaults, then the TOML file (./alpha12.toml when it exists), then ALPHA12_* variables."""
    env = os.environ if env is None else env
    path = _config_path(config_path, env)
    raw: dict[str, Any] = {}
    problems: list[str] = []
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise SettingsError([f"{path}: file not found"]) from None
        except tomllib.TOMLDecodeError as error:
            raise SettingsError([f"{path}: not valid TOML ({error})"]) from None
    _merge(raw, _from_env(env))
    settings = _build(Settings, raw, "", problems)
    reported = {problem.split(":")[0] for problem in problems}  # no second word on a bad type
    problems += [p for p in settings.problems() if p.split(":")[0] not in reported]
    if problems:
        raise SettingsError(problems)
    return settings


def _config_path(config_path: Path | None, env: typing.Mapping[str, str]) -> Path | None:
    """The TOML file load_settings reads: the given one, else ALPHA12_CONFIG or ./alpha12.toml
    when it exists; None when the defaults and variables are all there is."""
    if config_path is not None:
        return config_path
    path = Path(env.get("ALPHA12_CONFIG", "alpha12.toml"))
    return path if path.exists() else None


def settings_origin(config_path: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Where load_settings takes the settings from, in words for the start log line."""
    env = os.environ if env is None else env
    path = _config_path(config_path, env)
    parts = [str(path) if path is not None else "defaults"]
    if any(name.startswith(ENV_PREFIX) and name not in ENV_SKIPPED for name in env):
        parts.append("ALPHA12_* variables")
    return " + ".join(parts)


def _validated(settings: Settings) -> Settings:
    problems = settings.problems()
    if problems:
        raise SettingsError(problems)
    return settings


def _from_env(env: typing.Mapping[str, str]) -> dict[str, Any]:
    """ALPHA12_REPLAY_SPEED=60 -> {replay_speed: "60"}; ALPHA12_TIMEFRAMES__5M__WIN_RATE=0.5
    -> {timeframes: {5m: {win_rate: "0.5"}}}. Values stay strings; _build coerces them."""
    nested: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_SKIPPED:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        target = nested
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return nested


def _merge(base: dict[str, Any], override: dict[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _build(cls: type, raw: Any, path: str, problems: list[str]) -> Any:
    """Instantiate dataclass `cls` from `raw`, coercing types and recording problems."""
    if not isinstance(raw, dict):
        problems.append(f"{path or 'settings'}: expected a table, got {raw!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    for key in raw.keys() - fields:
        problems.append(f"{path}{key}: unknown setting")
    values = {}
    for name in fields & raw.keys():
        values[name] = _coerce(hints[name], raw[name], f"{path}{name}", problems)
    if cls is Settings and "timeframes" in values:
        values["timeframes"] = {**SEED_TIMEFRAMES, **values["timeframes"]}
    try:
        return cls(**values)
    except TypeError as error:  # a required TimeframeSettings field is missing
        problems.append(f"{path.rstrip('.') or 'settings'}: {error}")
        return None


def _coerce(hint: Any, value: Any, path: str, problems: list[str]) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is AlertSettings:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a table, got {value!r}")
            return AlertSettings()
        return _build(AlertSettings, value, f"{path}.", problems)
    if origin in (types.UnionType, typing.Union):
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, path, problems)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            problems.append(f"{path}: expected a list, got {value!r}")
            return ()
        return tuple(
            _coerce(args[0], item.strip() if isinstance(item, str) else item, path, problems)
            for item in items
        )
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a table, got {value!r}")
            return {}
        if args[1] is TimeframeSettings:
            unknown = [k for k in value if k not in INTERVALS]
            problems += [
                f"{path}.{k}: unknown timeframe (known: {', '.join(INTERVALS)})" for k in unknown
            ]
            return {
                k: _build_timeframe(k, v, f"{path}.{k}.", problems)
                for k, v in value.items()
                if k in INTERVALS
            }
        return {str(k): _coerce(args[1], v, f"{path}.{k}", problems) for k, v in value.items()}
    return _scalar(hint, value, path, problems)


def _build_timeframe(interval: str, raw: Any, path: str, problems: list[str]) -> TimeframeSettings:
    if not isinstance(raw, dict):
        problems.append(f"{path.rstrip('.')}: expected a table, got {raw!r}")
        return SEED_TIMEFRAMES[interval]
    base = dataclasses.asdict(SEED_TIMEFRAMES[interval]) | raw
    return _build(TimeframeSettings, base, path, problems) or SEED_TIMEFRAMES[interval]


def _scalar(hint: type, value: Any, path: str, problems: list[str]) -> Any:
    try:
        if hint is bool:
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
                return value.lower() in ("1", "true", "yes")
            if isinstance(value, bool):
                return value
            raise ValueError
        if hint in (int, float) and isinstance(value, bool):
            raise ValueError
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if hint in (int, float, Path, str) and isinstance(value, list | dict):
            raise ValueError
        return hint(value)
    except (TypeError, ValueError):
        problems.append(f"{path}: expected {hint.__name__}, got {value!r}")
        return hint() if hint is not Path else Path()
