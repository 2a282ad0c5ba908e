"""Overview: every use case's verdict, evidence, deciding criterion and time to a decision."""

from __future__ import annotations

import streamlit as st

from dashboard.charts import overview_chart
from dashboard.client import ApiError, Connection
from dashboard.data import Api
from dashboard.frames import overview_frame
from dashboard.theme import VERDICT_MEANING, VERDICT_WORDS, verdict_badge

st.title("Is the self-hosted model ready?")
st.caption(
    "Each use case mirrors part of its traffic to the self-hosted model; success criteria "
    "turn the evidence into a verdict."
)

api = Api(Connection.from_environment())
try:
    frame = overview_frame(api.use_cases(), api.readiness_all(), st.context.timezone)
except ApiError as exc:
    st.error(f"The readiness figures could not be loaded. {exc}")
    st.stop()

if frame.empty:
    st.info(
        "No use cases are configured yet. Add one to switchover.yaml (its `use_cases:` section) "
        "and restart the service."
    )
    st.stop()

counts = frame["verdict"].value_counts()
for column, verdict in zip(st.columns(3), VERDICT_WORDS, strict=True):
    column.metric(
        f"{VERDICT_WORDS[verdict]}",
        int(counts.get(verdict, 0)),
        help=VERDICT_MEANING[verdict],
    )

for row in frame.itertuples(index=False):
    with st.container(border=True):
        name, details, figures = st.columns([3, 1, 4])
        name.markdown(
            f"### {row.use_case} &nbsp; {verdict_badge(str(row.verdict))}",
            unsafe_allow_html=True,
        )
        name.caption(f"{row.models} · {row.mode}, {row.sample_rate:.0%} of traffic mirrored")
        details.metric("request pairs", f"{row.pairs:,}")
        figures.markdown(f"**Decided by:** {row.deciding}  \n**Time to a decision:** {row.eta}")
        figures.page_link(
            "views/use_case.py",
            label="Criteria, latency, quality, cost and worst pairs",
            icon=":material/arrow_forward:",
            query_params={"use_case": str(row.use_case)},
        )

if frame["pairs"].sum() > 0:
    st.subheader("Evidence collected")
    st.altair_chart(overview_chart(frame), width="stretch")
else:
    st.info(
        "No request pairs captured yet: the verdicts fill in once traffic flows through the proxy."
    )
