"""The jobs table: forced retrains and lab runs queued by a user, worked one at a time by the
engine's trainer (a second lab run waits for the first)."""

from __future__ import annotations

import pandas as pd

from alpha12.vocabulary import OPEN_JOBS, JobStatus


class JobsTable:
    def queue_job(
        self, kind: str, asset: str, interval: str, at: pd.Timestamp, requested_by: str
    ) -> int:
        """Queue a job; a job of that kind already queued or running for the pair is reused.
        Its id."""
        with self.transaction() as cursor:
            existing = cursor.execute(
                "SELECT id FROM jobs WHERE asset = ? AND interval = ? AND kind = ? "
                "AND status IN (SELECT unnest(?)) ORDER BY id LIMIT 1",
                [asset, interval, kind, list(OPEN_JOBS)],
            ).fetchall()
            if existing:
                return existing[0][0]
            return cursor.execute(
                "INSERT INTO jobs (kind, asset, interval, requested_at, status, requested_by, "
                "message) VALUES (?, ?, ?, ?, ?, ?, 'waiting for the trainer') RETURNING id",
                [kind, asset, interval, at, JobStatus.QUEUED, requested_by],
            ).fetchall()[0][0]

    def claim_job(self, at: pd.Timestamp) -> dict | None:
        """The oldest queued job, now marked running; None when the queue is empty."""
        # The engine asks every tick and the queue is almost always empty: a plain read says
        # so without a write transaction (a third of an idle tick's time, measured).
        if not self.rows("SELECT 1 FROM jobs WHERE status = ? LIMIT 1", [JobStatus.QUEUED]):
            return None
        with self.transaction() as cursor:
            rows = cursor.execute(
                "SELECT id, asset, interval, kind, run_id FROM jobs WHERE status = ? "
                "ORDER BY id LIMIT 1",
                [JobStatus.QUEUED],
            ).fetchall()
            if not rows:
                return None
            job_id, asset, interval, kind, run_id = rows[0]
            cursor.execute(
                "UPDATE jobs SET status = ?, started_at = ?, progress = 0.05, "
                "message = 'preparing' WHERE id = ?",
                [JobStatus.RUNNING, at, job_id],
            )
        return {"id": job_id, "asset": asset, "interval": interval, "kind": kind, "run_id": run_id}

    def update_job(
        self,
        job_id: int,
        status: JobStatus,
        progress: float,
        message: str,
        finished: pd.Timestamp | None,
    ) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE jobs SET status = ?, progress = ?, message = ?, "
                "finished_at = coalesce(?, finished_at) WHERE id = ?",
                [status, progress, message, finished, job_id],
            )

    def requeue_running_jobs(self) -> None:
        """Jobs left running by a crash go back to the queue instead of hanging forever."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE jobs SET status = ?, message = 're-queued after a restart' "
                "WHERE status = ?",
                [JobStatus.QUEUED, JobStatus.RUNNING],
            )
            cursor.execute(  # their lab runs resume (skipping finished parts) when claimed
                "UPDATE lab_runs SET status = ?, message = 're-queued after a restart' "
                "WHERE status = ?",
                [JobStatus.QUEUED, JobStatus.RUNNING],
            )

    def open_jobs(self) -> pd.DataFrame:
        return self.query(
            "SELECT * FROM jobs WHERE status IN (SELECT unnest(?)) ORDER BY id", [list(OPEN_JOBS)]
        )

    def latest_job(self, asset: str, interval: str) -> dict | None:
        jobs = self.query(
            "SELECT * FROM jobs WHERE asset = ? AND interval = ? ORDER BY id DESC LIMIT 1",
            [asset, interval],
        )
        return None if jobs.empty else jobs.iloc[0].to_dict()
