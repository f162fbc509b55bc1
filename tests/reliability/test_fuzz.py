"""Fuzzing the gate: `bars.validate` and the CSV import get thousands of generated malformed
inputs (misnamed, missing and extra columns, text in numbers, NaN/inf/zero/negative/huge prices,
high below low, duplicated, shuffled and off-grid timestamps, mixed formats and time zones,
future bars, other delimiters, BOMs, blank lines, ragged rows, empty files, binary garbage).

Properties: no unhandled exception (only BarsError for a frame, a report with an error for a
file); every valid row lands exactly, and every other row is counted as rejected or duplicate;
a rejected file stores nothing (the database is unchanged)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alpha12.bars import NUMERIC_COLUMNS, PRICE_COLUMNS, BarsError, validate
from alpha12.sources.csv_files import import_csv
from alpha12.store import Store
from alpha12.timeframes import INTERVALS, interval_delta

EXAMPLES = 1000  # per structured property; see CHAOS for the unstructured ones
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays stable
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
    report_multiple_bugs=False,
)
CHAOS = settings(FUZZ, max_examples=300)  # unstructured extras on top of the 1000 each
BASE = pd.Timestamp("2025-01-01", tz="UTC")
NOW = pd.Timestamp("2026-01-01", tz="UTC")  # bars at or after it are "in the future"
SLOTS = 24  # valid rows sit on BASE + k * interval, k < SLOTS: duplicates come naturally

# --- rows ----------------------------------------------------------------------------------

OFFSETS = ["+00:00", "+02:00", "-05:00", "+05:30", "+09:45"]
TEXT_STYLES = ["iso_z", "iso_offset", "naive", "iso_ms"]
STYLES = [*TEXT_STYLES, "mixed_text", "epoch_s", "epoch_ms"]


def render_time(ts: pd.Timestamp, style: str, pick: int) -> str:
    """`ts` written the way `style` writes it (`pick` chooses the offset / the mixed style)."""
    if style == "mixed_text":
        style = TEXT_STYLES[pick % len(TEXT_STYLES)]
    if style == "iso_z":
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == "iso_ms":
        return ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if style == "naive":  # no zone: read as UTC
        return ts.strftime("%Y-%m-%d %H:%M:%S")
    if style == "iso_offset":
        offset = OFFSETS[pick % len(OFFSETS)]
        return ts.tz_convert(pd.Timestamp("2025-01-01T00:00" + offset).tz).isoformat()
    seconds = ts.value // 10**9
    return str(seconds) if style == "epoch_s" else str(ts.value // 10**6)


def render_number(value: float, pick: int) -> str:
    text = repr(float(value))
    return [text, f" {text}", text.upper()][pick % 3]  # spaces, 1E+300


prices = st.floats(min_value=1e-6, max_value=1e300, allow_nan=False, allow_infinity=False)
fraction = st.floats(min_value=0.0, max_value=0.5)
volumes = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=1e300))
NON_NUMERIC = st.text(alphabet="bcdghjklmopqrsuvwz#?@%&/", min_size=1, max_size=6)
BAD_TIMES = st.sampled_from(["not a time", "2025-13-45 99:99", "yesterday", "", "NaT", "--"])


@st.composite
def valid_row(draw) -> dict:
    """A good bar: on the grid, positive finite prices with low <= open, close <= high."""
    o, c = draw(prices), draw(prices)
    return {
        "kind": "valid",
        "slot": draw(st.integers(0, SLOTS - 1)),
        "open": o,
        "close": c,
        "high": max(o, c) * (1 + draw(fraction)),
        "low": min(o, c) * (1 - draw(fraction)),
        "volume": draw(volumes),
    }


BREAKS = [
    "bad_time",
    "off_grid",
    "future",
    "missing",
    "non_numeric",
    "infinite",
    "non_positive",
    "high_below",
    "low_above",
    "negative_volume",
]


@st.composite
def invalid_row(draw) -> dict:
    """A valid row broken in one way that must get it rejected."""
    row = draw(valid_row())
    kind = draw(st.sampled_from(BREAKS))
    row["kind"] = kind
    column = draw(st.sampled_from(NUMERIC_COLUMNS))
    price = draw(st.sampled_from(PRICE_COLUMNS))
    if kind == "bad_time":
        row["time_text"] = draw(BAD_TIMES)
    elif kind == "off_grid":
        row["off_seconds"] = draw(st.integers(1, 299))  # under 5 minutes: off every grid
    elif kind == "missing":
        row[column] = draw(st.sampled_from(["", "NaN", "nan"]))
    elif kind == "non_numeric":
        row[column] = draw(NON_NUMERIC)
    elif kind == "infinite":
        row[column] = draw(st.sampled_from(["inf", "-inf", "1e999", "-1e999"]))
    elif kind == "non_positive":
        row[price] = draw(st.sampled_from(["0", "-0.0", "-1", "-1e300"]))
    elif kind == "high_below":  # and high may even fall below low
        row["high"] = max(row["open"], row["close"]) * (1 - draw(st.floats(1e-6, 0.9)))
    elif kind == "low_above":
        row["low"] = min(row["open"], row["close"]) * (1 + draw(st.floats(1e-6, 10)))
    elif kind == "negative_volume":
        row["volume"] = -draw(st.floats(min_value=1e-9, max_value=1e300))
    return row


@st.composite
def row_sets(draw) -> dict:
    """Rows (valid, broken, duplicated, shuffled), an interval and a timestamp style."""
    return {
        "interval": draw(st.sampled_from(INTERVALS)),
        "style": draw(st.sampled_from(STYLES)),
        "rows": draw(st.lists(st.one_of(valid_row(), invalid_row()), max_size=16)),
        "picks": draw(st.lists(st.integers(0, 1000), min_size=4, max_size=4)),
    }


def row_time(row: dict, interval: str) -> pd.Timestamp:
    ts = BASE + row["slot"] * interval_delta(interval)
    if row["kind"] == "future":
        ts = NOW + row["slot"] * interval_delta(interval)
    if row["kind"] == "off_grid":
        ts += pd.Timedelta(seconds=row["off_seconds"])
    return ts


def cells(case: dict) -> list[list[str]]:
    """Each row as the six text cells a CSV holds: time, open, high, low, close, volume."""
    table = []
    for n, row in enumerate(case["rows"]):
        pick = case["picks"][n % len(case["picks"])]
        if "time_text" in row:
            time = row["time_text"]
        else:
            time = render_time(row_time(row, case["interval"]), case["style"], pick)
        numbers = [
            row[c] if isinstance(row[c], str) else render_number(row[c], pick + i)
            for i, c in enumerate(NUMERIC_COLUMNS)
        ]
        table.append([time, *numbers])
    return table


def expected_bars(case: dict) -> pd.DataFrame:
    """The bars the valid rows hold, worked out without alpha12: the last copy of a timestamp
    kept, oldest first."""
    valid = [r for r in case["rows"] if r["kind"] == "valid"]
    frame = pd.DataFrame(
        {
            "ts": pd.Series(
                [row_time(r, case["interval"]) for r in valid], dtype="datetime64[us, UTC]"
            ),
            **{
                c: pd.Series([float(r[c]) for r in valid], dtype="float64") for c in NUMERIC_COLUMNS
            },
        }
    )
    frame = frame.drop_duplicates("ts", keep="last").sort_values("ts", kind="stable")
    return frame.reset_index(drop=True)


def counts(case: dict) -> tuple[int, int, int]:
    """(valid unique bars, duplicates, rejected rows) the rows must give."""
    valid = sum(r["kind"] == "valid" for r in case["rows"])
    unique = len(expected_bars(case))
    return unique, valid - unique, len(case["rows"]) - valid


# --- columns -------------------------------------------------------------------------------

TIME_NAMES = ["ts", "timestamp", "Time", " Date ", "DATETIME", "open_time"]
EXTRA_NAMES = ["note", "trades", "quote_volume", "Unnamed: 7", "symbol"]
MISNAMED = {"open": "opn", "high": "hi", "low": "lo", "close": "closing", "volume": "vol"}


@st.composite
def headers(draw) -> dict:
    """Column names: case and spaces varied, maybe extra columns, maybe one missing or
    misnamed (then the whole frame or file must be refused)."""
    names = [draw(st.sampled_from(TIME_NAMES))]
    for column in NUMERIC_COLUMNS:
        names.append(draw(st.sampled_from([column, column.upper(), f" {column.title()}"])))
    broken = draw(st.sampled_from([None, None, None, "missing", "misnamed"]))
    position = draw(st.integers(0, 5))
    if broken == "misnamed":
        names[position] = MISNAMED.get(names[position].strip().lower(), "when")
    # (name, index of the row's cell, or None for an extra column of filler)
    columns = [
        (name, i) for i, name in enumerate(names) if not (broken == "missing" and i == position)
    ]
    columns += [
        (name, None)
        for name in draw(st.lists(st.sampled_from(EXTRA_NAMES), unique=True, max_size=2))
    ]
    return {"columns": draw(st.permutations(columns)), "complete": broken is None}


def table_of(case: dict, header: dict) -> tuple[list[str], list[list[str]]]:
    """Header names and the rows' text cells, in the header's column order."""
    names = [name for name, _ in header["columns"]]
    rows = [[("x" if i is None else row[i]) for _, i in header["columns"]] for row in cells(case)]
    return names, rows


# --- bars.validate -------------------------------------------------------------------------


@pytest.mark.slow
@FUZZ
@given(case=row_sets(), header=headers())
def test_validate_keeps_every_valid_row_and_counts_every_other(case, header):
    names, rows = table_of(case, header)
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    if not header["complete"]:
        with pytest.raises(BarsError, match="missing column"):
            validate(frame, case["interval"], NOW)
        return
    checked = validate(frame, case["interval"], NOW)
    pd.testing.assert_frame_equal(checked.bars, expected_bars(case), check_exact=True)
    unique, duplicates, rejected = counts(case)
    assert (len(checked.bars), checked.duplicates, len(checked.rejected)) == (
        unique,
        duplicates,
        rejected,
    )
    rejected_kinds = {r["kind"] for r in case["rows"]} - {"valid"}
    assert len(set(checked.rejected["reason"])) <= len(rejected_kinds) + 1


CHAOS_NAMES = [*TIME_NAMES, *NUMERIC_COLUMNS, "Open", " close", *EXTRA_NAMES, "", "0"]
CHAOS_CELLS = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.floats(),  # NaN, inf, -0.0, subnormals, huge
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.sampled_from(["1735689600", "1735689600000", "2025-01-01", "1e308", "1e309", "-0"]),
)


@st.composite
def chaos_frames(draw) -> pd.DataFrame:
    names = draw(st.lists(st.sampled_from(CHAOS_NAMES), unique=True, max_size=9))
    n = draw(st.integers(0, 12))
    return pd.DataFrame(
        {name: draw(st.lists(CHAOS_CELLS, min_size=n, max_size=n)) for name in names},
        dtype=object,
    )


def assert_clean(bars: pd.DataFrame, interval: str) -> None:
    """What every bar leaving the gate satisfies."""
    assert list(bars.columns) == ["ts", *NUMERIC_COLUMNS]
    assert str(bars["ts"].dtype) == "datetime64[us, UTC]"
    assert bars["ts"].is_monotonic_increasing and bars["ts"].is_unique
    assert (bars["ts"].dt.floor(interval_delta(interval)) == bars["ts"]).all() or interval == "1d"
    values = bars[list(NUMERIC_COLUMNS)].to_numpy(dtype="float64")
    assert np.isfinite(values).all()
    assert (bars[list(PRICE_COLUMNS)] > 0).all().all() and (bars["volume"] >= 0).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()


@CHAOS
@given(frame=chaos_frames(), interval=st.sampled_from(INTERVALS))
def test_validate_of_arbitrary_frames_raises_only_barserror(frame, interval):
    try:
        checked = validate(frame, interval, NOW)
    except BarsError:
        return
    assert len(checked.bars) + checked.duplicates + len(checked.rejected) == len(frame)
    assert_clean(checked.bars, interval)


# --- CSV import ------------------------------------------------------------------------------

DELIMITERS = [",", ",", ",", ";", "\t", "|"]


@st.composite
def csv_files(draw) -> dict:
    """A CSV file's bytes and what importing it must do (refuse it, or store `expected`)."""
    case, header = draw(row_sets()), draw(headers())
    names, rows = table_of(case, header)
    delimiter = draw(st.sampled_from(DELIMITERS))
    ragged = draw(st.sampled_from([None, None, None, "long", "short"]))
    if rows and ragged:
        n = draw(st.integers(0, len(rows) - 1))
        if ragged == "long":  # more cells than the header has names: the file is malformed
            rows[n] = [*rows[n], "surplus"]
        else:  # the missing cells are missing values: the row is rejected
            rows[n] = rows[n][:2]
            case = {**case, "rows": list(case["rows"])}
            case["rows"][n] = {**case["rows"][n], "kind": "short"}
    lines = [delimiter.join(names), *(delimiter.join(row) for row in rows)]
    blank = draw(st.lists(st.integers(1, len(lines)), max_size=3))
    for at in sorted(blank, reverse=True):  # blank lines are skipped
        lines.insert(at, "")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    bom = draw(st.booleans())
    refused = not header["complete"] or delimiter != "," or not rows or (ragged == "long" and rows)
    return {
        "bytes": ("\ufeff" if bom else "").encode() + text.encode(),
        "case": case,
        "interval": case["interval"],
        "refused": refused,
    }


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    """One store for every example (a new asset each): a store per example is too slow."""
    opened = Store(tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("csv")


ASSET_NUMBERS = itertools.count()


def snapshot(store: Store) -> tuple[int, int]:
    """(stored bars, recorded rejections): every example writes under a new asset, so a file
    that stored anything would change these."""
    sql = "SELECT (SELECT count(*) FROM bars), (SELECT count(*) FROM rejections)"
    return tuple(store.rows(sql)[0])


def import_bytes(store: Store, folder: Path, content: bytes, interval: str):
    asset = f"FZ{next(ASSET_NUMBERS)}"
    path = folder / f"{asset}_{interval}.csv"
    path.write_bytes(content)
    before = snapshot(store)
    [report] = import_csv(store, path, NOW)  # never raises: a problem is the report's error
    path.unlink()
    return asset, report, before, snapshot(store)


@pytest.mark.slow
@FUZZ
@given(file=csv_files())
def test_csv_import_stores_every_valid_row_or_nothing(fuzz_store, files, file):
    asset, report, before, after = import_bytes(fuzz_store, files, file["bytes"], file["interval"])
    stored = fuzz_store.read_bars(asset, file["interval"])
    if file["refused"]:
        assert report.error and report.imported == 0, report
        assert after == before and stored.empty  # nothing half-written
        return
    assert report.error is None, report.error
    expected = expected_bars(file["case"])
    pd.testing.assert_frame_equal(stored, expected, check_exact=True)
    unique, duplicates, rejected = counts(file["case"])
    assert (report.imported, report.duplicates, report.rejected_total) == (
        unique,
        duplicates,
        rejected,
    )
    assert after[0] == before[0] + unique


@st.composite
def damaged_files(draw) -> dict:
    """Binary garbage, or a good file with bytes flipped, cut short, or cut to nothing."""
    if draw(st.booleans()):
        return {"bytes": draw(st.binary(max_size=400)), "interval": "5m"}
    file = draw(csv_files())
    content = bytearray(file["bytes"])
    for _ in range(draw(st.integers(0, 5))):
        if content:
            content[draw(st.integers(0, len(content) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(content)))
    return {
        "bytes": bytes(content[: cut if draw(st.booleans()) else None]),
        "interval": file["interval"],
    }


@CHAOS
@given(file=damaged_files())
def test_csv_import_of_damaged_files_never_crashes_or_half_imports(fuzz_store, files, file):
    asset, report, before, after = import_bytes(fuzz_store, files, file["bytes"], file["interval"])
    stored = fuzz_store.read_bars(asset, file["interval"])
    if report.error:
        assert after == before and stored.empty
        return
    assert report.rows == (
        report.imported + report.already_stored + report.duplicates + report.rejected_total
    )
    assert len(stored) == report.imported and after[0] == before[0] + report.imported
    assert_clean(stored, file["interval"])
