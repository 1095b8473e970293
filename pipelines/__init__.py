"""Post-purchase SMS flows: the Python package and Dagster code location."""
