"""Monitoring: feature and score drift, the retraining trigger, and three-layer health.

Plain Python with no Dagster import; ``refrig_assets.defs.monitoring`` wires it into the graph.
"""
