"""Benchmarks, run on their own with ``python -m bench`` (never in the test run).

Every ``bench/*_bench.py`` module has ``run(args) -> list of rows``; ``bench.harness`` starts
servers in separate processes, measures calls/s, p50 and p99, and prints one table with ratios
to each group's baseline.
"""
