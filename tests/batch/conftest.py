"""One local Ray instance for the batch tests, shut down after them (the Ray Serve tests start their own)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def local_ray():
    """One small local Ray instance per module (starting one takes 10-30 s here)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    # start every actor of a pool before dispatching: on a loaded machine the second actor can
    # otherwise come up after the first has taken all the batches
    context.wait_for_min_actors_s = 300
    yield ray
    ray.shutdown()
