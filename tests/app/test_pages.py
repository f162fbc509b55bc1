"""Every page renders without an exception, on an empty store and on a populated one."""

import pytest

from alpha12 import ui
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
