"""Settings: SEED.md defaults, TOML then ALPHA12_* overrides, one error listing every problem."""

from pathlib import Path

import pytest

from alpha12.config import SEED_TIMEFRAMES, Settings, SettingsError, load_settings

# SEED.md: win_rate, profit_factor, min_trades, cooldown hours, min_rows per timeframe.
SEED = {
    "5m": (0.45, 1.0, 50, 2, 300),
    "15m": (0.48, 1.1, 40, 4, 200),
    "1h": (0.52, 1.2, 30, 8, 150),
    "4h": (0.55, 1.3, 20, 24, 100),
    "1d": (0.58, 1.4, 15, 72, 80),
}


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alpha12.toml"
    path.write_text(text)
    return path


def problems_of(config: Path | None, env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load_settings(config, env=env)
    return raised.value.problems


@pytest.mark.parametrize("interval", list(SEED))
def test_defaults_are_seed_md(interval):
    tf = load_settings(env={"ALPHA12_CONFIG": "/nonexistent/alpha12.toml"}).timeframe(interval)
    assert (tf.win_rate, tf.profit_factor, tf.min_trades, tf.cooldown_hours, tf.min_rows) == (
        SEED[interval]
    )


def test_defaults_cover_the_five_timeframes():
    settings = Settings()
    assert settings.intervals == ("5m", "15m", "1h", "4h", "1d")
    assert set(settings.timeframes) == set(SEED)
    assert settings.problems() == []


def test_toml_overrides_defaults_and_env_overrides_toml(tmp_path):
    config = write_toml(
        tmp_path,
        """
assets = ["BTC", "DOGE"]
replay_speed = 60
[timeframes.5m]
win_rate = 0.40
min_trades = 70
[timeframes.1d]
cooldown_hours = 48
""",
    )
    from_file = load_settings(config, env={})
    assert from_file.assets == ("BTC", "DOGE")
    assert from_file.replay_speed == 60.0
    assert from_file.timeframe("5m").win_rate == 0.40
    assert from_file.timeframe("5m").min_trades == 70
    assert from_file.timeframe("5m").profit_factor == 1.0  # untouched keys keep SEED values
    assert from_file.timeframe("1d").cooldown_hours == 48
    assert from_file.timeframe("1h").win_rate == 0.52  # untouched timeframes too

    env = {
        "ALPHA12_TIMEFRAMES__5M__WIN_RATE": "0.5",
        "ALPHA12_REPLAY_SPEED": "120",
        "ALPHA12_ASSETS": "ETH, SOL",
        "ALPHA12_HISTORY_DAYS": "20",
    }
    overridden = load_settings(config, env=env)
    assert overridden.timeframe("5m").win_rate == 0.5
    assert overridden.timeframe("5m").min_trades == 70  # the file's value survives beside env
    assert overridden.replay_speed == 120.0
    assert overridden.assets == ("ETH", "SOL")
    assert overridden.history_days == 20


def test_config_file_named_by_env_variable(tmp_path):
    config = write_toml(tmp_path, "seed = 99\n")
    assert load_settings(env={"ALPHA12_CONFIG": str(config)}).seed == 99


def test_every_problem_in_one_error_with_its_key_path(tmp_path):
    config = write_toml(
        tmp_path,
        """
bogus = 1
seed = "twelve"
intervals = ["5m", "2h"]
[timeframes.5m]
win_rate = 1.5
[timeframes.1h]
cooldown_hours = -1
[timeframes.3m]
win_rate = 0.5
[timeframes.4h]
colour = "red"
""",
    )
    problems = problems_of(config, {"ALPHA12_TIMEFRAMES__1D__MIN_TRADES": "many"})
    expected_prefixes = [
        "bogus:",  # unknown key
        "seed:",  # wrong type
        "intervals:",  # unknown timeframe in the list
        "timeframes.5m.win_rate:",  # outside [0, 1]
        "timeframes.1h.cooldown_hours:",  # negative cooldown
        "timeframes.3m:",  # unknown timeframe table
        "timeframes.4h.colour:",  # unknown key inside a timeframe
        "timeframes.1d.min_trades:",  # wrong type from the environment
    ]
    for prefix in expected_prefixes:
        assert sum(p.startswith(prefix) for p in problems) == 1, (prefix, problems)
    assert len(problems) == len(expected_prefixes), problems


def test_error_message_lists_every_problem(tmp_path):
    config = write_toml(tmp_path, "[timeframes.15m]\nwin_rate = -0.1\nprofit_factor = -2\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(config, env={})
    text = str(raised.value)
    assert "timeframes.15m.win_rate" in text
    assert "timeframes.15m.profit_factor" in text


@pytest.mark.parametrize(
    ("env", "path"),
    [
        ({"ALPHA12_TIMEFRAMES__5M__WIN_RATE": "1.01"}, "timeframes.5m.win_rate"),
        ({"ALPHA12_TIMEFRAMES__4H__COOLDOWN_HOURS": "-3"}, "timeframes.4h.cooldown_hours"),
        ({"ALPHA12_TIMEFRAMES__2H__WIN_RATE": "0.5"}, "timeframes.2h"),
        ({"ALPHA12_NO_SUCH_SETTING": "1"}, "no_such_setting"),
        ({"ALPHA12_REPLAY_SPEED": "fast"}, "replay_speed"),
        ({"ALPHA12_TIMEFRAMES__1H__MIN_ROWS": "150.5"}, "timeframes.1h.min_rows"),
        ({"ALPHA12_TIMEFRAMES__1D__TRAIN_ROWS": "79"}, "timeframes.1d.train_rows"),  # < min_rows
    ],
)
def test_each_invalid_env_override_is_reported_by_key_path(env, path):
    problems = problems_of(None, {"ALPHA12_CONFIG": "/nonexistent/alpha12.toml", **env})
    assert [p.split(":")[0] for p in problems] == [path]


def test_wrong_type_in_toml_is_one_problem_not_two(tmp_path):
    config = write_toml(tmp_path, "[timeframes.5m]\nmin_trades = true\n")
    assert problems_of(config, {}) == ["timeframes.5m.min_trades: expected int, got True"]


def test_a_timeframe_that_is_not_a_table_is_reported(tmp_path):
    config = write_toml(tmp_path, 'timeframes = { "5m" = 3 }\n')
    assert problems_of(config, {}) == ["timeframes.5m: expected a table, got 3"]
    env = {"ALPHA12_CONFIG": "/nonexistent/alpha12.toml", "ALPHA12_TIMEFRAMES__1H": "0.5"}
    assert problems_of(None, env) == ["timeframes.1h: expected a table, got '0.5'"]


def test_missing_named_config_file_and_bad_toml(tmp_path):
    assert "file not found" in problems_of(tmp_path / "nope.toml", {})[0]
    broken = write_toml(tmp_path, "seed = = 3\n")
    assert "not valid TOML" in problems_of(broken, {})[0]


def test_the_training_window_is_a_timeframe_setting(tmp_path):
    config = write_toml(tmp_path, "[timeframes.1h]\ntrain_rows = 5000\n")
    settings = load_settings(config, env={})
    assert settings.timeframe("1h").train_rows == 5000
    assert settings.timeframe("5m").train_rows == SEED_TIMEFRAMES["5m"].train_rows
    assert all(tf.train_rows >= tf.min_rows for tf in SEED_TIMEFRAMES.values())


def test_with_timeframe_validates_the_change():
    settings = Settings()
    assert settings.with_timeframe("4h", win_rate=0.6).timeframe("4h").win_rate == 0.6
    assert settings.timeframe("4h").win_rate == 0.55  # the original is unchanged
    with pytest.raises(SettingsError, match=r"timeframes\.4h\.win_rate"):
        settings.with_timeframe("4h", win_rate=2.0)
