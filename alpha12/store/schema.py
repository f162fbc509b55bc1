"""The database schema and its migrations: version N's statements turn schema N-1 into N.

A store written by an older alpha12 is migrated when it is opened; one written by a newer one
is refused (see Connection._migrate).
"""

from __future__ import annotations

from alpha12.features import FEATURE_NAMES

SCHEMA_VERSION = 4


def _snapshots_table(name: str, unique_key: bool) -> str:
    features = ",\n  ".join(f"{feature} FLOAT" for feature in FEATURE_NAMES)
    key = ",\n  UNIQUE (asset, interval, ts, source)" if unique_key else ""
    return f"""CREATE TABLE {name} (
  id BIGINT DEFAULT nextval('snapshot_ids'), asset VARCHAR NOT NULL,
  interval VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL,
  {features},
  probability FLOAT, model_version INTEGER, model_scope VARCHAR,
  setup_generated BOOLEAN NOT NULL DEFAULT FALSE,
  target FLOAT, target_ts TIMESTAMPTZ, pnl_pct FLOAT{key})"""


def _schema_v1() -> list[str]:
    return [
        """CREATE TABLE bars (
  asset VARCHAR NOT NULL, interval VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL,
  open DOUBLE NOT NULL, high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL,
  volume DOUBLE NOT NULL, PRIMARY KEY (asset, interval, ts))""",
        "CREATE SEQUENCE rejection_ids",
        """CREATE TABLE rejections (
  id BIGINT PRIMARY KEY DEFAULT nextval('rejection_ids'), recorded_at TIMESTAMPTZ NOT NULL,
  asset VARCHAR, interval VARCHAR, origin VARCHAR NOT NULL, reason VARCHAR NOT NULL,
  count INTEGER NOT NULL)""",
        "CREATE SEQUENCE snapshot_ids",
        _snapshots_table("snapshots", unique_key=True),
        "CREATE SEQUENCE setup_ids",
        """CREATE TABLE setups (
  id BIGINT PRIMARY KEY DEFAULT nextval('setup_ids'), asset VARCHAR NOT NULL,
  interval VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, direction SMALLINT NOT NULL,
  entry DOUBLE NOT NULL, stop DOUBLE NOT NULL, take_profit DOUBLE NOT NULL,
  atr DOUBLE NOT NULL, expires_ts TIMESTAMPTZ NOT NULL, probability DOUBLE NOT NULL,
  model_version INTEGER, model_scope VARCHAR, status VARCHAR NOT NULL DEFAULT 'open',
  exit_reason VARCHAR, exit_ts TIMESTAMPTZ, exit_price DOUBLE, pnl_pct DOUBLE,
  r_multiple DOUBLE, origin VARCHAR NOT NULL DEFAULT 'live')""",
        """CREATE TABLE models (
  asset VARCHAR NOT NULL, interval VARCHAR NOT NULL, version INTEGER NOT NULL,
  scope VARCHAR NOT NULL, trained_at TIMESTAMPTZ NOT NULL, as_of TIMESTAMPTZ NOT NULL,
  rows INTEGER NOT NULL, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ,
  metrics JSON, path VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, status VARCHAR NOT NULL,
  trigger VARCHAR, PRIMARY KEY (asset, interval, version))""",
        "CREATE SEQUENCE recalibration_ids",
        """CREATE TABLE recalibrations (
  id BIGINT PRIMARY KEY DEFAULT nextval('recalibration_ids'), asset VARCHAR NOT NULL,
  interval VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, trigger VARCHAR NOT NULL,
  action VARCHAR NOT NULL, win_rate DOUBLE, profit_factor DOUBLE, trades INTEGER,
  reasons VARCHAR, challenger_score DOUBLE, incumbent_score DOUBLE, new_version INTEGER,
  metrics_before JSON, metrics_after JSON, message VARCHAR)""",
        "CREATE SEQUENCE job_ids",
        """CREATE TABLE jobs (
  id BIGINT PRIMARY KEY DEFAULT nextval('job_ids'), kind VARCHAR NOT NULL,
  asset VARCHAR NOT NULL, interval VARCHAR NOT NULL, requested_at TIMESTAMPTZ NOT NULL,
  started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, status VARCHAR NOT NULL,
  progress DOUBLE NOT NULL DEFAULT 0, message VARCHAR, requested_by VARCHAR)""",
        "CREATE SEQUENCE event_ids",
        """CREATE TABLE events (
  id BIGINT PRIMARY KEY DEFAULT nextval('event_ids'), ts TIMESTAMPTZ NOT NULL,
  wall_ts TIMESTAMPTZ NOT NULL DEFAULT now(), level VARCHAR NOT NULL,
  component VARCHAR NOT NULL, asset VARCHAR, interval VARCHAR, message VARCHAR NOT NULL)""",
        "CREATE TABLE state (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
        "CREATE SEQUENCE settings_audit_ids",
        """CREATE TABLE settings_audit (
  id BIGINT PRIMARY KEY DEFAULT nextval('settings_audit_ids'), wall_ts TIMESTAMPTZ NOT NULL
  DEFAULT now(), key VARCHAR NOT NULL, old_value VARCHAR, new_value VARCHAR NOT NULL)""",
    ]


