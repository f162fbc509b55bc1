"""`python -m alpha12`: the command line over the services facade.

Expected failures (bad settings, a database held by another process, a bad file) print one
plain message and exit non-zero; they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from alpha12 import backup, formatting, logs, terminal
from alpha12.clock import utc
from alpha12.collector import Backoff
from alpha12.config import Settings, load_settings, settings_origin
from alpha12.errors import Alpha12Error
from alpha12.lab import LabError, oracle, runs
from alpha12.lab.policies import parse_policies
from alpha12.services import Alpha12
from alpha12.store import StoreLockedError
from alpha12.timeframes import INTERVALS
from alpha12.vocabulary import Action

# Alpha12Error carries a message for the user; a missing file named on the command line too.
EXPECTED_ERRORS = (Alpha12Error, FileNotFoundError)
# A Ctrl-C that lands while DuckDB runs a query reaches us as this RuntimeError (DuckDB has no
# exception class of its own for it), not as KeyboardInterrupt: it is the user's Ctrl-C all
# the same (`run` stopped with a traceback and exit 1 when Ctrl-C met its table's query).
DUCKDB_INTERRUPTED = "Query interrupted"
log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Logging first, from the flags alone, so that a settings error is logged too.
    logs.configure(args.log_level or "INFO", args.log_file, args.log_json)
    try:
        settings = load_settings(args.config)
        logs.configure_from(settings, args.log_level, args.log_file, args.log_json)
        if not args.opens_store:  # restore: writes a new store, never opens --db's
            return args.command(settings, args)
        app = Alpha12.open(db=args.db, settings=settings, origin=settings_origin(args.config))
    except EXPECTED_ERRORS as error:
        hint = getattr(args, "when_locked", "") if isinstance(error, StoreLockedError) else ""
        return _refused(error, hint)
    try:
        return args.command(app, args)
    except EXPECTED_ERRORS as error:
        return _refused(error)
    except KeyboardInterrupt:
        return 130
    except RuntimeError as error:
        if str(error) != DUCKDB_INTERRUPTED:
            raise
        return 130
    finally:
        app.close()


def _refused(error: Exception, hint: str = "") -> int:
    """One plain line on stderr; the log file (when there is one) gets it as an error too."""
    print(f"alpha12: {error}{hint}", file=sys.stderr)
    log.error("%s", error, extra={logs.SHOWN: True})
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alpha12", description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="DuckDB file (default: settings db_path)")
    parser.add_argument("--config", type=Path, help="settings TOML (default: ./alpha12.toml)")
    parser.add_argument(
        "--log-level", type=str.upper, choices=logs.LEVEL_NAMES, help="(default: log_level)"
    )
    parser.add_argument("--log-file", type=Path, help="also log to FILE, rotated")
    parser.add_argument("--log-json", action="store_true", help="log JSON lines")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable, help: str, opens_store: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(command=handler, opens_store=opens_store)
        return sub

    collect = command("collect", _collect, "collect bars for every asset and timeframe")
    mode = collect.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass, then exit (default)")
    mode.add_argument("--follow", action="store_true", help="keep collecting as bars close")
    imported = command("import-csv", _import_csv, "import a CSV file or a folder of them")
    imported.add_argument("path", type=Path)
    imported.add_argument("--asset")
    imported.add_argument("--interval")
    status = command("status", _status, "per-pair bars, freshness, performance and model")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    backfill = command("backfill", _backfill, "snapshots and targets for all stored history")
    backfill.add_argument("--asset")
    train = command("train", _train, "train models now (all pairs by default)")
    train.add_argument("--asset")
    train.add_argument("--interval")
    run = command("run", _run, "run the engine headless with a live status table")
    run.add_argument("--for", dest="seconds", type=float, help="stop after SECONDS")
    monitor = command("monitor", _monitor, "judge every pair and recalibrate the degraded")
    monitor.add_argument("--once", action="store_true", required=True)
    retrain = command("retrain", _retrain, "recalibrate one pair now")
    retrain.add_argument("--asset", required=True)
    retrain.add_argument("--interval", required=True)
    retrain.add_argument("--force", action="store_true", help="ignore the cooldown and health")
    archive = command("archive", _archive, "move old snapshots no model needs into a Parquet file")
    archive.add_argument(
        "--older-than", type=float, required=True, metavar="DAYS", help="age in clock days"
    )
    archive.add_argument(
        "--to", type=Path, help="folder of Parquet files (default: archive/ beside the database)"
    )
    lab = command("lab", _lab, "replay history under retraining policies and compare them")
    lab.add_argument("--asset", action="append", default=[], help="repeat for several assets")
    lab.add_argument("--interval", action="append", default=[], help="repeat for several")
    lab.add_argument(
        "--policies",
        type=_policies,
        help="e.g. never,timer:hours=72,rolling:bars=500,seed,guarded,custom:win_rate=0.5",
    )
    lab.add_argument(
        "--oracle-candidates",
        type=int,
        default=oracle.CANDIDATES,
        metavar="K",
        help=f"retrain points of the hindsight oracle (default {oracle.CANDIDATES}; 0: none)",
    )
    lab.add_argument("--json", action="store_true", help="machine-readable output")
    lab.add_argument("--resume", type=int, metavar="RUN_ID", help="finish a stopped run")
    lab.set_defaults(when_locked=LAB_WHEN_LOCKED)
    saved = command("backup", _backup, "copy the store and the models into a new folder, verified")
    saved.add_argument("--to", type=Path, help="new or empty folder (default: beside the db)")
    restored = command(
        "restore", _restore, "a NEW store (--db) and models folder from a backup", False
    )
    restored.add_argument("folder", type=Path, help="a folder written by backup")
    restored.add_argument("--models", type=Path, help="new models folder (default: beside --db)")
    exchange = command("import-ccxt", _import_ccxt, "import history from the ccxt exchange")
    exchange.add_argument("--asset", required=True)
    exchange.add_argument("--interval", required=True, choices=INTERVALS)
    exchange.add_argument("--since", required=True, type=_utc_date, help="e.g. 2023-01-01")
    return parser


LAB_WHEN_LOCKED = (
    " While the alpha12 app holds the store, run the lab from the app's Lab page instead."
)


def _policies(text: str) -> str:
    """--policies checked before any work: a bad policy is a usage error (exit 2) naming the
    key and the reason."""
    try:
        parse_policies(text)
    except LabError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _lab(app: Alpha12, args) -> int:
    with terminal.progress("lab", file=sys.stderr) as report:
        if args.resume is not None:
            kept = app.lab.resume(args.resume, report)
        elif args.asset and args.interval and args.policies:
            pairs = [(a, i) for a in args.asset for i in args.interval]
            kept = app.lab.run(pairs, args.policies, report, args.oracle_candidates or None)
        else:
            raise LabError("lab: give --asset, --interval and --policies (or --resume RUN_ID)")
    for problem in kept.lab.problems.values():
        print(f"alpha12: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(runs.results_json(kept), allow_nan=False))
    else:
        print(f"lab run {kept.id}: {kept.record['message']}")
        if len(kept.lab.table):
            terminal.show(runs.results_view(kept.lab.table))
        for sentence in kept.lab.sentences.values():
            print(sentence)
    return 0 if len(kept.lab.table) else 1


def _utc_date(text: str) -> pd.Timestamp:
    try:
        return utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2023-01-01") from None


def _backfill(app: Alpha12, args) -> int:
    with terminal.progress("backfill") as progress:
        added = app.backfill(args.asset, progress)
        progress(1.0, "done")
    print(f"{sum(added.values()):,} snapshots added over {len(added)} pairs")
    return 0


def _backup(app: Alpha12, args) -> int:
    with terminal.progress("backup") as progress:
        manifest = app.backup(args.to, progress)
    rows = sum(manifest.tables.values())
    print(f"backup verified: {rows:,} rows in {len(manifest.tables)} tables, ", end="")
    print(f"{len(manifest.models)} model files")
    return 0


def _restore(settings: Settings, args) -> int:
    db = args.db or settings.db_path
    models = args.models or db.with_name(f"{db.stem}_models")
    manifest = backup.restore(args.folder, db, models)
    print(f"restored the backup of {manifest.created_at} to {db} (models in {models})")
    print(f"use it with: --db {db} and models_dir = {str(models)!r} (or ALPHA12_MODELS_DIR)")
    return 0


def _import_ccxt(app: Alpha12, args) -> int:
    with terminal.progress(f"{args.asset} {args.interval}") as progress:
        counts = app.import_exchange(args.asset, args.interval, args.since, progress)
        progress(1.0, "done")
    fetched, imported = counts.pop("fetched"), counts.pop("imported")
    print(f"{args.asset} {args.interval}: {imported:,} imported ({fetched:,} valid bars fetched)")
    for reason, count in counts.items():
        print(f"    {count:,} rejected: {reason}")
    return 0


def _archive(app: Alpha12, args) -> int:
    report = app.archive_snapshots(args.older_than, args.to)
    if not report.rows:
        print("nothing to archive: every older snapshot is still needed by a model")
        return 0
    print(
        f"{report.rows:,} snapshots moved to {report.file}; database "
        f"{report.bytes_before / 1e6:,.1f} MB -> {report.bytes_after / 1e6:,.1f} MB"
    )
    return 0


def _train(app: Alpha12, args) -> int:
    with terminal.progress("train") as progress:
        rows = app.train(args.asset, args.interval, progress)
        progress(1.0, "done")
    table = pd.DataFrame(rows)[["asset", "interval", "action", "message"]]
    print(table.to_string(index=False))
    return 0


def _run(app: Alpha12, args) -> int:
    print(app.market_label, flush=True)
    engine = app.engine
    engine.start()
    started = time.monotonic()
    with terminal.live_table() as update:
        try:
            while args.seconds is None or time.monotonic() - started < args.seconds:
                time.sleep(min(5.0, args.seconds or 5.0))
                update(_live_frame(app))
        finally:
            engine.stop(timeout=300)  # let a warm-start walk in progress finish its pair
        update(_live_frame(app))
    return 0


def _live_frame(app: Alpha12) -> pd.DataFrame:
    """One row per pair for `run`'s table, the engine's state and the clock in each row's
    first columns (a table is what the live view redraws)."""
    warm = app.warm_start_progress()
    engine = f"{app.engine.status()['state']}" + (
        f" ({formatting.percent(warm['progress'], 0)})" if warm else ""
    )
    table = app.pair_status()
    return pd.DataFrame(
        {
            "clock (UTC)": f"{app.clock.now():%Y-%m-%d %H:%M}",
            "engine": engine,
            "asset": table["asset"],
            "interval": table["interval"],
            "bars": table["bars"],
            "trades": table["trades"],
            "pending": table["pending"],
            "win rate": table["win_rate"].map(formatting.percent),
            "profit factor": table["profit_factor"].map(_factor),
            "status": table["status"],
            "cooldown": table["cooldown_remaining_s"].map(_cooldown),
            "model": table["model_version"].map(_version),
        }
    )


def _factor(value: float) -> str:
    return formatting.MISSING if pd.isna(value) else "inf" if math.isinf(value) else f"{value:.2f}"


def _cooldown(seconds: float) -> str:
    return "-" if pd.isna(seconds) or seconds <= 0 else formatting.duration(seconds)


def _version(value) -> str:
    return formatting.MISSING if pd.isna(value) else f"v{int(value)}"


def _monitor(app: Alpha12, args) -> int:
    report = app.monitor_once()
    table = pd.DataFrame(report.values())[
        ["asset", "interval", "trades", "win_rate", "profit_factor", "status", "action", "message"]
    ]
    print(table.to_string(index=False, float_format="{:.2f}".format))
    return 0


def _retrain(app: Alpha12, args) -> int:
    row = app.retrain(args.asset, args.interval, force=args.force)
    print(f"{row['asset']} {row['interval']}: {row['action']} {row['message']}")
    return 0 if row["action"] != Action.FAILED else 1


def _collect(app: Alpha12, args) -> int:
    print(app.market_label)
    backoff = Backoff()
    while True:
        results = app.collect_once(backoff)
        new = sum(r.new_bars for r in results)
        errors = [r for r in results if r.error]
        line = (
            f"{app.clock.now():%Y-%m-%d %H:%M} UTC  +{new} bars  "
            f"{app.store.bar_count():,} stored  "
            f"{len(errors)} pair errors"
        )
        if not args.follow:
            print(line)
            for result in errors:
                print(f"  {result.asset} {result.interval}: {result.error}")
            return 1 if errors and len(errors) == len(results) else 0
        print(f"\r{line}   ", end="", flush=True)
        time.sleep(1.0)


def _import_csv(app: Alpha12, args) -> int:
    with terminal.progress("import-csv") as progress:
        reports = app.import_csv(args.path, args.asset, args.interval, progress)
        progress(1.0, "done")
    failed = 0
    for report in reports:
        if report.error:
            failed += 1
            print(f"FAILED {report.path}: {report.error}")
            continue
        print(
            f"{Path(report.path).name}: {report.imported:,} imported, "
            f"{report.already_stored:,} already stored, {report.duplicates:,} duplicates, "
            f"{report.rejected_total:,} rejected"
        )
        for reason, count in report.rejected.items():
            print(f"    {count:,} rejected: {reason}")
    return 1 if failed else 0


def _status(app: Alpha12, args) -> int:
    table = app.pair_status()
    rows = [_status_row(row) for row in table.to_dict("records")]
    if args.json:
        print(
            json.dumps(
                {
                    "market": app.market_label,
                    "live": app.live,
                    "clock": app.clock.now().isoformat(),
                    "engine": _engine_row(app.engine.status()),
                    "pairs": rows,
                },
                indent=2,
            )
        )
        return 0
    print(app.market_label)
    print(f"clock: {app.clock.now():%Y-%m-%d %H:%M:%S} UTC", flush=True)
    engine = _engine_row(app.engine.status())
    beat = formatting.duration(engine["heartbeat_age_s"])
    print(f"engine: {engine['state']}, last heartbeat {beat} ago", flush=True)
    if not rows:
        print("no pairs")
        return 0
    terminal.show(_status_frame(pd.DataFrame(rows)))
    return 0


def _engine_row(status: dict) -> dict:
    """The engine's state and its last heartbeat (time and age in seconds), for status."""
    heartbeat = status["heartbeat"]
    return {
        "state": str(status["state"]),
        "heartbeat": heartbeat.isoformat() if heartbeat is not None else None,
        "heartbeat_age_s": status["heartbeat_age_s"],
    }


