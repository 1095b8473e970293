"""Streamlit reports on the published snapshot: `streamlit run dashboards/streamlit_app.py`.

`streamlit_app.py` routes to the pages in `app_pages/` (UI only); `data.py` is the one module
that reads the snapshot; `format.py` and `planning.py` are plain functions the pages share.
"""
