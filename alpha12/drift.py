"""Feature drift: how far recent feature values have moved from those a model learnt from,
by the population stability index (PSI). Pure functions of two samples.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alpha12.features import FEATURE_NAMES

# Calendar features follow the clock, not the market: their PSI only tells which hours and
# days each window covers, so drift is measured on the others.
MARKET_FEATURES = tuple(f for f in FEATURE_NAMES if not f.startswith(("tod_", "dow_")))
PSI_BINS = 10
MIN_DRIFT_ROWS = 10 * PSI_BINS  # rows needed on each side: ten per bin on average
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25  # the usual reading of the population stability index


def population_stability(reference: pd.Series, recent: pd.Series, bins: int = PSI_BINS) -> float:
    """PSI of `recent` against `reference`, over the reference's quantile bins; NaN when
    either side has no values."""
    expected, actual = reference.dropna().to_numpy(float), recent.dropna().to_numpy(float)
    if expected.size == 0 or actual.size == 0:
        return math.nan
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    share = [
        np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
        / values.size
        for values in (expected, actual)
    ]
    # A floor keeps an empty bin from making the log infinite (a common PSI convention).
    expected_share, actual_share = (np.maximum(s, 1e-4) for s in share)
    return float(np.sum((actual_share - expected_share) * np.log(actual_share / expected_share)))


def drift_level(psi: float) -> str:
    if math.isnan(psi):
        return "unknown"
    if psi >= PSI_SIGNIFICANT:
        return "significant"
    return "moderate" if psi >= PSI_MODERATE else "stable"


def drift_table(reference: pd.DataFrame, recent: pd.DataFrame) -> pd.DataFrame | None:
    """PSI and its level for each market feature, most drifted first; None while either side
    has fewer than MIN_DRIFT_ROWS rows (too few for the bins to mean anything)."""
    if min(len(reference), len(recent)) < MIN_DRIFT_ROWS:
        return None
    psi = [population_stability(reference[f], recent[f]) for f in MARKET_FEATURES]
    table = pd.DataFrame({"feature": MARKET_FEATURES, "psi": psi})
    table["drift"] = table["psi"].map(drift_level)
    return table.sort_values("psi", ascending=False, ignore_index=True)
