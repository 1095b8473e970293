"""The callback service: Plivo delivery receipts and replies, STOP, surveys and link clicks.

It never opens the warehouse. Every accepted event goes to its own append-only log under
`data/events/log/` (flushed to disk before the answer); a sensor turns sealed log segments
into landing files, which the normal ingest loads.
"""
