"""Benchmarks and measurement scripts; run them as `python -m perf.<name>`."""
