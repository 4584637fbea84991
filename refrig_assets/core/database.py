"""Database URLs as the project's installed drivers read them."""

from __future__ import annotations

import sqlalchemy as sa


def installed_driver_url(url: str | sa.URL) -> sa.URL:
    """``url`` with a plain ``postgresql://`` pinned to psycopg2, the driver the project
    installs (SQLAlchemy 2.1 would otherwise pick psycopg 3); other URLs unchanged."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg2")
    return parsed
