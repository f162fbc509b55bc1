"""What every page shares in a session: the process's alpha12 facade, the navigation, a
flash message that survives a rerun, and the admin check behind every mutating control."""

from __future__ import annotations

import hmac
import os

import streamlit as st

from alpha12.services import Alpha12

CONTEXT_KEY = "alpha12"  # where app.py leaves the shared context for the pages
ADMIN_PASSWORD_VARIABLE = "ALPHA12_ADMIN_PASSWORD"
WRONG_PASSWORD = "Wrong or missing admin password: nothing was changed."
REFRESH_SECONDS = 3


def context() -> Alpha12:
    """The process-wide alpha12 context app.py opened for this run."""
    if CONTEXT_KEY not in st.session_state:
        # Until app.py has called st.navigation once, Streamlit serves a file of pages/ on its
        # own (its legacy multipage mode), e.g. a bookmarked page as a new server's first
        # request: register the pages and run again, through app.py this time.
        navigation()
        st.rerun()
    return st.session_state[CONTEXT_KEY]


def navigation():
    """The app's pages, as a navigation bar at the top; returns the page to run."""
    return st.navigation(
        [
            st.Page(
                "pages/overview.py", title="Overview", icon=":material/grid_view:", default=True
            ),
            st.Page("pages/timeframe.py", title="Timeframe", icon=":material/query_stats:"),
            st.Page("pages/snapshots.py", title="Snapshots", icon=":material/table_rows:"),
            st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
            st.Page("pages/lab.py", title="Lab", icon=":material/science:"),
            st.Page("pages/system.py", title="System", icon=":material/settings:"),
        ],
        position="top",
    )


def flash(message: str) -> None:
    """A success message for the next run (shown by show_flash), to survive a st.rerun."""
    st.session_state["flash"] = message


def show_flash() -> None:
    if message := st.session_state.pop("flash", None):
        st.success(message, icon=":material/check_circle:")


def admin_required() -> bool:
    return bool(os.environ.get(ADMIN_PASSWORD_VARIABLE))


def authorized(password: str | None) -> bool:
    """True when no admin password is set, or `password` is it (compared in constant time)."""
    expected = os.environ.get(ADMIN_PASSWORD_VARIABLE)
    if not expected:
        return True
    return hmac.compare_digest((password or "").encode(), expected.encode())


def confirmed_action(key: str, label: str, prompt: str) -> bool:
    """A button that asks for confirmation (and the admin password when one is set); True on
    the run after the user confirmed and was authorised."""
    state = st.session_state
    st.button(label, key=f"{key}:ask", on_click=state.__setitem__, args=(f"{key}:open", True))
    if state.pop(f"{key}:done", False):
        return True
    if state.get(f"{key}:open"):
        with st.container(border=True):
            st.markdown(prompt)
            if admin_required():
                st.text_input("Admin password", type="password", key=f"{key}:password")
            yes, no = st.columns(2)
            yes.button(
                "Confirm", key=f"{key}:confirm", type="primary", on_click=_confirm, args=(key,)
            )
            no.button(
                "Cancel",
                key=f"{key}:cancel",
                on_click=state.__setitem__,
                args=(f"{key}:open", False),
            )
            if state.pop(f"{key}:refused", False):
                st.error(WRONG_PASSWORD)
    return False


def _confirm(key: str) -> None:
    state = st.session_state
    if authorized(state.pop(f"{key}:password", None)):
        state[f"{key}:open"] = False
        state[f"{key}:done"] = True
    else:
        state[f"{key}:refused"] = True
