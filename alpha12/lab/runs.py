"""Kept lab runs: every run is stored (what was asked, on which bars, settings and code), each
part as it finishes, and the results table at the end, so any run re-opens with its table,
sentences and curves, and a run cut short (a crash, a cancel) resumes with its finished parts.

The store holds the rows (store.lab); this module turns a LabRun into them and back, and runs
a kept run through `runner.run_lab`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import alpha12
from alpha12 import formatting
from alpha12.config import Settings, TimeframeSettings
from alpha12.lab import LabError, runner, stats
from alpha12.lab.oracle import OracleResult
from alpha12.lab.policies import Policy, Seed, parse_policy
from alpha12.lab.runner import LabRun, Part
from alpha12.store import Store, to_json
from alpha12.vocabulary import JobStatus, Pair

# The settings a lab result depends on: kept with the run, and used again when it resumes.
RESULT_SETTINGS = ("timeframes", "fee_bps", "slippage_bps", "trade_window", "seed")
THRESHOLDS = ("win_rate", "profit_factor", "min_trades", "cooldown_hours", "trigger")
EXPORT_FORMATS = ("csv", "parquet")


@dataclass
class KeptRun:
    """A stored run: its record (a lab_runs row) and its LabRun as far as it got."""

    id: int
    record: dict
    lab: LabRun

    @property
    def pairs(self) -> list[Pair]:
        return [tuple(pair) for pair in json.loads(self.record["pairs"])]

    @property
    def policies(self) -> list[str]:
        return [p["name"] for p in json.loads(self.record["policies"])]


# -- creating and running -------------------------------------------------------------------


def create(
    store: Store,
    settings: Settings,
    pairs: list[Pair],
    policies: list[Policy],
    at: pd.Timestamp,
    requested_by: str,
    oracle_candidates: int | None = runner.oracle.CANDIDATES,
    queue: bool = False,
) -> int:
    """Store a new run of `policies` on `pairs` over the bars stored now (with `queue`, and
    its job for the engine's trainer); its id. Refuses (LabError) an empty or unknown pair
    before anything is written."""
    if not pairs:
        raise LabError("pairs: none chosen")
    ranges = {f"{a} {i}": _span(store.read_bars(a, i), i) for a, i in pairs}
    unknown = [name for name, span in ranges.items() if not span["bars"]]
    if unknown:
        raise LabError(f"pairs: no bars stored for {', '.join(unknown)}")
    return store.create_lab_run(
        {
            "created_at": at,
            "status": JobStatus.QUEUED,
            "pairs": to_json([list(pair) for pair in pairs]),
            "data_range": to_json(
                {"until": max(pd.Timestamp(r["last"]) for r in ranges.values()), "pairs": ranges}
            ),
            "policies": to_json(
                [{"name": p.name, "kind": p.kind, "params": p.params()} for p in policies]
            ),
            "oracle_candidates": oracle_candidates,
            "settings": to_json({k: dataclasses.asdict(settings)[k] for k in RESULT_SETTINGS}),
            "code_version": code_version(),
            "requested_by": requested_by,
            "message": "waiting for the trainer" if queue else "starting",
        },
        queue,
    )


def execute(
    store: Store,
    settings: Settings,
    run_id: int,
    now: Callable[[], pd.Timestamp],
    progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> KeptRun:
    """Run (or resume) a kept run: its finished parts are skipped, each new part is stored as
    it finishes, the table at the end; status done, cancelled (stopped on request) or
    failed (the error is re-raised)."""
    record = _record(store, run_id)
    store.set_lab_status(run_id, JobStatus.RUNNING, "running")
    until = pd.Timestamp(json.loads(record["data_range"])["until"])
    try:
        lab = runner.run_lab(
            store,
            run_settings(settings, record),
            [tuple(pair) for pair in json.loads(record["pairs"])],
            [parse_policy(p["name"]) for p in json.loads(record["policies"])],
            progress,
            should_stop,
            done=load_parts(store, run_id),
            oracle_candidates=record["oracle_candidates"],
            on_part=lambda part: store.save_lab_part(run_id, part_row(part)),
            until=until,
        )
    except Exception as error:
        store.set_lab_status(run_id, JobStatus.FAILED, f"{type(error).__name__}: {error}", now())
        raise
    store.save_lab_results(run_id, _storable(lab.table))
    status = JobStatus.CANCELLED if lab.stopped else JobStatus.DONE
    store.set_lab_status(run_id, status, summary(lab), now())
    return KeptRun(run_id, store.lab_run_record(run_id), lab)


def summary(lab: LabRun) -> str:
    """One line on a run: its parts and what could not be walked."""
    walked = sum(1 for p in lab.parts.values() if p.start is not None)
    text = f"{walked} of {len(lab.parts)} parts walked"
    if lab.stopped:
        text = f"cancelled: {text} (kept; run it again to finish)"
    return "; ".join([text, *lab.problems.values()])


def run_settings(settings: Settings, record: dict) -> Settings:
    """`settings` with the result settings the run was created with (so a resumed run
    judges its new parts as its finished ones were judged)."""
    kept = json.loads(record["settings"])
    timeframes = {i: TimeframeSettings(**tf) for i, tf in kept.pop("timeframes").items()}
    return dataclasses.replace(settings, timeframes=timeframes, **kept)


def code_version() -> str:
    """alpha12's version, and the git commit of its source when it is a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(alpha12.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{alpha12.__version__}+{commit}" if commit else alpha12.__version__


# -- re-opening --------------------------------------------------------------------------------


def load(store: Store, run_id: int) -> KeptRun:
    """A kept run as stored: its table, sentences, problems, gaps and parts (for the curves)."""
    record = _record(store, run_id)
    table = store.lab_results(run_id)
    table["params"] = [json.loads(p) for p in table["params"]]
    table = stats.table(table.to_dict("records"))
    parts = load_parts(store, run_id)
    lab = LabRun(table, parts, stopped=record["status"] == JobStatus.CANCELLED)
    for (asset, interval), rows in table.groupby(["asset", "interval"], sort=False):
        lab.sentences[(asset, interval)] = stats.verdict(rows)
    lab.problems = {p.key[:2]: p.message for p in parts.values() if p.start is None}
    ranges = json.loads(record["data_range"])["pairs"]
    lab.gaps = {
        tuple(name.split(" ")): {"count": r["gaps"], "longest": pd.Timedelta(r["longest_gap"])}
        for name, r in ranges.items()
    }
    return KeptRun(run_id, record, lab)


def load_parts(store: Store, run_id: int) -> dict:
    return {
        part.key: part for part in map(part_from_row, store.lab_parts(run_id).to_dict("records"))
    }


def part_row(part: Part) -> dict:
    """A part as a lab_parts row: its frames and oracle as exact JSON."""
    return {
        "asset": part.asset,
        "interval": part.interval,
        "policy": part.policy,
        "params": to_json(part.params),
        "start": part.start,
        "seconds": part.seconds,
        "message": part.message,
        "trades": frame_json(part.trades),
        "decisions": frame_json(part.decisions),
        "oracle": None if part.oracle is None else _oracle_json(part.oracle),
    }


def part_from_row(row: dict) -> Part:
    start = row["start"]
    return Part(
        row["asset"],
        row["interval"],
        row["policy"],
        json.loads(row["params"]),
        frame_from_json(row["trades"]),
        frame_from_json(row["decisions"]),
        None if start is None or pd.isna(start) else pd.Timestamp(start).tz_convert("UTC"),
        float(row["seconds"]),
        row["message"],
        _oracle_from_json(row["oracle"]) if isinstance(row["oracle"], str) else None,
    )


def frame_json(frame: pd.DataFrame) -> str:
    """A frame as JSON that reads back equal: columns, dtypes, times as ISO text, floats
    exactly (json writes the shortest text that reads back the same float)."""
    columns = {}
    for name in frame.columns:
        values = frame[name]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            columns[name] = [None if pd.isna(v) else v.isoformat() for v in values]
        else:
            columns[name] = values.tolist()
    dtypes = {name: str(dtype) for name, dtype in frame.dtypes.items()}
    return to_json({"columns": columns, "dtypes": dtypes, "order": list(frame.columns)})


def frame_from_json(text: str) -> pd.DataFrame:
    data = json.loads(text)
    if not data["order"]:
        return pd.DataFrame()  # as a part that walked nothing has it
    frame = pd.DataFrame(data["columns"], columns=data["order"])
    for name, dtype in data["dtypes"].items():
        if dtype.startswith("datetime64"):
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
        else:
            frame[name] = frame[name].astype(dtype)
    return frame


# -- using a run ---------------------------------------------------------------------------


def export(kept: KeptRun, file_format: str) -> bytes:
    """The run's results table as a CSV or Parquet file (params as JSON text)."""
    if file_format not in EXPORT_FORMATS:
        raise LabError(f"export: unknown format {file_format!r} (known: csv, parquet)")
    table = _storable(kept.lab.table).assign(run_id=kept.id)
    if file_format == "csv":
        return table.to_csv(index=False).encode()
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def thresholds(kept: KeptRun, interval: str, policy_name: str) -> dict:
    """The thresholds `policy_name` judged `interval` by in this run (the run's settings, with
    a custom policy's overrides): what applying it to the live settings sets. Refuses, in
    plain words, a policy the run did not have and one that has no thresholds."""
    policy = parse_policy(policy_name)
    if policy.name not in kept.policies:
        raise LabError(f"run {kept.id} has no policy {policy_name!r}")
    if interval not in {i for _, i in kept.pairs}:
        raise LabError(f"run {kept.id} did not replay any {interval} pair")
    if not isinstance(policy, Seed):
        raise LabError(
            f"{policy_name} has no thresholds to apply: a {policy.kind} policy retrains on a "
            "schedule (or never), whatever the win rate and profit factor. Only seed, guarded, "
            "page_hinkley and custom policies judge by thresholds and a trigger."
        )
    judged = policy.adjust(run_settings(Settings(), kept.record).timeframe(interval))
    return {key: getattr(judged, key) for key in THRESHOLDS}


def results_view(table: pd.DataFrame) -> pd.DataFrame:
    """The results table as it reads on a page or a terminal: rates as percentages, R with
    two decimals, intervals as "[lo, hi]", unknown values as a dash."""
    r, signed = (
        formatting.number,
        lambda v: formatting.MISSING if formatting.missing(v) else f"{v:+.3f}",
    )
    return pd.DataFrame(
        {
            "pair": table["asset"] + " " + table["interval"],
            "policy": table["policy"],
            "trades": table["trades"],
            "win rate": table["win_rate"].map(formatting.percent),
            "win rate 95%": [
                formatting.MISSING
                if formatting.missing(lo) or formatting.missing(hi)
                else f"[{formatting.percent(lo)}, {formatting.percent(hi)}]"
                for lo, hi in zip(table["win_rate_low"], table["win_rate_high"], strict=True)
            ],
            "PF": table["profit_factor"].map(formatting.profit_factor),
            "expectancy R": table["expectancy_r"].map(r),
            "expectancy 95%": _intervals(table, "expectancy_r_low", "expectancy_r_high"),
            "total R": table["total_r"].map(r),
            "max DD R": table["max_drawdown_r"].map(r),
            "retrains": table["retrains"],
            "promotions": table["promotions"],
            "vs never R/trade": table["diff_expectancy_r"].map(signed),
            "vs never 95%": _intervals(table, "diff_low", "diff_high", signed=True, digits=3),
            "regret R": table["regret_r"].map(r),
            "seconds": table["seconds"].map(lambda v: formatting.number(v, 1)),
        }
    )


def _intervals(table: pd.DataFrame, low: str, high: str, **options) -> list[str]:
    return [
        formatting.interval(lo, hi, **options)
        for lo, hi in zip(table[low], table[high], strict=True)
    ]


def results_json(kept: KeptRun) -> dict:
    """The run as the CLI's --json prints it; non-finite numbers are null."""
    return {
        "run_id": kept.id,
        "results": [_result(row) for row in kept.lab.table.to_dict("records")],
        "verdicts": [
            {"asset": asset, "interval": interval, "sentence": sentence}
            for (asset, interval), sentence in kept.lab.sentences.items()
        ],
    }


def _result(row: dict) -> dict:
    plain = {key: _finite(row[key]) for key in stats.COLUMNS[:13] if key != "params"}
    return {
        **plain,
        "params": row["params"],
        **{
            f"{name}_interval": [_finite(row[f"{name}_low"]), _finite(row[f"{name}_high"])]
            for name in ("win_rate", "profit_factor", "expectancy_r")
        },
        "regret_r": _finite(row["regret_r"]),
        "diff_vs_never": {
            "expectancy_r": _finite(row["diff_expectancy_r"]),
            "low": _finite(row["diff_low"]),
            "high": _finite(row["diff_high"]),
        },
    }


def _finite(value):
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _record(store: Store, run_id: int) -> dict:
    record = store.lab_run_record(run_id)
    if record is None:
        raise LabError(f"no lab run {run_id}")
    return record


def _span(bars: pd.DataFrame, interval: str) -> dict:
    """A pair's stored bars as the run saw them: first, last, count and gaps."""
    if bars.empty:
        return {"bars": 0}
    gaps = runner.gaps(bars, interval)
    return {
        "first": bars["ts"].iloc[0].isoformat(),
        "last": bars["ts"].iloc[-1].isoformat(),
        "bars": len(bars),
        "gaps": gaps["count"],
        "longest_gap": str(gaps["longest"]),
    }


def _storable(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(params=[to_json(p) for p in table["params"]])


def _oracle_json(best: OracleResult) -> str:
    return to_json(
        {
            **dataclasses.asdict(best),
            "candidates": [t.isoformat() for t in best.candidates],
            "retrain_times": [t.isoformat() for t in best.retrain_times],
            "gain": best.gain.tolist(),
        }
    )


def _oracle_from_json(text: str) -> OracleResult:
    data = json.loads(text)
    return OracleResult(
        total_r=data["total_r"],
        objective=data["objective"],
        trades=data["trades"],
        candidates=[pd.Timestamp(t) for t in data["candidates"]],
        serving=data["serving"],
        retrain_times=[pd.Timestamp(t) for t in data["retrain_times"]],
        gain=np.array(data["gain"], dtype=float),
    )
