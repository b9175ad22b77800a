"""The continuous-Bernoulli series near logit 0, against an independent high-precision evaluation.

Below ``|l| = CB_TAYLOR_BELOW[dtype]`` (1e-2 in float64, 0.3 in float32) the normalizer log C,
its derivative and the mean are Taylor series (the closed forms divide 0 by 0 at l = 0 and lose
digits near it). Here each is evaluated from its closed form in Python's ``decimal`` module with
60 significant digits, so the cancellation that forces the series costs nothing, and compared
with the code: in float64 to an absolute 1e-15 below the switch; dropping the last term of any
series fails this (it moves log C by 4.9e-11, the derivative by 2.1e-13 and the mean by 3.3e-15
at |l| = 1e-2). In float32, on both sides of its switch, to 8 float32 eps, which the float64
switch would fail. No torch needed.

``python tests/test_cb_series.py`` prints, for each dtype and candidate switch, the worst
absolute error of the three functions over 1e-4 <= |l| <= 4: the measurement behind
``CB_TAYLOR_BELOW``.

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
    switch = L.CB_TAYLOR_BELOW[np.dtype(np.float64)]
    assert switch == 1e-2
    assert all(abs(v) < switch for v in SERIES_LOGITS)
    assert all(abs(v) >= switch for v in CLOSED_LOGITS)
    assert L.CB_TAYLOR_BELOW[np.dtype(np.float32)] == FLOAT32_SWITCH


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


# --- float32: its own switch ------------------------------------------------------------------
#
# In float32 the closed forms' rounding error, about eps / |l| absolute, is 5e8 times larger, so
# they need a larger |l| before they beat the series: at the float64 switch 1e-2 the derivative's
# closed form is off by 1.4e-5 absolute (0.7% of its value). The worst error of the three
# functions over 1e-4 <= |l| <= 4, both sides of the switch, is 5.5e-7 (4.6 eps) at switch 0.3
# (`python tests/test_cb_series.py`); 8 eps (9.5e-7) bounds it, and fails switches of 1e-2 (the
# closed derivative) and 0.5 (the log C series, 5.1e-6).

FLOAT32_SWITCH = 0.3
FLOAT32_ABS = 8 * float(np.finfo(np.float32).eps)
FLOAT32_LOGITS = np.unique(np.concatenate(
    [np.geomspace(1e-4, 4.0, 160), np.linspace(0.2, 0.4, 41), np.linspace(0.01, 0.03, 21)]))
FLOAT32_LOGITS = np.concatenate([FLOAT32_LOGITS, -FLOAT32_LOGITS]).astype(np.float32)


def worst_errors(logits):
    """Worst |computed - reference| of (log C, d log C / dl, mean) over logits, and where."""
    got = np.stack([L.cb_log_norm(logits), L.cb_log_norm_grad(logits),
                    L.continuous_bernoulli_mean(logits)], axis=1).astype(np.float64)
    err = np.abs(got - np.array([reference(v) for v in logits]))  # (N, 3)
    return err.max(axis=0), logits[err.argmax(axis=0)]


def test_float32_switch_keeps_all_three_within_8_eps():
    worst, where = worst_errors(FLOAT32_LOGITS)
    for name, e, l in zip(("log C", "d log C / dl", "mean"), worst, where):
        assert e <= FLOAT32_ABS, f"float32 {name}: abs err {e:.2e} > {FLOAT32_ABS:.2e} at l = {l!r}"


@pytest.mark.parametrize("switch", [1e-2, 0.5])
def test_float32_bound_fails_a_switch_too_low_or_too_high(switch, monkeypatch):
    monkeypatch.setitem(L.CB_TAYLOR_BELOW, np.dtype(np.float32), switch)
    worst, _ = worst_errors(FLOAT32_LOGITS)
    assert worst.max() > FLOAT32_ABS, worst


def test_float32_and_float64_series_agree_below_the_float32_switch():
    # the same series in both dtypes: float32 evaluates the one float64 checks to 1e-15 above
    l = np.array([1e-3, -5e-3, 9e-3])
    for f in (L.cb_log_norm, L.cb_log_norm_grad, L.continuous_bernoulli_mean):
        got32 = f(l.astype(np.float32))
        assert got32.dtype == np.float32
        np.testing.assert_allclose(got32, f(l), rtol=2 * float(np.finfo(np.float32).eps))


def test_other_dtypes_are_refused_by_name():
    with pytest.raises(TypeError, match="logits has dtype float16"):
        L.cb_log_norm(np.zeros(3, dtype=np.float16))


def main():
    """Print the worst absolute error of the three functions per dtype and candidate switch."""
    grid = np.geomspace(1e-4, 4.0, 2000)
    chosen = dict(L.CB_TAYLOR_BELOW)
    for dtype, candidates in ((np.float64, (5e-3, 1e-2, 2e-2, 5e-2)),
                              (np.float32, (1e-2, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5))):
        logits = grid.astype(dtype)
        ref = np.array([reference(v) for v in logits])
        for switch in candidates:
            L.CB_TAYLOR_BELOW[np.dtype(dtype)] = switch
            got = np.stack([L.cb_log_norm(logits), L.cb_log_norm_grad(logits),
                            L.continuous_bernoulli_mean(logits)], axis=1).astype(np.float64)
            err = np.abs(got - ref).max(axis=0)
            rel = (np.abs(got - ref) / np.abs(ref)).max(axis=0)[1]
            print(f"{np.dtype(dtype).name} switch {switch:<6g} worst abs err: log C {err[0]:.1e}"
                  f"  d log C / dl {err[1]:.1e} (relative {rel:.1e})  mean {err[2]:.1e}")
    L.CB_TAYLOR_BELOW.update(chosen)


if __name__ == "__main__":
    main()
