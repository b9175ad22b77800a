"""Pathwise and score-function gradient estimators, and the Monte Carlo KL, against closed forms."""
import numpy as np
import pytest

from vae_numpy import estimators as est
from vae_numpy import linear_gaussian as lg
from vae_numpy.gaussian import kl_standard_normal
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, numerical_gradient, rel_error

MC_SIGMAS = 4.0   # "agrees with": |MC mean - exact| < 4 standard errors, per component
N_SAMPLES = 200_000
# The score-function estimator is noisier (that is its point), so its unbiasedness check
# uses more samples; POWER is then the largest standard error relative to the exact value:
# the pathwise check fails a 5% error, the score-function check a 20% one.
N_SAMPLES_SCORE = 1_000_000
POWER = {"pathwise": 0.0125, "score": 0.05}

MU = np.array([[0.3, -0.7, 1.1]])       # (B, J) = (1, 3)
LOGVAR = np.array([[-1.0, -0.2, -1.5]])
A = np.array([0.8, -0.9, 1.0])


def f_exp(z):
    """f(z) = sum_j exp(a_j z_j): (S, B, J) -> (S, B)."""
    return np.sum(np.exp(A * z), axis=-1)


def df_exp(z):
    return A * np.exp(A * z)


def exact_exp_grads(mu, logvar):
    """E_j = E_q[exp(a z_j)] = exp(a mu_j + a**2 var_j / 2).

    d/dmu_j = a E_j,  d/dlogvar_j = E_j a**2 var_j / 2 (d var / d logvar = var).
    """
    var = np.exp(logvar)
    e = np.exp(A * mu + 0.5 * A**2 * var)
    return A * e, 0.5 * A**2 * var * e


def assert_unbiased(estimates, exact, name):
    mean = estimates.mean(axis=0)
    se = estimates.std(axis=0, ddof=1) / np.sqrt(len(estimates))
    z_scores = np.abs(mean - exact) / se
    assert np.all(z_scores < MC_SIGMAS), f"{name}: mean {mean}, exact {exact}, |z| {z_scores}"
    return se


@pytest.mark.parametrize("name", ["pathwise", "score"])
def test_estimators_are_unbiased_for_exp(name, rng):
    eps = rng.standard_normal((N_SAMPLES if name == "pathwise" else N_SAMPLES_SCORE, 1, 3))
    if name == "pathwise":
        dmu, dlogvar = est.pathwise_gradient(df_exp, MU, LOGVAR, eps)
    else:
        dmu, dlogvar = est.score_function_gradient(f_exp, MU, LOGVAR, eps)
    exact_mu, exact_lv = exact_exp_grads(MU, LOGVAR)
    se_mu = assert_unbiased(dmu, exact_mu, f"{name} dmu")
    se_lv = assert_unbiased(dlogvar, exact_lv, f"{name} dlogvar")
    # the check has power: see POWER
    assert np.all(se_mu < POWER[name] * np.abs(exact_mu))
    assert np.all(se_lv < POWER[name] * np.abs(exact_lv))


def test_score_function_with_baseline_is_unbiased_and_less_noisy(rng):
    """An offset of 50 in f inflates REINFORCE's variance; a baseline near E[f] removes it."""
    eps = rng.standard_normal((N_SAMPLES, 1, 3))
    plain = est.score_function_gradient(lambda z: f_exp(z) + 50.0, MU, LOGVAR, eps)
    mean_f = 50.0 + np.sum(np.exp(A * MU + 0.5 * A**2 * np.exp(LOGVAR)))
    based = est.score_function_gradient(lambda z: f_exp(z) + 50.0, MU, LOGVAR, eps,
                                        baseline=mean_f)
    for p, q, exact in zip(plain, based, exact_exp_grads(MU, LOGVAR)):
        assert_unbiased(q, exact, "with baseline")
        assert np.all(q.var(axis=0) < 0.2 * p.var(axis=0))


def linear_setting(rng):
    """A linear-Gaussian VAE, one x, and a q that is not the posterior."""
    D, J, sigma = 10, 4, 0.5
    W = rng.standard_normal((J, D))
    b = rng.standard_normal(D)
    x = lg.sample_data(1, W, b, sigma, rng)
    params = lg.vae_params(W, b, np.zeros((D, J)), np.zeros(J), np.zeros(J))
    mu, logvar = rng.standard_normal((1, J)) * 0.5, rng.uniform(-2, 0, (1, J))
    return dict(W=W, b=b, sigma=sigma, x=x, params=params, mu=mu, logvar=logvar,
                cfg=lg.linear_gaussian_config(D, J, sigma))


