"""Streaming threshold rules: acute faults caught from newly landed readings within seconds.

The rules, their windows and per-device thresholds are declared in
``config/streaming.yaml`` (the rules) and ``contracts/device_registry.yaml`` (threshold columns);
:mod:`~refrig_assets.streaming.engine` evaluates them with numpy over one batch of readings plus
the last minutes of each device kept in a small state file, so windows span file boundaries.
Nothing here imports Dagster: the sensor in ``refrig_assets.defs.streaming`` only calls
:func:`~refrig_assets.streaming.tick.process_landed_files`.
"""
