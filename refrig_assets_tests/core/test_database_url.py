"""A plain postgresql:// URL uses the PostgreSQL driver the project installs."""

from refrig_assets.core.database import installed_driver_url


def test_a_plain_postgresql_url_uses_psycopg2_and_keeps_its_parts():
    url = installed_driver_url("postgresql://refrig:s3cret@db:5433/refrig_alerts")
    assert url.drivername == "postgresql+psycopg2"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "refrig",
        "s3cret",
        "db",
        5433,
        "refrig_alerts",
    )


def test_urls_naming_their_driver_and_sqlite_urls_are_left_alone():
    assert installed_driver_url("postgresql+psycopg://a@b/c").drivername == "postgresql+psycopg"
    assert installed_driver_url("sqlite:////tmp/alerts.db").drivername == "sqlite"
