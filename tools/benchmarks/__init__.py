"""Benchmark of the hourly path at fleet scale (``make bench``).

Runs the project's own steps (Dagster assets, the embedded feature engine) on a simulated hour
of a large fleet next to reference implementations of the feature step (vectorized pandas,
PySpark local mode) and the read floor, each step in a fresh process for clean peak-memory
numbers, and reports one table plus JSON. Tests never assert on time; this does the measuring.
"""
