"""What every page shares: its heading, the snapshot gate and the freshness note."""

from __future__ import annotations

import datetime as dt

import altair as alt
import polars as pl
import streamlit as st

from dashboards import data
from dashboards.format import ago, day, flow_label
from pipelines.flows import FLOWS

# After this long without a new snapshot, the daily run has probably stopped.
STALE_AFTER = dt.timedelta(hours=36)

EMPTY = (
    "**No data yet.** These pages read the snapshot that every successful daily run publishes "
    "(`{path}`), and {problem}. Run `make demo` first (a simulated shop: it builds the "
    "warehouse and publishes the snapshot), or `postpurchase run --from DAY --to DAY` on your "
    "own exports; then reload this page."
)


def page(title: str, caption: str) -> data.Snapshot:
    """The page's heading, then its snapshot; stops the page with a helpful note if none."""
    st.title(title)
    st.caption(caption)
    path = data.snapshot_path()
    try:
        snap = data.snapshot()
    except data.SnapshotUnreadable as exc:
        st.error(
            f"The snapshot cannot be read ({exc}). It is replaced whole by the next successful "
            "daily run; `postpurchase dashboard --publish` publishes one from the warehouse now."
        )
        st.stop()
    if snap is None:
        st.info(EMPTY.format(path=path, problem="there is none yet"))
        st.stop()
    if not data.has(snap, "ops.outbox") and not data.has(snap, "marts.order_attributions"):
        st.info(EMPTY.format(path=path, problem="the one there holds no models yet"))
        st.stop()
    return snap


def freshness() -> None:
    """In the sidebar: as of when the data is, and when it was published."""
    try:
        snap = data.snapshot()
    except data.SnapshotUnreadable:
        return
    if snap is None:
        st.sidebar.caption("No snapshot published yet.")
        return
    now = dt.datetime.now(dt.UTC)
    as_of = (
        f"{snap.as_of:%Y-%m-%d %H:%M} UTC (days up to {day(snap.as_of_date)})"
        if snap.as_of
        else "unknown"
    )
    st.sidebar.caption(
        f"Data as of **{as_of}**, published {ago(snap.published_at, now)} "
        f"({snap.published_at:%Y-%m-%d %H:%M} UTC)."
    )
    if now - snap.published_at > STALE_AFTER:
        st.sidebar.warning(
            f"This snapshot is {ago(snap.published_at, now).removesuffix(' ago')} old: "
            "has the daily run stopped?"
        )


def flow_colors() -> alt.Scale:
    """The same colour for a flow on every chart."""
    labels = [flow_label(f) for f in sorted(FLOWS, key=lambda f: (FLOWS[f].priority, f))]
    return alt.Scale(domain=labels, scheme="tableau10")


def zero_rule(axis: str = "x") -> alt.Chart:
    """A dashed line at zero, for charts of effects."""
    return (
        alt.Chart(pl.DataFrame({"zero": [0.0]}))
        .mark_rule(strokeDash=[4, 4], color="#555")
        .encode(**{axis: "zero:Q"})
    )
