"""Online scoring: ``refrig serve`` answers "score this device now" with the batch path's code.

:mod:`.inputs` (requests against the contracts, features), :mod:`.models` (serving versions and
hot reload), :mod:`.scorer` (one request's scores), :mod:`.metrics` (Prometheus),
:mod:`.service` (authentication, limits, health) and :mod:`.app` (FastAPI).
"""