def test_reconstruction_integrand_is_log_p_x_given_z(rng):
    s = linear_setting(rng)
    f, df = est.reconstruction_integrand(s["params"], s["x"], s["cfg"])
    z = rng.standard_normal((5, 1, 4))
    expected = -0.5 * np.sum(np.log(2 * np.pi * s["sigma"]**2)
                             + (s["x"] - z @ s["W"] - s["b"]) ** 2 / s["sigma"]**2, axis=-1)
    np.testing.assert_allclose(f(z), expected, rtol=1e-13)
    z1 = rng.standard_normal((1, 1, 4))
    assert rel_error(df(z1), numerical_gradient(lambda: f(z1).sum(), z1)) < TOLERANCE_FLOAT64


@pytest.mark.parametrize("name", ["pathwise", "score"])
def test_elbo_gradient_estimators_are_unbiased(name, rng):
    """Against d E_q[log p(x|z)] / d(mu, logvar) of the linear-Gaussian model in closed form."""
    s = linear_setting(rng)
    f, df = est.reconstruction_integrand(s["params"], s["x"], s["cfg"])
    eps = rng.standard_normal((N_SAMPLES, 1, 4))
    if name == "pathwise":
        dmu, dlogvar = est.pathwise_gradient(df, s["mu"], s["logvar"], eps)
    else:
        dmu, dlogvar = est.score_function_gradient(f, s["mu"], s["logvar"], eps)
    exact_mu, exact_lv = lg.expected_log_likelihood_grad(s["x"], s["mu"], s["logvar"], s["W"],
                                                         s["b"], s["sigma"])
    assert_unbiased(dmu, exact_mu, f"{name} dmu")
    assert_unbiased(dlogvar, exact_lv, f"{name} dlogvar")


def test_score_function_variance_is_larger(rng):
    s = linear_setting(rng)
    f, df = est.reconstruction_integrand(s["params"], s["x"], s["cfg"])
    eps = rng.standard_normal((20_000, 1, 4))
    path = est.pathwise_gradient(df, s["mu"], s["logvar"], eps)
    score = est.score_function_gradient(f, s["mu"], s["logvar"], eps)
    for p, q in zip(path, score):
        assert q.var(axis=0).sum() > 10 * p.var(axis=0).sum()


def test_variance_of_mean():
    estimates = np.array([1.0, 3.0, 2.0, 6.0, 0.0, 0.0, 5.0])  # the 7th is dropped for n = 2
    np.testing.assert_allclose(est.variance_of_mean(estimates, 2), np.var([2.0, 4.0, 0.0], ddof=1))
    noise = np.random.default_rng(0).standard_normal((100_000, 2))
    # var of a mean of 10 unit-variance draws is 0.1; 10_000 groups: relative SE sqrt(2/1e4) = 1.4%
    np.testing.assert_allclose(est.variance_of_mean(noise, 10), [0.1, 0.1], rtol=0.06)
    with pytest.raises(ValueError, match="at least 2 groups"):
        est.variance_of_mean(estimates, 4)


def test_kl_monte_carlo_converges_to_the_analytic_kl(rng):
    mu, logvar = np.array([[0.5, -1.0, 0.0, 2.0]]), np.array([[-3.0, -1.0, 0.5, 0.0]])
    eps = rng.standard_normal((N_SAMPLES, 1, 4))
    samples = est.kl_monte_carlo(mu + np.exp(0.5 * logvar) * eps, mu, logvar)[:, 0]
    se = samples.std(ddof=1) / np.sqrt(len(samples))
    exact = kl_standard_normal(mu, logvar)[0]
    assert abs(samples.mean() - exact) < MC_SIGMAS * se
    assert se < 0.005 * exact


def test_variance_as_std_sampler_is_wrong_unless_logvar_is_zero(rng):
    eps = rng.standard_normal((N_SAMPLES, 1, 2))
    mu = np.array([[0.5, -1.0]])
    for logvar, should_agree in [(np.array([[-3.0, -1.0]]), False), (np.zeros((1, 2)), True)]:
        z = est.variance_as_std_sample(mu, logvar, eps)
        samples = est.kl_monte_carlo(z, mu, logvar)[:, 0]
        se = samples.std(ddof=1) / np.sqrt(len(samples))
        error = abs(samples.mean() - kl_standard_normal(mu, logvar)[0])
        assert (error < MC_SIGMAS * se) == should_agree, f"logvar {logvar}: error {error}, se {se}"
