"""Benchmarks behind `make bench`: the sender, the callback service and the stats engine."""
