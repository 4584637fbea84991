"""Incidents: window-level alerts grouped into one incident per fault episode, with a probable
cause, site events with inhibition, sensor-health tickets and severity by impact.

:mod:`.build` (grouping, the pure ``build_incidents``), :mod:`.policy` (config/incidents.yaml),
:mod:`.repository` (incidents in the alert database, lifecycle, pages), :mod:`.causes` and
:mod:`.signatures` (probable causes from config/causes.yaml). No Dagster import here.
"""
