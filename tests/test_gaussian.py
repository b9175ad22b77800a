"""Reparameterization, analytic KL and their gradients: finite differences and Monte Carlo.

Monte Carlo checks use a fixed seed and state their bound in standard errors (SE). With a
bound of 4 SE, a correct formula fails with probability about 6e-5 per check.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from vae_numpy import gaussian
from vae_numpy.estimators import variance_as_std_sample
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, check_vjp

N_SE = 4  # Monte Carlo bound, in standard errors
N_MC = 400_000  # samples per Monte Carlo check: 4 SE < 1% of a typical KL (see the power test)

# Realistic encoder outputs: means of a few units, standard deviations from 0.14 to 2.7.
MU_RANGE, LOGVAR_RANGE = (-3.0, 3.0), (-4.0, 2.0)


def gaussian_params(rng, B, J):
    mu = rng.uniform(*MU_RANGE, (B, J))
    logvar = rng.uniform(*LOGVAR_RANGE, (B, J))
    return mu, logvar


# --- finite differences ---------------------------------------------------------------------

def test_reparameterize_backward_matches_finite_differences(rng):
    mu, logvar = gaussian_params(rng, 4, 3)
    eps, dz = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    _, cache = gaussian.reparameterize_forward(mu, logvar, eps)
    errors = check_vjp(lambda mu, logvar: gaussian.reparameterize_forward(mu, logvar, eps)[0],
                       [mu, logvar], lambda d: gaussian.reparameterize_backward(d, cache), dz)
    assert max(errors) <= TOLERANCE_FLOAT64, errors


def test_kl_backward_matches_finite_differences(rng):
    mu, logvar = gaussian_params(rng, 5, 4)
    dkl = rng.standard_normal(5)
    errors = check_vjp(gaussian.kl_standard_normal, [mu, logvar],
                       lambda d: gaussian.kl_standard_normal_backward(d, mu, logvar), dkl)
    assert max(errors) <= TOLERANCE_FLOAT64, errors


# --- the KL formula ---------------------------------------------------------------------------

def test_kl_equals_textbook_values():
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2) / 2 - 1/2, written independently
    m, s = 1.5, 0.5
    expected = np.log(1 / s) + (s**2 + m**2) / 2 - 0.5
    kl = gaussian.kl_standard_normal(np.array([[m]]), np.array([[np.log(s**2)]]))
    np.testing.assert_allclose(kl, [expected], rtol=1e-14)


def monte_carlo_kl(mu, logvar, eps, sampler=gaussian.reparameterize_forward):
    """mean and SE of log q(z) - log p(z), z from the sampler, densities from scipy."""
    z = sampler(mu, logvar, eps)[0]  # (N, J)
    log_q = stats.norm.logpdf(z, mu, np.sqrt(np.exp(logvar))).sum(axis=-1)
    log_p = stats.norm.logpdf(z).sum(axis=-1)
    diff = log_q - log_p
    return diff.mean(), diff.std(ddof=1) / np.sqrt(len(diff))


@given(J=st.integers(1, 16), seed=st.integers(0, 2**32 - 1))
def test_kl_equals_monte_carlo_estimate(J, seed):
    rng = np.random.default_rng(seed)
    mu, logvar = gaussian_params(rng, 1, J)
    eps = rng.standard_normal((N_MC, J))
    estimate, se = monte_carlo_kl(mu, logvar, eps)
    kl = gaussian.kl_standard_normal(mu, logvar)[0]
    assert abs(kl - estimate) <= N_SE * se, f"KL {kl} vs MC {estimate} +- {se}"


POWER_CASES = [  # (mu, logvar) of the shape a trained encoder produces, J = 1, 4 and 16
    ([1.0], [-2.0]),
    ([0.3, -1.2, 0.8, 0.0], [-2.0, -0.5, -3.0, 0.5]),
    (list(np.linspace(-1.5, 1.5, 16)), list(np.linspace(-3.0, 0.5, 16))),
]


@pytest.mark.parametrize("mu, logvar", POWER_CASES)
def test_monte_carlo_check_detects_a_one_percent_error(mu, logvar, rng):
    mu, logvar = np.array([mu]), np.array([logvar])
    eps = rng.standard_normal((N_MC, mu.shape[1]))
    estimate, se = monte_carlo_kl(mu, logvar, eps)
    kl = gaussian.kl_standard_normal(mu, logvar)[0]
    assert abs(kl - estimate) <= N_SE * se
    assert abs(1.01 * kl - estimate) > N_SE * se, "the check could not see a 1% error"
    assert abs(0.99 * kl - estimate) > N_SE * se, "the check could not see a 1% error"


@pytest.mark.parametrize("mu, logvar", POWER_CASES)
def test_monte_carlo_check_catches_variance_as_std_sampler(mu, logvar, rng):
    mu, logvar = np.array([mu]), np.array([logvar])
    eps = rng.standard_normal((N_MC, mu.shape[1]))
    buggy = lambda mu, logvar, eps: (variance_as_std_sample(mu, logvar, eps), None)
    estimate, se = monte_carlo_kl(mu, logvar, eps, sampler=buggy)
    kl = gaussian.kl_standard_normal(mu, logvar)[0]
    assert abs(kl - estimate) > N_SE * se


# Away from the minimum the KL is positive; these bounds keep its float64 value well above 0.
NONZERO = st.floats(1e-6, 5.0) | st.floats(-5.0, -1e-6)


@given(mu=NONZERO, logvar=NONZERO, which=st.sampled_from(["mu", "logvar", "both"]))
def test_kl_is_positive_away_from_the_prior(mu, logvar, which):
    mu_ = np.array([[mu if which != "logvar" else 0.0, 0.0]])
    logvar_ = np.array([[logvar if which != "mu" else 0.0, 0.0]])
    assert gaussian.kl_standard_normal(mu_, logvar_)[0] > 0


def test_kl_is_zero_at_the_prior():
    assert gaussian.kl_standard_normal(np.zeros((3, 5)), np.zeros((3, 5))).tolist() == [0, 0, 0]


# --- the sampler ----------------------------------------------------------------------------

def test_sampler_moments(rng):
    mu = np.array([[-2.0, 0.0, 0.7, 3.0]])
    logvar = np.array([[-3.0, 1.5, -0.7, 0.8]])  # away from 0, where std and var differ
    z, _ = gaussian.reparameterize_forward(mu, logvar, rng.standard_normal((N_MC, 4)))
    var = np.exp(logvar[0])
    mean_se = np.sqrt(var / N_MC)
    var_se = var * np.sqrt(2 / (N_MC - 1))  # SE of a normal sample variance
    assert np.all(np.abs(z.mean(axis=0) - mu[0]) <= N_SE * mean_se)
    assert np.all(np.abs(z.var(axis=0, ddof=1) - var) <= N_SE * var_se)


def test_std_is_exp_of_half_logvar():
    np.testing.assert_allclose(gaussian.std_from_logvar(np.log([4.0, 0.25])), [2.0, 0.5],
                               rtol=1e-15)


# --- the pathwise gradient ------------------------------------------------------------------

@pytest.mark.parametrize("a", [0.7, -1.3])
def test_pathwise_gradient_matches_closed_form(a, rng):
    r"""f(z) = sum_j exp(a z_j): E_q[f] = sum_j exp(a mu_j + a**2 exp(logvar_j) / 2), so
    dE/dmu_j = a E_j and dE/dlogvar_j = a**2 exp(logvar_j) / 2 * E_j."""
    mu = np.array([[0.4, -0.8, 0.1]])
    logvar = np.array([[-1.0, 0.3, -2.5]])
    eps = rng.standard_normal((N_MC, 3))
    z, cache = gaussian.reparameterize_forward(mu, logvar, eps)
    dmu, dlogvar = gaussian.reparameterize_backward(a * np.exp(a * z), cache)  # df/dz
    expectation = np.exp(a * mu + a**2 * np.exp(logvar) / 2)[0]
    closed = {"mu": a * expectation, "logvar": a**2 * np.exp(logvar[0]) / 2 * expectation}
    for name, samples in (("mu", dmu), ("logvar", dlogvar)):
        se = samples.std(axis=0, ddof=1) / np.sqrt(N_MC)
        assert np.all(np.abs(samples.mean(axis=0) - closed[name]) <= N_SE * se), name


def test_log_normal_diag_matches_scipy(rng):
    z, mu = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    logvar = rng.uniform(-2, 2, (3, 4))
    expected = stats.multivariate_normal.logpdf
    for b in range(3):
        ref = expected(z[b], mu[b], np.diag(np.exp(logvar[b])))
        np.testing.assert_allclose(gaussian.log_normal_diag(z[b], mu[b], logvar[b]), ref,
                                   rtol=1e-13)
    np.testing.assert_allclose(gaussian.log_standard_normal(z),
                               stats.norm.logpdf(z).sum(axis=-1), rtol=1e-13)
