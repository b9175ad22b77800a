"""The continuous-Bernoulli series near logit 0, against an independent high-precision evaluation.

Below ``|l| = CB_TAYLOR_BELOW = 1e-2`` the normalizer log C, its derivative and the mean are
Taylor series (the closed forms divide 0 by 0 at l = 0 and lose digits near it). Here each is
evaluated from its closed form in Python's ``decimal`` module with 60 significant digits, so
the cancellation that forces the series in float64 costs nothing, and compared with the float64
code to an absolute 1e-15. Dropping the last term of any series fails this: it moves log C by
4.9e-11, the derivative by 2.1e-13 and the mean by 3.3e-15 at |l| = 1e-2. No torch needed.

The closed forms:

    log C(l)      = log|l| - log tanh(|l| / 2)
    d log C / dl  = 1 / l - 1 / sinh(l)
    E[x | l]      = 1 / (2 tanh(l / 2)) + 1/2 - 1 / l
"""
from decimal import Decimal, localcontext

import numpy as np
import pytest

from vae_numpy import likelihoods as L

DIGITS = 60  # the closed forms lose at most ~5 digits to cancellation at |l| = 1e-3
SERIES_ABS = 1e-15  # the series' own truncation is ~3e-16 and float64 rounding ~1e-16
FLOAT64_EPS = float(np.finfo(np.float64).eps)

# logits on both sides of 0, spanning [1e-3, 1e-2) where the series are used, up to the
# largest float64 below the switch
SERIES_LOGITS = [s * v for s in (1.0, -1.0) for v in
                 [*np.geomspace(1e-3, 1e-2, 12, endpoint=False), np.nextafter(1e-2, 0)]]
# just above the switch, where the closed forms take over
CLOSED_LOGITS = [s * v for s in (1.0, -1.0) for v in (1e-2, 1.1e-2, 1.5e-2, 2e-2, 5e-2)]


def reference(logit):
    """(log C, d log C / dl, mean) at a float64 logit, by decimal arithmetic, as floats."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        l = Decimal(float(logit))            # the exact binary value of the float64 logit
        a = abs(l)
        e = a.exp()
        tanh_half = (e - 1) / (e + 1)        # tanh(|l| / 2)
        sinh = (e - 1 / e) / 2               # sinh(|l|)
        sign = 1 if l > 0 else -1
        log_c = a.ln() - tanh_half.ln()
        dlog_c = sign * (1 / a - 1 / sinh)
        mean = 1 / (2 * sign * tanh_half) + Decimal("0.5") - 1 / l
        return float(log_c), float(dlog_c), float(mean)


def computed(logit):
    a = np.array([logit])
    return (L.cb_log_norm(a)[0], L.cb_log_norm_grad(a)[0], L.continuous_bernoulli_mean(a)[0])


def test_switch_is_where_these_tests_look():
    assert L.CB_TAYLOR_BELOW == 1e-2
    assert all(abs(v) < L.CB_TAYLOR_BELOW for v in SERIES_LOGITS)
    assert all(abs(v) >= L.CB_TAYLOR_BELOW for v in CLOSED_LOGITS)


@pytest.mark.parametrize("logit", SERIES_LOGITS)
def test_series_match_high_precision_to_1e_15(logit):
    for name, got, want in zip(("log C", "d log C / dl", "mean"), computed(logit),
                               reference(logit)):
        assert abs(got - want) <= SERIES_ABS, f"{name} at l = {logit!r}: {got!r} vs {want!r}"


@pytest.mark.parametrize("logit", CLOSED_LOGITS)
def test_closed_forms_just_above_the_switch(logit):
    # The derivative and the mean subtract two terms of size 1/|l| (100 at the switch), so their
    # float64 rounding error is a few eps / |l|: measured 8.6e-15 (derivative, l = 1e-2) and
    # 1.1e-14 (mean, l = 1.1e-2). log C has no such cancellation. The bound 2 eps / |l| is
    # 4.4e-14 at the switch; a wrong closed form is off by far more.
    bounds = (SERIES_ABS, 2 * FLOAT64_EPS / abs(logit), 2 * FLOAT64_EPS / abs(logit))
    for name, got, want, bound in zip(("log C", "d log C / dl", "mean"), computed(logit),
                                      reference(logit), bounds):
        assert abs(got - want) <= bound, f"{name} at l = {logit!r}: {got!r} vs {want!r}"
