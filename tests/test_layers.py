"""Dense layer and activations: each backward against central differences in float64."""
import numpy as np
import pytest

from vae_numpy import layers
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, check_vjp

# Inputs for kinked activations stay this far from 0, so a finite-difference step
# (1e-5) never crosses the kink and the derivative is the one-sided value on both sides.
KINK_MARGIN = 0.1


def away_from_zero(rng, shape):
    """Uniform in [-2, -KINK_MARGIN] U [KINK_MARGIN, 2]: O(1) values, no kink inside a step."""
    magnitude = rng.uniform(KINK_MARGIN, 2.0, shape)
    return magnitude * rng.choice([-1.0, 1.0], shape)


def test_dense_backward_matches_finite_differences(rng):
    x, W, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((4, 3))
    _, cache = layers.dense_forward(x, W, b)
    errors = check_vjp(lambda x, W, b: layers.dense_forward(x, W, b)[0], [x, W, b],
                       lambda d: layers.dense_backward(d, cache), dout)
    assert max(errors) <= TOLERANCE_FLOAT64, dict(zip("xWb", errors))


def test_dense_is_x_at_W_plus_b_with_W_in_out_layout():
    x = np.array([[1.0, 2.0]])
    W = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, 4.0]])  # (in=2, out=3)
    out, _ = layers.dense_forward(x, W, np.array([0.5, 0.5, 0.5]))
    np.testing.assert_array_equal(out, [[1.5, 2.5, 11.5]])


@pytest.mark.parametrize("name", sorted(layers.ACTIVATIONS))
def test_activation_backward_matches_finite_differences(name, rng):
    forward, backward = layers.ACTIVATIONS[name]
    a = away_from_zero(rng, (6, 7))
    dh = rng.standard_normal((6, 7))
    _, cache = forward(a)
    [error] = check_vjp(lambda a: forward(a)[0], [a], lambda d: backward(d, cache), dh)
    assert error <= TOLERANCE_FLOAT64, f"{name}: rel err {error:.2e}"


REFERENCE_VALUES = {  # activation(a) at a = -2, 0.5, written from the definitions
    "relu": [0.0, 0.5],
    "leaky_relu": [-0.02, 0.5],
    "tanh": [np.tanh(-2.0), np.tanh(0.5)],
    "sigmoid": [1 / (1 + np.exp(2.0)), 1 / (1 + np.exp(-0.5))],
    "softplus": [np.log1p(np.exp(-2.0)), np.log1p(np.exp(0.5))],
    "identity": [-2.0, 0.5],
}


@pytest.mark.parametrize("name", sorted(layers.ACTIVATIONS))
def test_activation_values(name):
    h, _ = layers.ACTIVATIONS[name][0](np.array([-2.0, 0.5]))
    np.testing.assert_allclose(h, REFERENCE_VALUES[name], rtol=1e-15)


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "tanh"])
def test_saturating_activations_do_not_overflow(name):
    forward, backward = layers.ACTIVATIONS[name]
    a = np.array([-1e4, 1e4])
    # underflow to 0 (exp(-1e4)) is the exact answer rounded; overflow or NaN is not
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        h, cache = forward(a)
        da = backward(np.ones(2), cache)
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(da))


@pytest.mark.parametrize("name", sorted(layers.ACTIVATIONS))
def test_activations_keep_float32(name):
    forward, backward = layers.ACTIVATIONS[name]
    a = np.linspace(-2, 2, 5, dtype=np.float32)
    h, cache = forward(a)
    assert h.dtype == np.float32
    assert backward(np.ones_like(a), cache).dtype == np.float32


def test_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="choose one of"):
        layers.activation_pair("gelu")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_softplus_equals_logaddexp(dtype):
    a = np.concatenate([np.linspace(-60, 60, 2001), [-1e4, 1e4, 0.0]]).astype(dtype)
    tol = 2 * np.finfo(dtype).eps  # both are within an ulp or so of the exact value
    np.testing.assert_allclose(layers.softplus(a), np.logaddexp(0, a), rtol=tol, atol=0)
