"""Shared test settings.

hypothesis profiles, chosen with the environment variable VAE_NUMPY_HYPOTHESIS_PROFILE:
  dev       (default) few examples, fast feedback while editing
  ci        more examples, derandomized so a CI run is reproducible
  thorough  many examples, for a long run before a release

Tests marked ``figures`` write PNGs and need matplotlib (the ``demos`` extra); without it they
skip with a reason instead of failing.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=15, derandomize=True, **_COMMON)
settings.register_profile("ci", max_examples=40, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("VAE_NUMPY_HYPOTHESIS_PROFILE", "dev"))


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    if _has_matplotlib():
        return
    skip = pytest.mark.skip(reason="writes figures, which needs matplotlib: "
                                   "pip install matplotlib (or vae_numpy[demos])")
    for item in items:
        if "figures" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    """A fixed-seed generator, fresh for each test."""
    return np.random.default_rng(12345)
