"""Every page renders without an exception, on an empty store and on a populated one."""

import pandas as pd
import pytest

from alpha12 import signals, ui
from alpha12.store import Store
from tests.app.helpers import INTERVALS, PAGES, open_page

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
    store.cursor().execute(
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
