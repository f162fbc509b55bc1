"""Bar files on disk: reading one ASSET_INTERVAL.csv through the gate, and importing files.

A file-level problem (empty, unreadable, wrong delimiter, a missing column) rejects the whole
file and stores nothing; row-level problems reject only those rows, each with a reason.
"""

from __future__ import annotations

import csv
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alpha12.bars import BarsError, Validated, validate
from alpha12.errors import UserError
from alpha12.store import Store
from alpha12.timeframes import INTERVALS

_ASSET = r"[A-Za-z0-9.\-]+"  # letters, digits, dots and dashes: safe in a folder name too
_FILE_NAME = re.compile(rf"^(?P<asset>{_ASSET})_(?P<interval>\w+)\.csv$")
MAX_FILE_BYTES = 200 * 1024 * 1024  # a larger file is refused rather than read into memory
# Uploads in the app; .streamlit/config.toml's server.maxUploadSize says the same to the browser.
MAX_UPLOAD_MB = 50
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024


class CsvFileError(UserError, ValueError):
    """The file as a whole cannot be imported."""


@dataclass
class ImportReport:
    """What one file's import did."""

    path: str
    asset: str | None
    interval: str | None
    rows: int = 0
    imported: int = 0
    already_stored: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def parse_file_name(path: Path) -> tuple[str, str] | None:
    """('BTCUSDT', '1h') for BTCUSDT_1h.csv; None when the name does not follow the pattern."""
    match = _FILE_NAME.match(path.name)
    if not match or match["interval"] not in INTERVALS:
        return None
    return match["asset"], match["interval"]


def scan_folder(folder: Path) -> dict[tuple[str, str], Path]:
    """(asset, interval) -> file for every ASSET_INTERVAL.csv in `folder`."""
    if not folder.is_dir():
        raise CsvFileError(f"{folder}: not a folder")
    found = {}
    for path in sorted(folder.glob("*.csv")):
        key = parse_file_name(path)
        if key:
            found[key] = path
    return found


