"""Model leaderboard & promotion dashboard: ``streamlit run app.py``.

Dispatches to the pages; the sidebar holds the scope and who is deciding, nothing else. In
team mode (``[auth]`` in the secrets file) nothing is shown before sign-in.
"""

from __future__ import annotations

import streamlit as st

from promotion.scopes import Scope
from views._common import (
    APP_DIR,
    current_user,
    default_user,
    demo_build,
    ensure_demo_zoo,
    identity_sidebar,
    one_fingerprint_per_run,
    scopes,
    sign_in_page,
    store_ready,
    team,
)

# Icons are a local file and Material names, not emoji: validating an emoji loads Streamlit's
# emoji catalogue, and a Material favicon is fetched from Google's servers.
st.set_page_config(page_title="Model promotion", page_icon=APP_DIR / "views" / "favicon.svg",
                   layout="wide")

if team() and not current_user():  # team mode: nothing is shown before sign-in
    sign_in_page()
    st.stop()
ensure_demo_zoo()


def _copy(widget_key: str, state_key: str) -> None:
    st.session_state[state_key] = st.session_state[widget_key]


@st.fragment(run_every=2)
def _demo_progress() -> None:
    """The demo scopes still building behind the first page: a bar that stays in view, and
    a rerun of the whole app when they are ready, so they join the scope picker."""
    build = demo_build()
    if build.error:
        st.error(build.error)
    if build.pending:
        st.session_state["demo_waiting"] = True
        st.progress(build.fraction, text=f"Building the other demo scopes "
                                         f"({', '.join(build.pending)}): "
                                         f"{build.progress_text()}")
    elif st.session_state.pop("demo_waiting", False):
        st.rerun(scope="app")


with one_fingerprint_per_run():  # every page asks for the scope's file fingerprint
    found = scopes()
    usable = [s.name for s in found if isinstance(s, Scope)]
    # The chosen scope and user live under their own keys, not the widgets' keys: a widget's
    # state is dropped on any run that does not draw it, a plain key is kept for the session.
    if st.session_state.get("scope") not in usable:
        wanted = st.query_params.get("scope")
        first = demo_build().first  # on a first start, the demo's most telling scope
        preferred = first if first in usable else (usable[0] if usable else None)
        st.session_state["scope"] = wanted if wanted in usable else preferred
    if "user" not in st.session_state and not team():
        st.session_state["user"] = st.query_params.get("user") or default_user()

    with st.sidebar:
        if usable:
            st.selectbox("Scope", usable, index=usable.index(st.session_state["scope"]),
                         key="scope_picker", on_change=_copy, args=("scope_picker", "scope"))
            st.query_params["scope"] = st.session_state["scope"]
        if team():
            identity_sidebar()
        else:
            st.text_input("Your name", value=st.session_state["user"], key="user_field",
                          on_change=_copy, args=("user_field", "user"),
                          help="Recorded with every decision you make.")
            st.caption("local mode: names are not verified")
            if current_user():
                st.query_params["user"] = current_user()
        _demo_progress()

    page = st.navigation([
        st.Page("views/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:",
                default=True),
        st.Page("views/explorer.py", title="Model Explorer", icon=":material/search:"),
        st.Page("views/comparison.py", title="Comparison", icon=":material/bar_chart:"),
        st.Page("views/lifecycle.py", title="Lifecycle", icon=":material/account_balance:"),
        st.Page("views/monitoring.py", title="Monitoring", icon=":material/monitoring:"),
        *([st.Page("views/roles.py", title="Roles", icon=":material/badge:")] if team() else []),
    ])
    if store_ready():  # a store removed or replaced under the app: say so, show nothing stale
        page.run()
