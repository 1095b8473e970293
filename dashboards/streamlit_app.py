"""The dashboards' router: `streamlit run dashboards/streamlit_app.py` (or `make dashboard`).

Pages live in app_pages/ and hold UI only; they read the published snapshot through
dashboards/data.py, never the warehouse, so they keep working while the pipeline runs.
"""

import sys
from pathlib import Path

import streamlit as st

# Run by path, Streamlit puts this folder on sys.path; the pages import `dashboards.*` and
# `pipelines.*` from the repository root.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from dashboards import ui  # noqa: E402

st.set_page_config(page_title="Post-purchase SMS", page_icon=":material/sms:", layout="wide")

PAGES = Path(__file__).resolve().parent / "app_pages"
navigation = st.navigation(
    [
        st.Page(PAGES / "overview.py", title="Overview", icon=":material/insights:", default=True),
        st.Page(
            PAGES / "experiments.py",
            title="Experiments",
            icon=":material/science:",
            url_path="experiments",
        ),
        st.Page(
            PAGES / "flow_health.py",
            title="Flow health",
            icon=":material/monitor_heart:",
            url_path="flow-health",
        ),
        st.Page(
            PAGES / "replenishment.py",
            title="Replenishment",
            icon=":material/autorenew:",
            url_path="replenishment",
        ),
        st.Page(
            PAGES / "planner.py",
            title="Experiment planner",
            icon=":material/calculate:",
            url_path="planner",
        ),
    ]
)
ui.freshness()
navigation.run()
