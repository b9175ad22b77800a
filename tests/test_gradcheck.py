"""Checking the checker: it passes right gradients and FAILS on slightly wrong ones."""
import numpy as np
import pytest

import vae_numpy as vn
from vae_numpy import gradcheck
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, check_params, check_vjp, failures

WRONG_BY = 1e-4  # a relative error 1000x above the tolerance must be caught


@pytest.fixture
def model_case():
    cfg = vn.VAEConfig(input_dim=5, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,),
                       activation="tanh", likelihood="bernoulli", beta=0.5)
    rng = np.random.default_rng(0)
    params = vn.init_params(cfg, rng)
    x = (rng.random((3, 5)) < 0.5).astype(float)
    eps = rng.standard_normal((3, 2))
    _, grads, _ = vn.loss_and_grads(params, x, eps, cfg)
    return params, grads, lambda: vn.loss_and_grads(params, x, eps, cfg)[0]


def test_checker_passes_the_right_gradient(model_case):
    params, grads, loss_fn = model_case
    assert not failures(check_params(loss_fn, params, grads))


@pytest.mark.parametrize("name", ["enc.0.W", "enc.logvar.b", "dec.out.W"])
def test_checker_fails_a_gradient_scaled_by_one_plus_1e_4(model_case, name):
    params, grads, loss_fn = model_case
    wrong = dict(grads, **{name: grads[name] * (1 + WRONG_BY)})
    messages = failures(check_params(loss_fn, params, wrong))
    assert len(messages) == 1 and messages[0].startswith(f"grad of {name}: rel err")


def test_checker_fails_one_entry_off_by_1e_4_of_the_tensor_scale(model_case):
    params, grads, loss_fn = model_case
    wrong = {k: v.copy() for k, v in grads.items()}
    wrong["dec.0.b"][1] += WRONG_BY * np.abs(grads["dec.0.b"]).max()
    errors = check_params(loss_fn, params, wrong)
    assert errors["dec.0.b"] > TOLERANCE_FLOAT64
    assert [k for k, e in errors.items() if e > TOLERANCE_FLOAT64] == ["dec.0.b"]


def test_check_vjp_on_a_users_function():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    forward = lambda a, b: np.sin(a) * b
    right = lambda d: (d * np.cos(a) * b, d * np.sin(a))
    wrong = lambda d: (d * np.cos(a) * b * (1 + WRONG_BY), d * np.sin(a))
    assert max(check_vjp(forward, [a, b], right, dout)) <= TOLERANCE_FLOAT64
    errors = check_vjp(forward, [a, b], wrong, dout)
    assert errors[0] > TOLERANCE_FLOAT64 and errors[1] <= TOLERANCE_FLOAT64


def test_numerical_gradient_restores_the_array_exactly():
    a = np.random.default_rng(2).standard_normal(6)
    before = a.copy()
    gradcheck.numerical_gradient(lambda: np.sum(a**3), a)
    assert np.array_equal(a, before)


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        gradcheck.numerical_gradient(lambda: 0.0, np.zeros(3, np.float32))


def test_rel_error_is_relative_to_tensor_scale():
    assert gradcheck.rel_error([1.0, 1e-12], [1.0, 0.0]) == pytest.approx(1e-12)
    assert gradcheck.rel_error([2.0, 0.0], [1.0, 0.0]) == 0.5
    assert gradcheck.rel_error([0.0], [0.0]) == 0.0


def test_check_params_requires_matching_keys(model_case):
    params, grads, loss_fn = model_case
    with pytest.raises(ValueError, match="missing"):
        check_params(loss_fn, params, {k: v for k, v in grads.items() if k != "enc.0.W"})
