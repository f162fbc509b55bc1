"""alpha12's monitoring app: `streamlit run app.py`.

One alpha12 context (the store and the engine thread) is opened per server process and shared
by every browser session; this script labels the market, shows the warm start and routes to the
pages. ALPHA12_ENGINE=off opens the context without starting the engine (for tests).
"""

import logging
import os

import streamlit as st

from alpha12 import logs, ui
from alpha12.config import load_settings, settings_origin
from alpha12.errors import Alpha12Error
from alpha12.services import Alpha12
from alpha12.vocabulary import EngineState

# Read by the app, not settings: load_settings would reject them as unknown.
APP_VARIABLES = ("ALPHA12_ENGINE", ui.ADMIN_PASSWORD_VARIABLE, "ALPHA12_REQUIRE_BROWSER")


@st.cache_resource(on_release=Alpha12.close, show_spinner="Opening the alpha12 store…")
def open_context(variables: tuple[tuple[str, str], ...], engine: bool) -> Alpha12:
    """The shared context, keyed by the ALPHA12_* settings variables (so a test that points
    them at another store gets another context). Logging is configured from the same
    settings first, so the opening itself is logged."""
    settings = load_settings(env=dict(variables))
    logs.configure_from(settings)
    app = Alpha12.open(settings=settings, origin=settings_origin(env=dict(variables)))
    if engine:
        app.engine.start()
    return app


def settings_variables() -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (name, value)
            for name, value in os.environ.items()
            if name.startswith("ALPHA12_") and name not in APP_VARIABLES
        )
    )


@st.fragment(run_every=ui.REFRESH_SECONDS)
def market_banner(app: Alpha12) -> None:
    """The market label (replayed data is always said to be so) and the warm start's progress;
    a full rerun when the warm start ends, so every page shows its results."""
    clock = f"market time {app.clock.now():%Y-%m-%d %H:%M} UTC"
    if app.live:
        st.success(f"{app.market_label} · {clock}", icon=":material/sensors:")
    else:
        st.warning(f"**{app.market_label}** · {clock}", icon=":material/replay:")
    engine = app.system_status()
    if engine["state"] == EngineState.STALLED:
        st.error(
            f"The engine is stalled: its last heartbeat was "
            f"{ui.duration(engine['heartbeat_age_s'])} ago ({ui.timestamp(engine['heartbeat'])}). "
            "See the System page and the log.",
            icon=":material/heart_broken:",
        )
    warm = app.warm_start_progress()
    if warm is not None:
        st.progress(warm["progress"], text=f"Warm start: {warm['message']}")
    elif st.session_state.pop("warming_up", False):
        st.rerun()
    st.session_state["warming_up"] = warm is not None


st.set_page_config(page_title="alpha12", page_icon=":material/monitoring:", layout="wide")
try:
    context = open_context(
        settings_variables(), os.environ.get("ALPHA12_ENGINE", "on").lower() != "off"
    )
except Alpha12Error as error:
    logging.getLogger("alpha12.app").error("alpha12 cannot start: %s", error)
    st.error(f"alpha12 cannot start: {error}", icon=":material/error:")
    st.stop()
st.session_state[ui.CONTEXT_KEY] = context
page = ui.navigation()
market_banner(context)
ui.show_flash()
page.run()
