r"""Check another framework's VAE against vae_numpy: same weights, input and noise, same numbers.

    fixture     one test case any framework can load: make_fixture, write_fixture, read_fixture
    comparison  compare / compare_files: the table, worst tensor first, and PASS/FAIL/INCOMPLETE
    causes      what a failing comparison means: the planted-bug diagnoses
    interop     parameters into PyTorch / Flax models, gradients and noise out of them
    testing     assert_matches_fixture, for a framework's own test suite

The names of fixture and comparison are importable from ``vae_numpy.crosscheck``; interop (which
patches torch and jax) and testing are imported by their module paths.
"""
from .comparison import (COMPARE_TOLERANCE_FLOAT32, COMPARE_TOLERANCE_FLOAT64, FAIL,
                         FORWARD_KEYS, INCOMPLETE, LOGVAR_HEADS, PASS, REQUIRED_KEYS,
                         TOLERANCE_FLOAT32, TOLERANCE_FLOAT64, TOLERANCES, Entry, Report,
                         compare, compare_files, diagnose, from_pytorch_layout,
                         normalize_candidate, reference_values, to_numpy, write_report)
from .fixture import (OPTIONAL_FIXTURE_KEYS, draw_data, expected_shapes, fixture_config,
                      fixture_params, make_fixture, read_fixture, validate_fixture,
                      write_fixture)

__all__ = [
    "make_fixture", "write_fixture", "read_fixture", "fixture_config", "fixture_params",
    "draw_data", "expected_shapes", "validate_fixture", "OPTIONAL_FIXTURE_KEYS",
    "compare", "compare_files", "write_report", "diagnose", "reference_values", "Report",
    "Entry", "normalize_candidate", "to_numpy", "from_pytorch_layout", "PASS", "FAIL",
    "INCOMPLETE", "LOGVAR_HEADS", "FORWARD_KEYS", "REQUIRED_KEYS", "TOLERANCES",
    "COMPARE_TOLERANCE_FLOAT64", "COMPARE_TOLERANCE_FLOAT32", "TOLERANCE_FLOAT64",
    "TOLERANCE_FLOAT32",
]
