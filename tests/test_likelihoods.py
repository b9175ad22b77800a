"""Decoder likelihoods: gradients, normalization, agreement with scipy, numerical range."""
import numpy as np
import pytest
from scipy import integrate, special, stats

from vae_numpy import likelihoods as L
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, check_vjp

QUAD_TOL = 1e-9  # scipy.integrate.quad on smooth one-dimensional densities reaches ~1e-12
SCIPY_RTOL = 1e-12  # two float64 evaluations of the same log-density


def data_for(name, rng, shape):
    if name == "bernoulli":
        return (rng.random(shape) < 0.5).astype(float)
    if name == "continuous_bernoulli":
        return rng.random(shape)
    return rng.standard_normal(shape)


def outputs_for(name, rng, shape):
    outs = [rng.uniform(-3, 3, shape)]
    if name == "gaussian_learned":
        outs.append(rng.uniform(-2, 1, shape))
    return outs


# --- gradients ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(L.LIKELIHOODS))
def test_backward_matches_finite_differences(name, rng):
    lik = L.LIKELIHOODS[name]
    x, outs = data_for(name, rng, (4, 6)), outputs_for(name, rng, (4, 6))
    dnll = rng.standard_normal(4)
    sigma = 0.7
    errors = check_vjp(lambda *o: lik.nll(x, o, sigma), outs,
                       lambda d: lik.nll_backward(d, x, outs, sigma), dnll)
    assert max(errors) <= TOLERANCE_FLOAT64, errors


def test_continuous_bernoulli_gradient_near_logit_zero(rng):
    # logits straddle 0 and the series/closed-form switch at |l| = CB_TAYLOR_BELOW
    logits = np.array([[-2e-2, -1e-2, -3e-3, -1e-7, 0.0, 1e-7, 4e-3, 1e-2, 1.5e-2]])
    x = rng.random(logits.shape)
    errors = check_vjp(lambda l: L.continuous_bernoulli_nll(x, l), [logits],
                       lambda d: L.continuous_bernoulli_nll_backward(d, x, logits),
                       np.array([1.0]))
    assert errors[0] <= TOLERANCE_FLOAT64


# --- normalization --------------------------------------------------------------------------

@pytest.mark.parametrize("logit", [-30.0, -2.0, 0.0, 0.3, 12.0])
def test_bernoulli_sums_to_one(logit):
    l = np.array([[logit]])
    total = sum(np.exp(-L.bernoulli_nll(np.array([[v]]), l)[0]) for v in (0.0, 1.0))
    assert abs(total - 1) <= 1e-15


@pytest.mark.parametrize("mean, sigma", [(0.0, 1.0), (2.5, 0.3), (-1.0, 4.0)])
def test_gaussian_integrates_to_one(mean, sigma):
    density = lambda x: np.exp(-L.gaussian_nll(np.array([[x]]), np.array([[mean]]), sigma)[0])
    total, _ = integrate.quad(density, -np.inf, np.inf)
    assert abs(total - 1) <= QUAD_TOL


@pytest.mark.parametrize("mean, logvar", [(0.0, 0.0), (1.5, -2.0), (-3.0, 1.2)])
def test_gaussian_learned_integrates_to_one(mean, logvar):
    m, lv = np.array([[mean]]), np.array([[logvar]])
    density = lambda x: np.exp(-L.gaussian_learned_nll(np.array([[x]]), m, lv)[0])
    total, _ = integrate.quad(density, -np.inf, np.inf)
    assert abs(total - 1) <= QUAD_TOL


CB_LOGITS = [-40.0, -5.0, -0.5, -1e-3, -1e-6, -3e-7, 0.0, 5e-7, 1e-6, 2e-2, 3.0, 25.0]


@pytest.mark.parametrize("logit", CB_LOGITS)
def test_continuous_bernoulli_integrates_to_one(logit):
    l = np.array([[logit]])
    density = lambda x: np.exp(-L.continuous_bernoulli_nll(np.array([[x]]), l)[0])
    total, _ = integrate.quad(density, 0, 1, epsabs=1e-13, epsrel=1e-13)
    assert abs(total - 1) <= QUAD_TOL, total


