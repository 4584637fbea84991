"""The lifecycle service over the shared lifecycle world (support/lifecycle_world.py)."""

import pytest
from support.lifecycle_world import use_world

from refrig_assets.core.settings import get_settings
from refrig_assets.lifecycle.audit import AuditTrail, lifecycle_db_url
from refrig_assets.lifecycle.promotion import ModelLifecycle
from refrig_assets.training.registry import ModelRegistry


@pytest.fixture
def lc(tmp_path, monkeypatch):
    """A ModelLifecycle on the lifecycle world's registry and audit trail."""
    use_world(tmp_path, monkeypatch)
    s = get_settings()
    registry = ModelRegistry(s.mlflow_tracking_uri, s.mlflow_artifacts_dir)
    service = ModelLifecycle(registry, AuditTrail(lifecycle_db_url(s.alerts_db_url)), s.models_dir)
    yield service
    service.audit.close()
