"""The readiness dashboard: `switchover dashboard` runs this file with Streamlit.

It reads the readiness API at SWITCHOVER_URL with the viewer token SWITCHOVER_TOKEN.
"""

from __future__ import annotations

import streamlit as st

from dashboard.client import Connection
from dashboard.data import refresh
from dashboard.theme import API, SELF_HOSTED, SIDE_COLOURS

st.set_page_config(page_title="Switchover readiness", page_icon="🚦", layout="wide")

pages = [
    st.Page("views/overview.py", title="Overview", icon=":material/traffic:", default=True),
    st.Page(
        "views/use_case.py",
        title="Use case details",
        icon=":material/query_stats:",
        url_path="use-case",
    ),
]
page = st.navigation(pages)

with st.sidebar:
    connection = Connection.from_environment()
    st.caption(f"Reading the Switchover service at {connection.url}")
    st.markdown(
        f'<span style="color:{SIDE_COLOURS[API]}">■</span> {API} model &nbsp; '
        f'<span style="color:{SIDE_COLOURS[SELF_HOSTED]}">■</span> {SELF_HOSTED} model',
        unsafe_allow_html=True,
    )
    if st.button("Refresh now", help="Figures are re-read every 20 seconds anyway"):
        refresh()

page.run()
