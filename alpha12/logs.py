"""Standard-library logging for the `alpha12` logger tree, with secrets masked.

Modules log through `logging.getLogger(__name__)`; `configure` attaches the handlers once (to
stderr, optionally to a rotating file, as plain lines or JSON lines). Every handler carries a
`Redactor`, so the admin password and the tokens inside alert URLs never reach a log, whatever
a message or a traceback happens to contain.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

ROOT = "alpha12"
LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The events table's levels, as logging levels.
EVENT_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
ADMIN_PASSWORD_VARIABLE = "ALPHA12_ADMIN_PASSWORD"
MASK = "***"
FILE_MAX_BYTES = 10 * 1024 * 1024  # a file this size is rotated: a month of a busy engine
FILE_BACKUPS = 5
MIN_SECRET_LENGTH = 6  # shorter path parts ("hook", "v1") are words, not secrets
# Schemes whose host is an address worth keeping (the credentials and path still go); for
# every other scheme (apprise's tgram://, slack://, ...) the host itself is often a token.
_ADDRESS_SCHEMES = frozenset({"http", "https", "json", "jsons", "xml", "xmls", "form", "forms"})
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://([^\s'\"<>]+)")
_MARK = "_alpha12_handler"  # set on the handlers configure() owns, so a second call replaces them
# extra={SHOWN: True}: a front end has already printed this record's message on stderr, so the
# stderr handler skips it (one line for the user) while a log file still gets it.
SHOWN = "shown_on_stderr"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def add_secret(value: str) -> None:
    """Mask `value` in every log record from now on (e.g. a token found in an alert URL)."""
    if value:
        with _secrets_lock:
            _secrets.add(value)


def add_url_secrets(url: str) -> None:
    """Mask, from now on, the parts of `url` that `mask_url` hides, wherever they appear (an
    error message may quote a token without its URL)."""
    parts = urlsplit(url.strip())
    values = [value for _, value in parse_qsl(parts.query)]
    secrets = [parts.username or "", parts.password or "", *parts.path.split("/"), *values]
    if parts.scheme.lower() not in _ADDRESS_SCHEMES:
        secrets.append(parts.netloc)  # tgram://BOT_TOKEN/...: the "host" is the token
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            add_secret(secret)


def mask_url(url: str) -> str:
    """`url` safe to show: no credentials, path or query; the host only for web-style schemes.

    'json://user:pw@10.0.0.5:8080/hook?token=x' -> 'json://10.0.0.5:8080/***';
    'tgram://123:ABC/456' -> 'tgram://***'."""
    match = _URL.fullmatch(url.strip())
    return _URL.sub(_masked, url) if match is None else _masked(match)


def _masked(match: re.Match) -> str:
    scheme, rest = match.group(1), match.group(2)
    if scheme.lower() not in _ADDRESS_SCHEMES:
        return f"{scheme}://{MASK}"
    host, _, tail = rest.partition("/")
    host = host.split("?")[0].rpartition("@")[2]
    return f"{scheme}://{host}/{MASK}" if (tail or "@" in rest or "?" in rest) else match.group(0)


def redact(text: str) -> str:
    """`text` with the admin password, registered secrets and URL credentials masked."""
    with _secrets_lock:
        secrets = set(_secrets)
    password = os.environ.get(ADMIN_PASSWORD_VARIABLE)
    if password:
        secrets.add(password)
    for secret in sorted(secrets, key=len, reverse=True):  # a longer secret before its parts
        text = text.replace(secret, MASK)
    return _URL.sub(_masked, text)


class Redactor(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it.

    The record is changed in place, so handlers further up (the root's, pytest's caplog) only
    ever see the masked text too."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class HumanFormatter(logging.Formatter):
    """'2025-01-11 10:00:00 WARNING alpha12.engine [BTC 1h] message' (times in UTC)."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s%(pair)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        asset, interval = _pair(record)
        pair = " ".join(p for p in (asset, interval) if p)
        record.pair = f" [{pair}]" if pair else ""
        return super().format(record)

    def formatTime(self, record, datefmt=None) -> str:
        return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: ts, level, logger, message, asset, interval
    (and exception, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        asset, interval = _pair(record)
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "asset": asset,
            "interval": interval,
        }
        if record.exc_info or record.exc_text:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _pair(record: logging.LogRecord) -> tuple[str | None, str | None]:
    return getattr(record, "asset", None), getattr(record, "interval", None)


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (a test's capture, a redirect), not
    to the stream of the day it was configured, which may be closed by then."""

    def __init__(self):
        super().__init__()
        self.addFilter(lambda record: not getattr(record, SHOWN, False))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; sys.stderr is used
        pass


def configure(
    level: str = "INFO", file: str | Path | None = None, json_lines: bool = False
) -> logging.Logger:
    """Send the `alpha12` tree to stderr (and `file`, rotated); safe to call again: the
    handlers of an earlier call are replaced, never doubled."""
    name = level.upper()
    if name not in LEVEL_NAMES:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVEL_NAMES)}")
    logger = reset()
    handlers: list[logging.Handler] = [_Stderr()]
    if file is not None:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                file, maxBytes=FILE_MAX_BYTES, backupCount=FILE_BACKUPS, encoding="utf-8"
            )
        )
    for handler in handlers:
        setattr(handler, _MARK, True)
        handler.addFilter(Redactor())
        handler.setFormatter(JsonFormatter() if json_lines else HumanFormatter())
        logger.addHandler(handler)
    logger.setLevel(name)
    return logger


def configure_from(
    settings, level: str | None = None, file: str | Path | None = None, json_lines: bool = False
) -> logging.Logger:
    """`configure` with the settings' log_level, log_file and log_json, each overridden by a
    given value (the CLI's --log-level, --log-file and --log-json)."""
    return configure(
        level or settings.log_level, file or settings.log_file, json_lines or settings.log_json
    )


def reset() -> logging.Logger:
    """Remove (and close) the handlers `configure` attached; the `alpha12` logger."""
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)
    return logger


def log_event(
    level: str,
    component: str,
    message: str,
    asset: str | None = None,
    interval: str | None = None,
) -> None:
    """The log record of one events-table row (level info/warning/error), on the logger
    `alpha12.<component>`, so the table and the log tell the same story."""
    if level not in EVENT_LEVELS:
        raise ValueError(f"event level {level!r} is not one of {', '.join(EVENT_LEVELS)}")
    logging.getLogger(f"{ROOT}.{component}").log(
        EVENT_LEVELS[level], message, extra={"asset": asset, "interval": interval}
    )
