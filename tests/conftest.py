"""Shared test settings.

hypothesis profiles, chosen with the environment variable VAE_NUMPY_HYPOTHESIS_PROFILE:
  dev       (default) few examples, fast feedback while editing
  ci        more examples, derandomized so a CI run is reproducible
  thorough  many examples, for a long run before a release
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


@pytest.fixture
def rng():
    """A fixed-seed generator, fresh for each test."""
    return np.random.default_rng(12345)