def _status_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The status rows for reading: ages as durations, rates as percentages."""
    hidden = ["first_bar", "cooldown_remaining_s", "no_edge_reason"]
    shown = frame.drop(columns=[*hidden, "win_rate_interval", "profit_factor_interval"])
    shown["last_bar"] = frame["last_bar"].map(lambda t: t and t[:16].replace("T", " "))
    shown["freshness_s"] = frame["freshness_s"].map(formatting.duration)
    shown["win_rate"] = [
        f"{formatting.percent(rate)} {_band(band, formatting.percent_points)}".strip()
        for rate, band in zip(frame["win_rate"], frame["win_rate_interval"], strict=True)
    ]
    shown["profit_factor"] = [
        f"{_factor(_float(pf))} {_band(band, _factor)}".strip()
        for pf, band in zip(frame["profit_factor"], frame["profit_factor_interval"], strict=True)
    ]
    shown["live_ece"] = frame["live_ece"].map(lambda v: formatting.number(v, 3))
    shown["no_edge"] = frame["no_edge"].map(lambda flag: "no edge" if flag else "")
    shown["cooldown"] = frame["cooldown_remaining_s"].map(_cooldown)
    shown["model_version"] = frame["model_version"].map(_version)
    return shown


def _status_row(row: dict) -> dict:
    def stamp(value):
        return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()

    freshness = row["freshness_s"]
    return {
        "asset": row["asset"],
        "interval": row["interval"],
        "bars": int(row["bars"]),
        "first_bar": stamp(row["first_bar"]),
        "last_bar": stamp(row["last_bar"]),
        "freshness_s": None if freshness is None or math.isnan(freshness) else round(freshness),
        "rejected": int(row["rejected"]),
        "win_rate": _number(row["win_rate"]),
        "win_rate_interval": [_number(row["win_rate_low"]), _number(row["win_rate_high"])],
        "profit_factor": _number(row["profit_factor"]),
        "profit_factor_interval": [
            _number(row["profit_factor_low"]),
            _number(row["profit_factor_high"]),
        ],
        "trades": int(row["trades"]),
        "pending": int(row["pending"]),
        "status": row["status"],
        "trigger": row["trigger"],
        "live_ece": _number(row["live_ece"]),
        "live_predictions": int(row["live_predictions"]),
        "no_edge": bool(row["no_edge"]),
        "no_edge_reason": row["no_edge_reason"],
        "cooldown_remaining_s": round(row["cooldown_remaining_s"]),
        "model_version": None if pd.isna(row["model_version"]) else int(row["model_version"]),
        "model_scope": row["model_scope"] if isinstance(row["model_scope"], str) else None,
    }


def _band(ends: list, show) -> str:
    """A status row's [low, high] (JSON: null, "inf") as "[lo–hi]"; "" when unknown."""
    return formatting.band(*(_float(end) for end in ends), show)


def _float(value) -> float:
    """A status row's number back from JSON: null is NaN, "inf" infinity."""
    return math.nan if value is None else float(value)


def _number(value) -> float | str | None:
    """JSON has no NaN or infinity: NaN is null, an infinite profit factor is "inf"."""
    if value is None or math.isnan(value):
        return None
    return "inf" if math.isinf(value) else float(value)
