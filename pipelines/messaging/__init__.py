"""The sending rules as small pure modules: encoding and segments, quiet hours, frequency caps,
template rendering, rate limiting and retry policy (DESIGN section 6).

Nothing here talks to a database, a provider or Dagster; the sender composes these.
"""
