"""CSV import: the real files land row for row; broken copies reject rows or the whole file."""

import json
from pathlib import Path

import pandas as pd
import pytest

from alpha12 import cli
from alpha12.services import Alpha12
from alpha12.store import Store
from alpha12.timeframes import INTERVALS

ROWS = 120  # rows of the real 1h file used for the broken copies


def data_rows(path: Path) -> int:
    with path.open() as handle:
        return sum(1 for _ in handle) - 1  # minus the header


@pytest.fixture
def lines(btc_dir) -> list[str]:
    """Header plus the first ROWS rows of the real 1h file, as text lines."""
    with (btc_dir / "BTCUSDT_1h.csv").open() as handle:
        return [next(handle).rstrip("\n") for _ in range(ROWS + 1)]


def run_import(db: Path, path: Path, capsys) -> tuple[int, str]:
    code = cli.main(["--db", str(db), "import-csv", str(path)])
    return code, capsys.readouterr().out


def stored(db: Path, interval: str = "1h") -> pd.DataFrame:
    store = Store(db)
    try:
        return store.read_bars("BTCUSDT", interval)
    finally:
        store.close()


def expected_bars(valid_lines: list[str]) -> pd.DataFrame:
    """The bars the valid lines hold, parsed independently of alpha12."""
    rows = [line.split(",") for line in valid_lines]
    frame = pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype("datetime64[us, UTC]")
    for column in ("open", "high", "low", "close", "volume"):
        frame[column] = frame[column].astype(float)
    return frame.sort_values("ts").drop_duplicates("ts", keep="last").reset_index(drop=True)


def write(tmp_path: Path, lines: list[str], name: str = "BTCUSDT_1h.csv") -> Path:
    folder = tmp_path / "csv"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def replace_field(line: str, column: int, value: str) -> str:
    fields = line.split(",")
    fields[column] = value
    return ",".join(fields)


# (row to break, column index, new value, the reason it is rejected for)
ROW_BREAKS = {
    "nan": (5, 4, "", "missing value"),
    "nan-literal": (6, 3, "NaN", "missing value"),
    "negative-price": (7, 1, "-60414.39", "non-positive price"),
    "high-below-low": (8, 2, "1000", "high below open/close"),
    "text-in-number": (9, 5, "lots", "non-numeric value"),
}


@pytest.mark.parametrize("case", list(ROW_BREAKS))
def test_a_broken_row_is_rejected_and_the_rest_stored(case, lines, tmp_path, isolated_env, capsys):
    row, column, value, reason = ROW_BREAKS[case]
    broken = list(lines)
    broken[row] = replace_field(broken[row], column, value)
    db = tmp_path / "db.duckdb"
    code, out = run_import(db, write(tmp_path, broken), capsys)
    assert code == 0, out
    assert f"{ROWS - 1:,} imported" in out
    assert f"1 rejected: {reason}" in out
    pd.testing.assert_frame_equal(
        stored(db), expected_bars(broken[1:row] + broken[row + 1 :]), check_exact=True
    )
    store = Store(db)
    try:
        rejections = store.query("SELECT reason, count FROM rejections")
    finally:
        store.close()
    assert rejections.to_dict("records") == [{"reason": reason, "count": 1}]


def test_epoch_millisecond_timestamps(lines, tmp_path, isolated_env, capsys):
    def to_epoch_ms(line: str) -> str:
        stamp, rest = line.split(",", 1)
        return f"{pd.Timestamp(stamp).value // 10**6},{rest}"

    epoch_lines = ["open_time,open,high,low,close,volume", *map(to_epoch_ms, lines[1:])]
    db = tmp_path / "db.duckdb"
    code, out = run_import(db, write(tmp_path, epoch_lines), capsys)
    assert code == 0 and f"{ROWS:,} imported" in out, out
    pd.testing.assert_frame_equal(stored(db), expected_bars(lines[1:]), check_exact=True)


