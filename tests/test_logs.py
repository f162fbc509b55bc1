"""Logging: one handler set however often configured, plain or JSON lines with the pair, a
rotating file, secrets masked everywhere (message, traceback, caplog), events as records, and
the log settings validated like every other setting."""

from __future__ import annotations

import json
import logging
import logging.handlers

import pytest

from alpha12 import logs
from alpha12.config import SettingsError, load_settings

PASSWORD = "pw-7f3a91c2-admin"
TOKEN = "123456789:AAHsecretBotToken"


@pytest.fixture(autouse=True)
def clean_logger(monkeypatch):
    """Each test configures from scratch and leaves the global logger as it found it."""
    monkeypatch.setattr(logs, "_secrets", set())
    yield
    logger = logging.getLogger(logs.ROOT)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)


def ours(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, logs._MARK, False)]


def test_configure_twice_adds_no_duplicate_handler(tmp_path, capsys):
    logs.configure("INFO", file=tmp_path / "a.log")
    logger = logs.configure("INFO", file=tmp_path / "a.log")
    assert len(ours(logger)) == 2
    logging.getLogger("alpha12.engine").info("once")
    assert capsys.readouterr().err.count("once") == 1
    assert (tmp_path / "a.log").read_text().count("once") == 1


def test_human_lines_name_time_level_logger_and_pair(capsys):
    logs.configure("DEBUG")
    logging.getLogger("alpha12.collector").warning(
        "source slow: %s s", 12, extra={"asset": "BTC", "interval": "1h"}
    )
    logging.getLogger("alpha12.engine").debug("tick")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith(" WARNING alpha12.collector [BTC 1h] source slow: 12 s")
    assert lines[0][:4].isdigit() and lines[1].endswith(" DEBUG alpha12.engine tick")


def test_level_filters_records(capsys):
    logs.configure("warning")
    logging.getLogger("alpha12.engine").info("hidden")
    logging.getLogger("alpha12.engine").error("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err and "shown" in err


def test_json_lines_are_one_object_each(tmp_path, capsys):
    logs.configure("INFO", file=tmp_path / "a.jsonl", json_lines=True)
    logs.log_event("warning", "collector", "gap of 3 bars", asset="ETH", interval="5m")
    logs.log_event("info", "engine", "started")
    lines = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [line["message"] for line in lines] == ["gap of 3 bars", "started"]
    first = lines[0]
    assert set(first) == {"ts", "level", "logger", "message", "asset", "interval"}
    assert (first["level"], first["logger"]) == ("WARNING", "alpha12.collector")
    assert (first["asset"], first["interval"], lines[1]["asset"]) == ("ETH", "5m", None)
    assert first["ts"].endswith("+00:00")
    assert capsys.readouterr().err.count("\n") == 2


def test_file_is_rotated(tmp_path):
    logger = logs.configure("INFO", file=tmp_path / "logs" / "alpha12.log")
    (rotating,) = [h for h in ours(logger) if isinstance(h, logging.handlers.BaseRotatingHandler)]
    assert (rotating.maxBytes, rotating.backupCount) == (logs.FILE_MAX_BYTES, logs.FILE_BACKUPS)
    rotating.maxBytes = 200  # rotate after a few lines instead of 10 MB
    for n in range(20):
        logging.getLogger("alpha12.engine").info("line %d of the rotation test", n)
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files[:2] == ["alpha12.log", "alpha12.log.1"]
    assert len(files) == 1 + logs.FILE_BACKUPS


def test_unknown_level_is_refused_in_plain_words():
    with pytest.raises(ValueError, match="not one of DEBUG, INFO"):
        logs.configure("LOUD")
    with pytest.raises(ValueError, match="not one of info, warning, error"):
        logs.log_event("fatal", "engine", "x")


def test_log_event_maps_the_events_levels(caplog):
    caplog.set_level(logging.INFO, logger="alpha12")
    for level in ("info", "warning", "error"):
        logs.log_event(level, "registry", f"a {level}", asset="SOL", interval="1d")
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.WARNING, logging.ERROR]
    assert {(r.name, r.asset, r.interval) for r in caplog.records} == {
        ("alpha12.registry", "SOL", "1d")
    }


def test_admin_password_never_reaches_a_log(monkeypatch, tmp_path, capsys, caplog):
    monkeypatch.setenv(logs.ADMIN_PASSWORD_VARIABLE, PASSWORD)
    caplog.set_level(logging.DEBUG)
    logs.configure("DEBUG", file=tmp_path / "a.log")
    logs.configure("DEBUG", file=tmp_path / "b.jsonl", json_lines=True)
    logger = logging.getLogger("alpha12.ui")
    logger.warning("login with %s failed", PASSWORD)
    try:
        raise RuntimeError(f"wrong password {PASSWORD}")
    except RuntimeError:
        logger.exception("settings save failed")
    text = capsys.readouterr().err + caplog.text
    text += (tmp_path / "a.log").read_text() + (tmp_path / "b.jsonl").read_text()
    assert "login with *** failed" in text and "wrong password ***" in text
    assert PASSWORD not in text


def test_alert_url_tokens_are_masked(capsys):
    logs.configure("INFO")
    logs.add_url_secrets(f"tgram://{TOKEN}/-100200300")
    logs.add_url_secrets("json://bob:hunter22@10.0.0.5:8080/hooks/abc123secret?key=k3y-v4lue")
    logger = logging.getLogger("alpha12.alerts")
    logger.info("sending to tgram://%s/-100200300", TOKEN)
    logger.info("sending to json://bob:hunter22@10.0.0.5:8080/hooks/abc123secret?key=k3y-v4lue")
    logger.info("telegram said: unauthorized token %s", TOKEN)  # a token without its URL
    logger.info("server says %s, %s, %s", "hunter22", "abc123secret", "k3y-v4lue")
    err = capsys.readouterr().err
    for secret in (TOKEN, "hunter22", "abc123secret", "k3y-v4lue", "bob:"):
        assert secret not in err
    assert "tgram://***" in err and "json://10.0.0.5:8080/***" in err


def test_mask_url_keeps_only_what_is_safe():
    assert logs.mask_url("json://127.0.0.1:9000/") == "json://127.0.0.1:9000/"
    assert logs.mask_url("json://127.0.0.1:9000/hook/abc") == "json://127.0.0.1:9000/***"
    assert logs.mask_url("https://example.org") == "https://example.org"
    assert logs.mask_url("https://u:p@example.org") == "https://example.org/***"
    assert logs.mask_url("slack://TokenA/TokenB/TokenC") == "slack://***"


def test_log_settings_are_validated_with_their_key(tmp_path):
    config = tmp_path / "alpha12.toml"
    config.write_text('log_level = "LOUD"\nlog_json = "maybe"\n')
    with pytest.raises(SettingsError) as raised:
        load_settings(config, env={})
    assert set(raised.value.problems) == {
        "log_json: expected bool, got 'maybe'",
        "log_level: 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    }
    env = {"ALPHA12_LOG_LEVEL": "debug", "ALPHA12_LOG_FILE": str(tmp_path / "x.log")}
    settings = load_settings(_empty(tmp_path), env={**env, "ALPHA12_LOG_JSON": "yes"})
    assert (settings.log_level, settings.log_file, settings.log_json) == (
        "debug",
        tmp_path / "x.log",
        True,
    )


def _empty(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("")
    return path
