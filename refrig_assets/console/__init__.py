"""The operator console: alerts, devices, maintenance and feedback in a browser, plus a JSON API.

Start it with ``refrig console``; build the app with :func:`create_app`.
"""

from refrig_assets.console.app import create_app

__all__ = ["create_app"]