def _schema_v2() -> list[str]:
    """Snapshots without their UNIQUE index: at 83 bytes a row it cost more than the row's
    data. analysis.insert_snapshots keeps the key unique (this process is the only writer)."""
    return [
        _snapshots_table("snapshots_v2", unique_key=False),
        "INSERT INTO snapshots_v2 SELECT * FROM snapshots ORDER BY asset, interval, ts",
        "DROP TABLE snapshots",
        "ALTER TABLE snapshots_v2 RENAME TO snapshots",
    ]


def _schema_v3() -> list[str]:
    """The recalibration lab's kept runs: one row per run, one per finished part (its trades
    and decisions, what re-opens the plots and lets a re-run resume), one per result row (the
    columns of lab.stats.COLUMNS in `position` order). A lab job is not about one pair: jobs
    get a run id, and their asset and interval may be empty."""
    return [
        "CREATE SEQUENCE lab_run_ids",
        """CREATE TABLE lab_runs (
  id BIGINT PRIMARY KEY DEFAULT nextval('lab_run_ids'), created_at TIMESTAMPTZ NOT NULL,
  status VARCHAR NOT NULL, pairs JSON NOT NULL, data_range JSON NOT NULL,
  policies JSON NOT NULL, oracle_candidates INTEGER, settings JSON NOT NULL,
  code_version VARCHAR NOT NULL, requested_by VARCHAR, message VARCHAR,
  cancel_requested BOOLEAN NOT NULL DEFAULT FALSE, finished_at TIMESTAMPTZ)""",
        """CREATE TABLE lab_parts (
  run_id BIGINT NOT NULL, asset VARCHAR NOT NULL, interval VARCHAR NOT NULL,
  policy VARCHAR NOT NULL, params JSON NOT NULL, start TIMESTAMPTZ, seconds DOUBLE NOT NULL,
  message VARCHAR, trades JSON NOT NULL, decisions JSON NOT NULL, oracle JSON,
  PRIMARY KEY (run_id, asset, interval, policy))""",
        """CREATE TABLE lab_results (
  run_id BIGINT NOT NULL, position INTEGER NOT NULL, asset VARCHAR NOT NULL,
  interval VARCHAR NOT NULL, policy VARCHAR NOT NULL, params JSON NOT NULL, trades BIGINT,
  win_rate DOUBLE, profit_factor DOUBLE, expectancy_r DOUBLE, total_r DOUBLE,
  max_drawdown_r DOUBLE, retrains BIGINT, promotions BIGINT, seconds DOUBLE,
  expectancy_r_low DOUBLE, expectancy_r_high DOUBLE, win_rate_low DOUBLE,
  win_rate_high DOUBLE, profit_factor_low DOUBLE, profit_factor_high DOUBLE,
  diff_expectancy_r DOUBLE, diff_low DOUBLE, diff_high DOUBLE, regret_r DOUBLE,
  PRIMARY KEY (run_id, position))""",
        "ALTER TABLE jobs ALTER COLUMN asset DROP NOT NULL",
        "ALTER TABLE jobs ALTER COLUMN interval DROP NOT NULL",
        "ALTER TABLE jobs ADD COLUMN run_id BIGINT",
    ]


def _schema_v4() -> list[str]:
    """Shadow setups: the would-be trades of a challenger waiting in shadow, or of a serving
    model without an edge on a timeframe that does not trade without one; made and resolved
    like real ones, never counted as real trades. A recalibration row says which evidence
    decided it ("held-out rows (N)" or "shadow outcomes (N)")."""
    return [
        "ALTER TABLE setups ADD COLUMN shadow BOOLEAN NOT NULL DEFAULT FALSE",
        "ALTER TABLE recalibrations ADD COLUMN evidence VARCHAR",
    ]


MIGRATIONS = {1: _schema_v1, 2: _schema_v2, 3: _schema_v3, 4: _schema_v4}