def read_bar_file(
    path: Path, interval: str, now: pd.Timestamp | None = None, calendar=None
) -> Validated:
    """One CSV file through the gate, on the grid of its market's `calendar` (24/7 when
    None); raises CsvFileError for a file-level problem."""
    size = path.stat().st_size
    if size == 0:
        raise CsvFileError(f"{path.name}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise CsvFileError(f"{path.name}: {size:,} bytes is over the {MAX_FILE_BYTES:,} limit")
    try:
        with warnings.catch_warnings():
            # A row with more cells than the header has names is a malformed file: without
            # index_col=False pandas would shift every column under a guessed index, and with
            # it pandas drops the surplus cells with only this warning.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(  # a literal NaN is a missing value, not a non-numeric one
                path,
                dtype=str,
                keep_default_na=False,
                na_values=["", "NaN", "nan"],
                skipinitialspace=True,
                index_col=False,
            )
    except pd.errors.ParserWarning:
        raise CsvFileError(
            f"{path.name}: a row has more cells than the header has column names"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CsvFileError(f"{path.name}: cannot be read as CSV ({error})") from None
    if frame.empty:
        raise CsvFileError(f"{path.name}: the file has a header but no rows")
    try:
        return validate(frame, interval, now, calendar)
    except BarsError as error:
        raise CsvFileError(f"{path.name}: {error}{_delimiter_hint(path)}") from None


def _delimiter_hint(path: Path) -> str:
    with path.open(newline="", errors="replace") as handle:
        sample = handle.read(4096)
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ""
    return (
        ""
        if delimiter == ","
        else f"; the file seems to use {delimiter!r} as delimiter, alpha12 expects commas"
    )


def import_csv(
    store: Store,
    path: Path,
    now: pd.Timestamp,
    asset: str | None = None,
    interval: str | None = None,
    progress=None,
    calendar_of=None,
) -> list[ImportReport]:
    """Import a file or every ASSET_INTERVAL.csv of a folder; one report per file.
    `progress(fraction, message)` before each file, for a progress bar over a folder;
    `calendar_of(asset)` the asset's market calendar (Settings.calendar; 24/7 when None)."""
    report = progress or (lambda fraction, message: None)
    if not path.is_dir():
        report(0.0, path.name)
        return [import_file(store, path, now, asset, interval, calendar_of)]
    files = scan_folder(path)
    reports = []
    for n, ((a, i), file) in enumerate(files.items()):
        report(n / len(files), file.name)
        reports.append(import_file(store, file, now, a, i, calendar_of))
    return reports


def import_logged(
    store: Store,
    path: Path,
    now: pd.Timestamp,
    at: pd.Timestamp,
    asset: str | None = None,
    interval: str | None = None,
    progress=None,
    calendar_of=None,
) -> list[ImportReport]:
    """import_csv, each file's outcome also an event stamped `at` (the context's clock)."""
    reports = import_csv(store, path, now, asset, interval, progress, calendar_of)
    for report in reports:
        level = "error" if report.error else "info"
        message = report.error or (
            f"imported {report.imported} bars from {Path(report.path).name} "
            f"({report.rejected_total} rejected, {report.duplicates} duplicates)"
        )
        store.log_event(at, level, "csv-import", message, report.asset, report.interval)
    return reports


def import_upload(
    store: Store,
    name: str,
    data: bytes,
    now: pd.Timestamp,
    at: pd.Timestamp,
    asset: str | None = None,
    interval: str | None = None,
    calendar_of=None,
) -> list[ImportReport]:
    """A CSV uploaded in the app, imported as `import_logged` imports a file (its name, or
    `asset` and `interval`, tell the pair). Over MAX_UPLOAD_BYTES it is refused before the
    store is touched."""
    if len(data) > MAX_UPLOAD_BYTES:
        error = (
            f"{name}: {len(data):,} bytes is over the upload limit of {MAX_UPLOAD_MB} MB; "
            "import larger files with `python -m alpha12 import-csv`"
        )
        return [ImportReport(name, asset, interval, error=error)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / upload_file_name(name)  # the user's name never picks a path
        path.write_bytes(data)
        reports = import_logged(store, path, now, at, asset, interval, None, calendar_of)
    for report in reports:
        report.path = name
    return reports


def upload_file_name(name: str) -> str:
    """An uploaded file's name, reduced to a plain file name (BTC_1h.csv stays as it is)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".")
    return safe or "upload.csv"


def import_file(
    store: Store,
    path: Path,
    now: pd.Timestamp,
    asset: str | None = None,
    interval: str | None = None,
    calendar_of=None,
) -> ImportReport:
    named = parse_file_name(path) or (None, None)
    asset, interval = asset or named[0], interval or named[1]
    report = ImportReport(str(path), asset, interval)
    if asset is None or interval not in INTERVALS:
        report.error = (
            f"{path.name}: cannot tell asset and timeframe; name it ASSET_INTERVAL"
            f".csv (interval one of {', '.join(INTERVALS)}) or pass --asset and "
            "--interval"
        )
        return report
    if not re.fullmatch(_ASSET, asset):
        report.error = f"{asset!r}: an asset name has only letters, digits, dots and dashes"
        return report
    try:
        calendar = calendar_of(asset) if calendar_of else None
        checked = read_bar_file(path, interval, now, calendar)
    except (CsvFileError, OSError) as error:
        report.error = str(error)
        return report
    report.rows = len(checked.bars) + len(checked.rejected) + checked.duplicates
    report.duplicates = checked.duplicates
    report.rejected = {k: v for k, v in checked.reason_counts().items() if "duplicate" not in k}
    report.imported = store.upsert_bars(asset, interval, checked.bars)
    report.already_stored = len(checked.bars) - report.imported
    store.record_rejections(asset, interval, f"csv:{path.name}", checked.reason_counts(), now)
    return report