@pytest.mark.parametrize("logit", CB_LOGITS)
def test_continuous_bernoulli_normalizer_against_quadrature(logit):
    r"""1 / C = integral_0^1 lam**x (1 - lam)**(1 - x) dx, computed by quadrature from the
    definition (Loaiza-Ganem & Cunningham 2019, eq. 1), independently of the closed form."""
    log_lam, log_1m = special.log_expit(logit), special.log_expit(-logit)
    inv_c, _ = integrate.quad(lambda x: np.exp(x * log_lam + (1 - x) * log_1m), 0, 1,
                              epsabs=0, epsrel=1e-13)
    log_c = L.cb_log_norm(np.array([logit]))[0]
    assert abs(log_c - (-np.log(inv_c))) <= QUAD_TOL


@pytest.mark.parametrize("logit", CB_LOGITS)
def test_continuous_bernoulli_mean_against_quadrature(logit):
    l = np.array([[logit]])
    density = lambda x: x * np.exp(-L.continuous_bernoulli_nll(np.array([[x]]), l)[0])
    expected, _ = integrate.quad(density, 0, 1, epsabs=1e-13, epsrel=1e-13)
    assert abs(L.continuous_bernoulli_mean(l)[0, 0] - expected) <= QUAD_TOL


def test_continuous_bernoulli_at_logit_zero_is_uniform():
    x = np.linspace(0, 1, 7)[None, :]
    assert np.all(L.continuous_bernoulli_nll(x, np.zeros_like(x)) == 0)


# --- agreement with scipy.stats ------------------------------------------------------------

def test_bernoulli_equals_scipy(rng):
    x, logits = data_for("bernoulli", rng, (3, 8)), rng.uniform(-6, 6, (3, 8))
    ref = -stats.bernoulli.logpmf(x, special.expit(logits)).sum(axis=-1)
    np.testing.assert_allclose(L.bernoulli_nll(x, logits), ref, rtol=SCIPY_RTOL)


def test_gaussian_equals_scipy(rng):
    x, mean = rng.standard_normal((3, 8)), rng.standard_normal((3, 8))
    ref = -stats.norm.logpdf(x, mean, 0.4).sum(axis=-1)
    np.testing.assert_allclose(L.gaussian_nll(x, mean, 0.4), ref, rtol=SCIPY_RTOL)


def test_gaussian_learned_equals_scipy(rng):
    x, mean, logvar = (rng.standard_normal((3, 8)), rng.standard_normal((3, 8)),
                       rng.uniform(-3, 2, (3, 8)))
    ref = -stats.norm.logpdf(x, mean, np.exp(logvar / 2)).sum(axis=-1)
    np.testing.assert_allclose(L.gaussian_learned_nll(x, mean, logvar), ref, rtol=SCIPY_RTOL)


