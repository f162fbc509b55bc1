"""Uncertainty where pairs are judged, on a store after a real warm start: the Overview cards
and `status --json` carry the 95% intervals, a model without out-of-sample skill carries the
"no edge" badge, the serving model's live calibration shows beside its training figures, and
the pending count and the setup flags agree with counts made by hand."""

import dataclasses
import json

import pytest

from alpha12 import cli
from alpha12.formatting import number
from alpha12.metrics import wilson_interval
from alpha12.services import Alpha12
from alpha12.store import SnapshotQuery
from tests.app.helpers import ASSET, INTERVALS, context, open_page, populated_settings

BLIND = {"roc_auc": 0.5}  # AUC 0.5: the hold-out ranks outcomes no better than a coin
SKILLED = {  # AUC 0.7 on 1000 hold-out rows, and an entry rule that earned after costs
    "roc_auc": 0.7,
    "eval_positives": 500,
    "eval_negatives": 500,
    "signal_trades": 100,
    "signal_expectancy_pct": 0.05,
}


def status_json(capsys) -> list[dict]:
    """`python -m alpha12 status --json` (in this process) over the app's store."""
    assert cli.main(["status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["pairs"]


def cards(at) -> list[str]:
    """The overview cards of the one asset, in timeframe order."""
    return [m.value for m in at.markdown if "win rate" in m.value and "profit factor" in m.value]


def with_metrics(folder, changes: dict[str, dict]) -> None:
    """Serve a copy of each timeframe's model whose hold-out metrics are changed."""
    app = Alpha12.open(settings=populated_settings(folder))
    try:
        for interval, metrics in changes.items():
            served = app.registry.load_timeframe_model(ASSET, interval)
            copy = dataclasses.replace(served.model, metrics={**served.model.metrics, **metrics})
            app.registry.register(ASSET, interval, copy, app.clock.now(), "test")
    finally:
        app.close()


def hand_win_rate_interval(app: Alpha12, interval: str) -> tuple[float, float]:
    """Wilson interval of the serving model's newest trade_window closed trades, counted from
    the pair's setups."""
    row = app.pair_overview(ASSET, interval)
    trades = app.trades(ASSET, interval, limit=100_000)
    mine = trades[
        (trades["status"] == "closed")
        & (trades["model_version"] == row["model_version"])
        & (trades["model_scope"] == row["model_scope"])
        & (trades["exit_ts"] <= app.clock.now())
    ].sort_values("exit_ts")
    judged = mine["pnl_pct"].tail(app.settings.trade_window)
    return wilson_interval(int((judged > 0).sum()), len(judged))


def test_overview_cards_show_the_win_rate_interval_and_the_hand_counted_pending(populated_env):
    at = open_page("overview")
    app = context(at)
    shown = dict(zip(INTERVALS, cards(at), strict=True))
    judged = [i for i in INTERVALS if app.pair_overview(ASSET, i)["trades"] > 0]
    assert judged, "the warm start closed no trade of a serving model"
    for interval in judged:
        low, high = hand_win_rate_interval(app, interval)
        assert f"[{low * 100:.0f}–{high * 100:.0f}]" in shown[interval], shown[interval]
    for interval in INTERVALS:
        trades = app.trades(ASSET, interval, limit=100_000)
        pending = int((trades["status"] == "open").sum())
        assert (f" · {pending} open" in shown[interval]) == (pending > 0), shown[interval]


def test_status_json_carries_intervals_around_the_point_and_the_hand_counted_pending(
    populated_env, capsys
):
    pairs = status_json(capsys)
    app = Alpha12.open(settings=populated_settings(populated_env))
    try:
        for pair in pairs:
            trades = app.trades(ASSET, pair["interval"], limit=100_000)
            assert pair["pending"] == (trades["status"] == "open").sum()
            if pair["trades"] == 0:
                assert pair["win_rate_interval"] == [None, None]
                continue
            low, high = pair["win_rate_interval"]
            assert low <= pair["win_rate"] <= high
            assert (low, high) == pytest.approx(hand_win_rate_interval(app, pair["interval"]))
            if pair["trades"] >= 2 and pair["profit_factor"] != "inf":
                pf_low, pf_high = (float(end) for end in pair["profit_factor_interval"])
                assert pf_low <= pair["profit_factor"] <= pf_high
    finally:
        app.close()
    assert sum(pair["trades"] > 0 for pair in pairs) >= 1
    assert sum(pair["pending"] for pair in pairs) >= 1  # the count is not trivially zero


def test_the_no_edge_badge_marks_a_blind_model_and_not_a_skilled_one(populated_env, capsys):
    with_metrics(populated_env, {"5m": BLIND, "1h": SKILLED})
    pairs = {pair["interval"]: pair for pair in status_json(capsys)}
    assert (
        pairs["5m"]["no_edge"] is True and "does not lie above 0.5" in pairs["5m"]["no_edge_reason"]
    )
    assert pairs["1h"]["no_edge"] is False
    assert pairs["1h"]["no_edge_reason"].startswith("hold-out AUC 0.700")
    shown = dict(zip(INTERVALS, cards(open_page("overview")), strict=True))
    assert "no edge" in shown["5m"] and "no edge" not in shown["1h"]


@pytest.mark.parametrize("page", ["timeframe", "models"])
def test_live_calibration_shows_beside_the_training_figures(populated_env, page):
    at = open_page(page)
    app = context(at)
    key = "pair_interval" if page == "timeframe" else "models_interval"
    at.selectbox(key=key).set_value("5m").run()
    assert not at.exception
    calibration = app.calibration(ASSET, "5m")
    assert calibration["live"]["predictions"] > 0  # the warm start's predictions are live ones
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["ECE at training"] == number(calibration["trained"]["ece"], 3)
    assert metrics["Live ECE"] == number(calibration["live"]["ece"], 3)
    assert any(
        f"{calibration['live']['predictions']} resolved predictions" in c.value for c in at.caption
    )


def test_the_setup_flag_on_snapshots_is_set_exactly_where_a_setup_opened(populated_env):
    app = Alpha12.open(settings=populated_settings(populated_env))
    flags = 0
    try:
        for interval in INTERVALS:
            flagged, _ = app.snapshot_page(
                SnapshotQuery(asset=ASSET, interval=interval, setup_generated=True),
                limit=100_000,
            )
            opened = app.trades(ASSET, interval, limit=100_000)
            assert set(flagged["ts"]) == set(opened["ts"]), interval
            assert len(opened) == opened["ts"].nunique()  # one setup per bar at most
            flags += len(flagged)
    finally:
        app.close()
    assert flags > 0
