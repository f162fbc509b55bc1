"""The lab as the pages and the CLI use it: queue a run for the engine or run it here, follow,
cancel and re-open kept runs, export them, and apply a policy's thresholds to the live
settings through the validated, audited path."""

from __future__ import annotations

import pandas as pd

from alpha12.context import Context
from alpha12.lab import LabError, oracle
from alpha12.lab import runs as kept
from alpha12.lab.policies import parse_policies
from alpha12.lab.runner import sweep_grid
from alpha12.vocabulary import Pair


class LabDesk:
    def __init__(self, context: Context):
        self.context = context

    def request(
        self,
        pairs: list[Pair],
        policies_text: str,
        requested_by: str = "ui",
        oracle_candidates: int | None = oracle.CANDIDATES,
    ) -> int:
        """Store a lab run and queue it for the engine's trainer (behind any other job); its
        id. Bad policies or pairs are refused (LabError) before anything is written."""
        policies = parse_policies(policies_text)
        return kept.create(
            self.context.store,
            self.context.settings,
            pairs,
            policies,
            self.context.clock.now(),
            requested_by,
            oracle_candidates,
            queue=True,
        )

    def request_sweep(
        self, pair: Pair, win_rates: list[float], cooldowns: list[float], requested_by: str = "ui"
    ) -> int:
        """Queue a sweep: a lab run of the custom policy over win-rate threshold x cooldown on
        one pair, without the oracle; its id."""
        grid = ",".join(p.name for p in sweep_grid(win_rates, cooldowns))
        return self.request([pair], grid, requested_by, oracle_candidates=None)

    def run(
        self,
        pairs: list[Pair],
        policies_text: str,
        progress=None,
        oracle_candidates: int | None = oracle.CANDIDATES,
    ) -> kept.KeptRun:
        """Store a lab run and run it here and now (the CLI); bad input is refused first."""
        policies = parse_policies(policies_text)
        run_id = kept.create(
            self.context.store,
            self.context.settings,
            pairs,
            policies,
            self.context.clock.now(),
            "cli",
            oracle_candidates,
        )
        return self.resume(run_id, progress)

    def resume(self, run_id: int, progress=None) -> kept.KeptRun:
        """Run a kept run's unfinished parts here and now; its finished parts are kept."""
        return kept.execute(
            self.context.store, self.context.settings, run_id, self.context.clock.now, progress
        )

    def runs(self) -> pd.DataFrame:
        """Every kept lab run, newest first, with its job's progress."""
        return self.context.store.lab_run_records()

    def open(self, run_id: int) -> kept.KeptRun:
        """A kept run re-opened: results table, sentences, problems, curves (lab.curves)."""
        return kept.load(self.context.store, run_id)

    def cancel(self, run_id: int) -> str:
        """Stop a run: a queued one at once, a running one after its parts in flight (the
        finished parts stay). The run's status after the request."""
        status = self.context.store.request_lab_cancel(run_id, self.context.clock.now())
        if status is None:
            raise LabError(f"no lab run {run_id}")
        return status

    def export(self, run_id: int, file_format: str) -> bytes:
        return kept.export(self.open(run_id), file_format)

    def apply(self, run_id: int, interval: str, policy: str) -> list[str]:
        """Set a seed, guarded, page_hinkley or custom policy's thresholds and trigger from a
        run as the live settings of `interval`, through the validated, audited settings path;
        the problems found (then nothing changes). Other policies are refused (LabError)."""
        changes = kept.thresholds(self.open(run_id), interval, policy)
        problems = self.context.update_timeframe_settings(interval, changes)
        if not problems:
            self.context.store.log_event(
                self.context.clock.now(),
                "info",
                "lab",
                f"run {run_id}: {policy}'s thresholds applied to {interval}: {changes}",
            )
        return problems
