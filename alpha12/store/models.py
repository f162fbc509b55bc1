"""The models table: every registered version of every pair's model, and which one serves.

The registry owns the model files; this table is its index (one row per version, at most one
active and at most one in shadow per pair).
"""

from __future__ import annotations

import pandas as pd

from alpha12.vocabulary import ModelStatus, Pair


class ModelsTable:
    def insert_model(self, row: dict) -> None:
        """A new version's row (columns of the models table); an active one retires the
        pair's active version in the same transaction. A newer challenger, whatever its
        status, ends the pair's shadow: that one is rejected undecided."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE models SET status = ? WHERE asset = ? AND interval = ? AND status = ?",
                [ModelStatus.REJECTED, row["asset"], row["interval"], ModelStatus.SHADOW],
            )
            if row["status"] == ModelStatus.ACTIVE:
                cursor.execute(
                    "UPDATE models SET status = ? WHERE asset = ? AND interval = ? AND status = ?",
                    [ModelStatus.RETIRED, row["asset"], row["interval"], ModelStatus.ACTIVE],
                )
            names = ", ".join(row)
            cursor.execute(
                f"INSERT INTO models ({names}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )

    def activate_model(self, asset: str, interval: str, version: int) -> None:
        """Make `version` the pair's active row and retire the one that was."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE models SET status = ? WHERE asset = ? AND interval = ? AND status = ?",
                [ModelStatus.RETIRED, asset, interval, ModelStatus.ACTIVE],
            )
            cursor.execute(
                "UPDATE models SET status = ? WHERE asset = ? AND interval = ? AND version = ?",
                [ModelStatus.ACTIVE, asset, interval, version],
            )

    def set_model_status(self, asset: str, interval: str, version: int, status: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE models SET status = ? WHERE asset = ? AND interval = ? AND version = ?",
                [status, asset, interval, version],
            )

    def model_versions(self, asset: str, interval: str) -> pd.DataFrame:
        """Every version of the pair's model, newest first."""
        return self.query(
            "SELECT * FROM models WHERE asset = ? AND interval = ? ORDER BY version DESC",
            [asset, interval],
        )

    def model_record(self, asset: str, interval: str, version: int) -> dict | None:
        found = self.query(
            "SELECT * FROM models WHERE asset = ? AND interval = ? AND version = ?",
            [asset, interval, version],
        )
        return None if found.empty else found.iloc[0].to_dict()

    def active_version(self, asset: str, interval: str) -> int | None:
        return self.scalar(
            "SELECT version FROM models WHERE asset = ? AND interval = ? AND status = ?",
            [asset, interval, ModelStatus.ACTIVE],
        )

    def servable_versions(self, asset: str, interval: str) -> list[tuple[int, str, str]]:
        """(version, sha256, status) of the versions that may serve (the active one first,
        then the retired ones, newest first) and of the one in shadow."""
        return self.servable_versions_of([(asset, interval)])[(asset, interval)]

    def servable_versions_of(self, pairs: list[Pair]) -> dict[Pair, list[tuple[int, str, str]]]:
        """servable_versions of every pair, in one query."""
        found = self.query_with(
            pd.DataFrame(pairs, columns=["asset", "interval"]),
            """SELECT m.asset, m.interval, m.version, m.sha256, m.status
               FROM models m JOIN incoming k USING (asset, interval)
               WHERE m.status IN (?, ?, ?)
               ORDER BY m.asset, m.interval, m.status = ? DESC, m.version DESC""",
            [ModelStatus.ACTIVE, ModelStatus.RETIRED, ModelStatus.SHADOW, ModelStatus.ACTIVE],
        )
        versions: dict[Pair, list[tuple[int, str, str]]] = {tuple(pair): [] for pair in pairs}
        for row in found.itertuples(index=False):
            versions[(row.asset, row.interval)].append(
                (int(row.version), str(row.sha256), str(row.status))
            )
        return versions

    def shadow_pairs(self) -> list[tuple[str, str]]:
        """The pairs with a challenger in shadow."""
        return [
            tuple(row)
            for row in self.rows(
                "SELECT asset, interval FROM models WHERE status = ? ORDER BY ALL",
                [ModelStatus.SHADOW],
            )
        ]

    def latest_version(self, asset: str, interval: str) -> int:
        """The pair's highest version number (0 with none)."""
        latest = self.scalar(
            "SELECT max(version) FROM models WHERE asset = ? AND interval = ?", [asset, interval]
        )
        return latest or 0

    def models_trained_as_of(self) -> pd.DataFrame:
        """asset, model_interval, model_version and model_as_of of every version."""
        return self.query(
            "SELECT asset, interval AS model_interval, version AS model_version, "
            "as_of AS model_as_of FROM models"
        )