def test_duplicated_and_shuffled_rows(lines, tmp_path, isolated_env, capsys):
    body = lines[1:]
    changed_copy = replace_field(body[10], 4, str(float(body[10].split(",")[4]) + 1))
    repeated = [*body, body[3], body[4], changed_copy]  # three repeats; the last copy differs
    shuffled = pd.Series(repeated).sample(frac=1.0, random_state=7).tolist()
    shuffled.remove(changed_copy)
    shuffled.append(changed_copy)  # keep the changed copy last, so it is the one kept
    db = tmp_path / "db.duckdb"
    code, out = run_import(db, write(tmp_path, [lines[0], *shuffled]), capsys)
    assert code == 0, out
    assert f"{ROWS:,} imported" in out and "3 duplicates" in out and "0 rejected" in out
    bars = stored(db)
    assert len(bars) == ROWS
    assert bars["ts"].is_monotonic_increasing
    pd.testing.assert_frame_equal(bars, expected_bars(shuffled), check_exact=True)
    assert bars["close"].iloc[10] == float(changed_copy.split(",")[4])


FILE_BREAKS = {
    "missing-column": (lambda ls: [",".join(line.split(",")[:5]) for line in ls], "volume"),
    "empty-file": (lambda ls: [], "empty"),
    "header-only": (lambda ls: ls[:1], "no rows"),
    "semicolons": (lambda ls: [line.replace(",", ";") for line in ls], "';' as delimiter"),
}


@pytest.mark.parametrize("case", list(FILE_BREAKS))
def test_a_file_level_problem_stores_nothing(case, lines, tmp_path, isolated_env, capsys):
    mangle, message = FILE_BREAKS[case]
    path = write(tmp_path, mangle(lines))
    if case == "empty-file":
        path.write_text("")
    db = tmp_path / "db.duckdb"
    code, out = run_import(db, path, capsys)
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and message in failed[0] and "BTCUSDT_1h.csv" in failed[0], out
    assert stored(db).empty


def test_one_bad_file_does_not_stop_the_folder(lines, tmp_path, isolated_env, capsys):
    write(tmp_path, lines, "BTCUSDT_1h.csv")
    path = write(tmp_path, [line.replace(",", ";") for line in lines], "BTCUSDT_4h.csv")
    db = tmp_path / "db.duckdb"
    code, out = run_import(db, path.parent, capsys)
    assert code == 1
    assert f"BTCUSDT_1h.csv: {ROWS:,} imported" in out
    assert len(stored(db)) == ROWS
    assert stored(db, "4h").empty


def test_real_folder_imports_every_row_and_shows_in_status(
    btc_dir, tmp_path, run_cli, isolated_env, capsys
):
    db = tmp_path / "db.duckdb"
    first = run_cli("--db", db, "import-csv", btc_dir)  # the command as a user runs it
    assert first.returncode == 0, first.stdout + first.stderr
    assert cli.main(["--db", str(db), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    pairs = {(p["asset"], p["interval"]): p for p in status["pairs"]}
    for interval in INTERVALS:
        expected = data_rows(btc_dir / f"BTCUSDT_{interval}.csv")
        pair = pairs[("BTCUSDT", interval)]
        assert pair["bars"] == expected, interval
        assert pair["rejected"] == 0
        assert f"BTCUSDT_{interval}.csv: {expected:,} imported" in first.stdout
    assert pairs[("BTCUSDT", "5m")]["first_bar"] == "2024-12-31T00:00:00+00:00"


def test_daily_file_values_land_exactly(btc_dir, settings):
    app = Alpha12.open(settings=settings)
    try:
        [report] = app.import_csv(btc_dir / "BTCUSDT_1d.csv")
        assert report.error is None and report.rejected == {}
        assert "BTCUSDT" in app.universe()  # no settings edit needed
        assert app.universe()[: len(settings.assets)] == list(settings.assets)
        lines = (btc_dir / "BTCUSDT_1d.csv").read_text().splitlines()
        pd.testing.assert_frame_equal(
            app.store.read_bars("BTCUSDT", "1d"), expected_bars(lines[1:]), check_exact=True
        )
        [again] = app.import_csv(btc_dir / "BTCUSDT_1d.csv")
        assert (again.imported, again.already_stored) == (0, len(lines) - 1)
        assert app.store.events()["component"].tolist() == ["csv-import", "csv-import"]
    finally:
        app.close()


def test_a_file_without_a_pattern_name_needs_asset_and_interval(lines, tmp_path, settings):
    path = write(tmp_path, lines, "prices.csv")
    app = Alpha12.open(settings=settings)
    try:
        [nameless] = app.import_csv(path)
        assert "--asset" in nameless.error and nameless.imported == 0
        [named] = app.import_csv(path, asset="XBT", interval="1h")
        assert named.error is None and named.imported == ROWS
        assert len(app.store.read_bars("XBT", "1h")) == ROWS
    finally:
        app.close()
