"""Every page renders without an exception, on an empty store and on a populated one."""

import re

import pandas as pd
import pytest

from alpha12 import formatting, signals, ui
from alpha12.clock import WallClock
from alpha12.engine import ENGINE_STATE_KEY
from alpha12.store import Store
from alpha12.vocabulary import EngineState
from tests.app.helpers import INTERVALS, PAGES, context, open_page

TITLES = {page: page.title() for page in PAGES}


def test_overview_labels_the_replayed_market_and_shows_every_timeframe(app_env):
    at = open_page("overview")
    assert "REPLAYED market, not live" in at.warning[0].value
    assert [h.value for h in at.subheader][: len(INTERVALS)] == list(INTERVALS)
    cards = [m.value for m in at.markdown if "win rate" in m.value and "profit factor" in m.value]
    assert len(cards) == len(INTERVALS)  # the one asset's row
    assert all(card.startswith(ui.status_badge("no_model")) for card in cards)
    assert ui.status_badge("no_model") == ":gray-background[:gray[**:material/block: no model**]]"
    summary = [m.value for m in at.markdown if "trades, win rate" in m.value]
    assert len(summary) == len(INTERVALS)
    assert all(":gray[1 no model]" in cell for cell in summary)


@pytest.mark.parametrize("page", PAGES)
def test_page_on_an_empty_store(app_env, page):
    at = open_page(page)
    assert at.title[0].value == TITLES[page]


@pytest.mark.parametrize("page", PAGES)
def test_page_on_a_populated_store(populated_env, page):
    at = open_page(page)
    assert at.title[0].value == TITLES[page]


def test_the_system_page_shows_the_engine_state_heartbeat_age_and_clock(populated_env):
    """As another process sees a crashed engine: saved as running, its heartbeat 3 minutes
    old. The page says stalled, how old the heartbeat is and when it was, and the clock."""
    at = open_page("system")
    app = context(at)
    beat = WallClock().now() - pd.Timedelta(minutes=3)
    app.store.set_state(
        ENGINE_STATE_KEY, {"state": EngineState.RUNNING, "heartbeat_wall": str(beat)}
    )
    before = app.clock.now().floor("min")  # the replay clock runs at 600x
    at.run()
    after = app.clock.now()
    facts = [m.value for m in at.markdown]
    engine = next(f for f in facts if f.startswith("**Engine**"))
    assert f"**{EngineState.STALLED}**" in engine
    heartbeat = next(f for f in facts if f.startswith("**Heartbeat**"))
    assert re.search(r"\b3m \d\ds ago", heartbeat) and formatting.timestamp(beat) in heartbeat
    clock = next(f for f in facts if f.startswith("**Replay clock**"))
    shown = pd.Timestamp(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", clock).group(), tz="UTC")
    assert before <= shown <= after


def test_the_models_page_shows_shadow_setups_and_the_evidence_of_each_decision(app_env):
    store = Store(app_env / "storage.duckdb")
    opened = pd.Timestamp("2025-01-01 10:00", tz="UTC")
    store.insert_setups(
        pd.DataFrame(
            [
                {
                    **signals.Setup(
                        "BTC",
                        "5m",
                        opened,
                        1,
                        100.0,
                        99.0,
                        101.5,
                        1.0,
                        opened + pd.Timedelta(hours=1),
                        0.6,
                        2,
                        "timeframe",
                    ).as_row(),
                    "shadow": True,
                }
            ]
        )
    )
    store.rows(
        "INSERT INTO recalibrations (asset, interval, ts, trigger, action, evidence) "
        "VALUES ('BTC', '5m', ?, 'monitor', 'shadowed_challenger', 'held-out rows (12)')",
        [opened],
    )
    store.close()
    at = open_page("models")
    assert "Shadow setups" in [h.value for h in at.subheader]
    tables = [frame.value for frame in at.dataframe]
    assert any("probability" in t and t["model_version"].tolist() == [2] for t in tables)
    assert any("evidence" in t and t["evidence"].tolist() == ["held-out rows (12)"] for t in tables)
