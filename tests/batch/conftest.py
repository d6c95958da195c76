"""One local Ray instance per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_ray():
    """One small local Ray instance for the whole session (starting one takes 10-30 s here)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
