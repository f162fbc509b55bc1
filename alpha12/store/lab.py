"""The recalibration lab's kept runs: lab_runs (what was asked, on which data and code, and
how it went), lab_parts (each finished replay, written as it finishes) and lab_results (the
summary table). A part is one row written in one transaction, so a crash or a cancel leaves
whole parts only."""

from __future__ import annotations

import pandas as pd

from alpha12.vocabulary import JobKind, JobStatus


class LabTable:
    def create_lab_run(self, record: dict, queue: bool) -> int:
        """A new run (the keys of the lab_runs columns but id); its id. With `queue`, its job
        is queued in the same transaction (behind every job already waiting; never merged),
        so no run waits without a job to work it."""
        with self.transaction() as cursor:
            run_id = cursor.execute(
                "INSERT INTO lab_runs (created_at, status, pairs, data_range, policies, "
                "oracle_candidates, settings, code_version, requested_by, message) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    record["created_at"],
                    record["status"],
                    record["pairs"],
                    record["data_range"],
                    record["policies"],
                    record["oracle_candidates"],
                    record["settings"],
                    record["code_version"],
                    record["requested_by"],
                    record["message"],
                ],
            ).fetchall()[0][0]
            if queue:
                cursor.execute(
                    "INSERT INTO jobs (kind, run_id, requested_at, status, requested_by, "
                    "message) VALUES (?, ?, ?, ?, ?, 'waiting for the trainer')",
                    [
                        JobKind.LAB,
                        run_id,
                        record["created_at"],
                        JobStatus.QUEUED,
                        record["requested_by"],
                    ],
                )
            return run_id

    def lab_run_record(self, run_id: int) -> dict | None:
        rows = self.query("SELECT * FROM lab_runs WHERE id = ?", [run_id])
        return None if rows.empty else rows.iloc[0].to_dict()

    def lab_run_records(self) -> pd.DataFrame:
        """Every run, newest first, with its job's progress and message (none from the CLI)."""
        return self.query(
            "SELECT r.id, r.created_at, r.status, r.pairs, r.policies, r.code_version, "
            "r.requested_by, r.message, r.finished_at, r.cancel_requested, j.id AS job_id, "
            "j.status AS job_status, j.progress, j.message AS job_message FROM lab_runs r "
            "LEFT JOIN jobs j ON j.run_id = r.id AND j.kind = ? ORDER BY r.id DESC",
            [JobKind.LAB],
        )

    def set_lab_status(
        self, run_id: int, status: str, message: str, finished: pd.Timestamp | None = None
    ) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE lab_runs SET status = ?, message = ?, "
                "finished_at = coalesce(?, finished_at) WHERE id = ?",
                [status, message, finished, run_id],
            )

    def request_lab_cancel(self, run_id: int, at: pd.Timestamp) -> str | None:
        """Ask a run to stop: a queued run (and its job) is cancelled at once, a running one
        stops after the parts in flight. The run's status after the request (None: no run)."""
        with self.transaction() as cursor:
            rows = cursor.execute("SELECT status FROM lab_runs WHERE id = ?", [run_id]).fetchall()
            if not rows:
                return None
            status = rows[0][0]
            if status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                return status
            cursor.execute("UPDATE lab_runs SET cancel_requested = TRUE WHERE id = ?", [run_id])
            if status == JobStatus.QUEUED:
                values = [JobStatus.CANCELLED, at, run_id, JobStatus.QUEUED]
                cursor.execute(
                    "UPDATE lab_runs SET status = ?, message = 'cancelled before it started', "
                    "finished_at = ? WHERE id = ? AND status = ?",
                    values,
                )
                cursor.execute(
                    "UPDATE jobs SET status = ?, message = 'cancelled before it started', "
                    "finished_at = ? WHERE run_id = ? AND status = ?",
                    values,
                )
                return JobStatus.CANCELLED
            return status

    def lab_cancel_requested(self, run_id: int) -> bool:
        return bool(self.scalar("SELECT cancel_requested FROM lab_runs WHERE id = ?", [run_id]))

    def save_lab_part(self, run_id: int, part: dict) -> None:
        """One finished part (replacing an earlier copy of the same part), whole or not at all."""
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT OR REPLACE INTO lab_parts (run_id, asset, interval, policy, params, "
                "start, seconds, message, trades, decisions, oracle) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    part["asset"],
                    part["interval"],
                    part["policy"],
                    part["params"],
                    part["start"],
                    part["seconds"],
                    part["message"],
                    part["trades"],
                    part["decisions"],
                    part["oracle"],
                ],
            )

    def lab_parts(self, run_id: int) -> pd.DataFrame:
        return self.query(
            "SELECT * FROM lab_parts WHERE run_id = ? ORDER BY asset, interval, policy", [run_id]
        )

    def save_lab_results(self, run_id: int, table: pd.DataFrame) -> None:
        """The run's summary table (params as JSON text), replacing any earlier one."""
        incoming = table.assign(position=range(len(table)))  # noqa: F841 -- DuckDB reads it by name
        with self.transaction() as cursor:
            cursor.execute("DELETE FROM lab_results WHERE run_id = ?", [run_id])
            cursor.execute(
                "INSERT INTO lab_results BY NAME SELECT ? AS run_id, * FROM incoming", [run_id]
            )

    def lab_results(self, run_id: int) -> pd.DataFrame:
        return self.query(
            "SELECT * EXCLUDE (run_id, position) FROM lab_results WHERE run_id = ? "
            "ORDER BY position",
            [run_id],
        )
