r"""Assertions for a framework's own test suite (pytest, unittest): the cross-check as a test.

    from vae_numpy.crosscheck.testing import assert_matches_fixture

    def test_my_vae_matches_vae_numpy():
        ...                                    # load the fixture, run forward and backward
        assert_matches_fixture("case.npz", {"loss": loss, "grads": grads})

The assertion passes only on a PASS (the loss and every gradient compared and agreeing); a
FAIL or an INCOMPLETE raises AssertionError whose message is the whole report, likely causes
included, so the test log says what is wrong.
"""
import os

from .comparison import compare
from .fixture import read_fixture


def assert_matches_fixture(fixture, candidate, **options):
    r"""Raise AssertionError with the report unless ``compare(fixture, candidate)`` is a PASS.

    Parameters
    ----------
    fixture : a fixture dict, or the path of a fixture ``.npz``
    candidate : as for :func:`vae_numpy.crosscheck.compare`
    **options : passed to compare (``pytorch_layout``, ``dtype``, ``logvar_head``)

    Returns
    -------
    The Report (a PASS), for a test that wants to look further.
    """
    if isinstance(fixture, (str, os.PathLike)):
        fixture = read_fixture(fixture)
    report = compare(fixture, candidate, **options)
    if not report.passed:
        raise AssertionError(f"the candidate does not match the vae_numpy fixture "
                             f"({report.status}):\n{report}")
    return report
