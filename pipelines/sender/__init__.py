"""The sender: due candidates decided at send time, rendered, and dispatched exactly once.

`decide` (pure rules), `compose` (text and links), `dispatch` (worker threads), `run`
(`send_due`, the one entry point) and `cli` (`postpurchase send` and `postpurchase why`).
"""