def test_gaussian_is_scaled_mse_plus_constant(rng):
    x, mean = rng.standard_normal((2, 10)), rng.standard_normal((2, 10))
    sigma, D = 0.5, 10
    mse = ((x - mean) ** 2).mean(axis=-1)
    expected = D * mse / (2 * sigma**2) + D * (np.log(sigma) + 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(L.gaussian_nll(x, mean, sigma), expected, rtol=1e-14)


# --- numerical range ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_exact_for_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 1e4, -1e4, 50.0, -50.0]], dtype=dtype)
    x = np.array([[1, 0, 0, 1, 1, 0]], dtype=dtype)
    # -log p: -x log sigmoid(l) - (1 - x) log sigmoid(-l), from scipy's log_expit
    ref = -(x * special.log_expit(logits) + (1 - x) * special.log_expit(-logits))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        nll = L.bernoulli_nll(x, logits)
        grad = L.bernoulli_nll_backward(np.ones(1, dtype), x, logits)
    assert nll.dtype == dtype and np.isfinite(nll).all() and np.isfinite(grad).all()
    np.testing.assert_allclose(nll, ref.astype(np.float64).sum(axis=-1),
                               rtol=np.finfo(dtype).eps)
    # d nll / d l = sigmoid(l) - x; sigmoid(-50) = 1.9e-22 is the only entry not 0 or +-1
    np.testing.assert_allclose(grad, [[0, 0, 1, -1, 0, 0]], rtol=0, atol=1e-21)


def test_continuous_bernoulli_finite_for_large_logits():
    logits = np.array([[-800.0, -60.0, 60.0, 800.0]])
    x = np.array([[0.1, 0.0, 1.0, 0.9]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        nll = L.continuous_bernoulli_nll(x, logits)
        grad = L.continuous_bernoulli_nll_backward(np.ones(1), x, logits)
    assert np.isfinite(nll).all() and np.isfinite(grad).all()


@pytest.mark.parametrize("name", sorted(L.LIKELIHOODS))
def test_likelihoods_keep_float32(name, rng):
    lik = L.LIKELIHOODS[name]
    x = data_for(name, rng, (2, 5)).astype(np.float32)
    outs = [o.astype(np.float32) for o in outputs_for(name, rng, (2, 5))]
    assert lik.nll(x, outs, 1.0).dtype == np.float32
    grads = lik.nll_backward(np.ones(2, np.float32), x, outs, 1.0)
    assert all(g.dtype == np.float32 for g in grads)
    assert lik.mean(outs, 1.0).dtype == np.float32


def test_unknown_likelihood_lists_choices():
    with pytest.raises(ValueError, match="choose one of"):
        L.get_likelihood("poisson")


# --- the likelihood objects -------------------------------------------------------------------

# name -> (formula functions the object must delegate to, support of x)
FORMULAS = {
    "bernoulli": ((L.bernoulli_nll, L.bernoulli_nll_backward, L.bernoulli_mean), (0.0, 1.0)),
    "continuous_bernoulli": ((L.continuous_bernoulli_nll, L.continuous_bernoulli_nll_backward,
                              L.continuous_bernoulli_mean), (0.0, 1.0)),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_one_head_objects_return_their_formula_functions_values(name, rng):
    (nll, nll_backward, mean), support = FORMULAS[name]
    lik = L.get_likelihood(name)
    x, (logits,) = data_for(name, rng, (3, 5)), outputs_for(name, rng, (3, 5))
    dnll = rng.standard_normal(3)
    assert lik.name == name and lik.heads == ("out",) and lik.support == support
    np.testing.assert_array_equal(lik.nll(x, (logits,), 0.3), nll(x, logits))
    (dlogits,) = lik.nll_backward(dnll, x, (logits,), 0.3)
    np.testing.assert_array_equal(dlogits, nll_backward(dnll, x, logits))
    np.testing.assert_array_equal(lik.mean((logits,), 0.3), mean(logits))


def test_gaussian_objects_use_sigma_and_the_logvar_head(rng):
    x, dnll = rng.standard_normal((3, 5)), rng.standard_normal(3)
    mean, logvar = outputs_for("gaussian_learned", rng, (3, 5))
    fixed, learned = L.get_likelihood("gaussian"), L.get_likelihood("gaussian_learned")
    assert fixed.support is None and learned.support is None
    assert fixed.heads == ("out",) and learned.heads == ("out", "out_logvar")
    np.testing.assert_array_equal(fixed.nll(x, (mean,), 0.3), L.gaussian_nll(x, mean, 0.3))
    np.testing.assert_array_equal(fixed.nll_backward(dnll, x, (mean,), 0.3)[0],
                                  L.gaussian_nll_backward(dnll, x, mean, 0.3))
    np.testing.assert_array_equal(learned.nll(x, (mean, logvar), 0.3),
                                  L.gaussian_learned_nll(x, mean, logvar))
    for got, want in zip(learned.nll_backward(dnll, x, (mean, logvar), 0.3),
                         L.gaussian_learned_nll_backward(dnll, x, mean, logvar)):
        np.testing.assert_array_equal(got, want)
    assert fixed.mean((mean,), 0.3) is mean and learned.mean((mean, logvar), 0.3) is mean
