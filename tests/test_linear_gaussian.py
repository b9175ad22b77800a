"""The exact linear-Gaussian model, checked against scipy and against Bayes' rule.

Everything else in the evaluation tests leans on these formulas, so each is checked against
something that does not share its derivation.
"""
import numpy as np
import pytest
from scipy import stats

from vae_numpy import decode, encode
from vae_numpy import linear_gaussian as lg
from vae_numpy.gaussian import log_normal_diag
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, numerical_gradient, rel_error

EXACT = 1e-10      # float64 closed forms of O(10) nats agree to round-off
MC_SIGMAS = 4.0    # Monte Carlo checks: |mean - exact| < 4 standard errors


@pytest.fixture
def model(rng):
    """A generic (non-orthogonal) decoder: D = 6, J = 3."""
    W = rng.standard_normal((3, 6))  # (J, D)
    b = rng.standard_normal(6)
    return W, b, 0.6


def test_log_marginal_matches_scipy(model, rng):
    W, b, sigma = model
    x = rng.standard_normal((5, 6)) * 2
    expected = stats.multivariate_normal(b, W.T @ W + sigma**2 * np.eye(6)).logpdf(x)
    np.testing.assert_allclose(lg.log_marginal(x, W, b, sigma), expected, rtol=0, atol=EXACT)


def test_posterior_satisfies_bayes_rule(model, rng):
    """log p(z|x) = log p(x|z) + log p(z) - log p(x), at arbitrary z, with independent densities."""
    W, b, sigma = model
    x = rng.standard_normal((4, 6))
    z = rng.standard_normal((4, 3))
    log_px_z = stats.norm(z @ W + b, sigma).logpdf(x).sum(axis=1)
    log_pz = stats.norm(0, 1).logpdf(z).sum(axis=1)
    log_px = stats.multivariate_normal(b, W.T @ W + sigma**2 * np.eye(6)).logpdf(x)
    np.testing.assert_allclose(lg.log_posterior(z, x, W, b, sigma),
                               log_px_z + log_pz - log_px, rtol=0, atol=EXACT)


def test_orthogonal_decoder_gives_diagonal_posterior(rng):
    scales = np.array([2.0, 1.0, 0.5])
    W = lg.orthogonal_decoder(3, 7, scales, rng)
    np.testing.assert_allclose(W @ W.T, np.diag(scales**2), rtol=0, atol=1e-13)
    _, cov = lg.posterior(np.zeros((1, 7)), W, np.zeros(7), 0.5)
    np.testing.assert_allclose(cov, np.diag(1 / (1 + scales**2 / 0.25)), rtol=0, atol=1e-13)


def kl_gaussians_reference(mu0, cov0, mu1, cov1):
    """KL(N(mu0, cov0) || N(mu1, cov1)) for full covariances, the textbook formula."""
    inv1 = np.linalg.inv(cov1)
    d = mu1 - mu0
    return 0.5 * (np.trace(inv1 @ cov0) + d @ inv1 @ d - len(mu0)
                  + np.linalg.slogdet(cov1)[1] - np.linalg.slogdet(cov0)[1])


def test_kl_diag_to_full_matches_textbook_formula(model, rng):
    W, b, sigma = model
    x = rng.standard_normal((3, 6))
    mean, cov = lg.posterior(x, W, b, sigma)
    mu, logvar = rng.standard_normal((3, 3)), rng.uniform(-2, 1, (3, 3))
    expected = [kl_gaussians_reference(mu[i], np.diag(np.exp(logvar[i])), mean[i], cov)
                for i in range(3)]
    np.testing.assert_allclose(lg.kl_diag_to_full(mu, logvar, mean, cov), expected,
                               rtol=0, atol=EXACT)


def test_kl_diag_to_full_matches_monte_carlo(model, rng):
    """mean of log q(z) - log p(z|x) over z ~ q, within MC_SIGMAS standard errors."""
    W, b, sigma = model
    x = rng.standard_normal((1, 6))
    mu, logvar = np.array([[0.3, -0.5, 1.0]]), np.array([[-1.0, -0.3, -2.0]])
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal((200_000, 3))
    x_rep = np.repeat(x, len(z), axis=0)
    ratio = log_normal_diag(z, mu, logvar) - lg.log_posterior(z, x_rep, W, b, sigma)
    se = ratio.std() / np.sqrt(len(ratio))
    mean, cov = lg.posterior(x, W, b, sigma)
    assert abs(ratio.mean() - lg.kl_diag_to_full(mu, logvar, mean, cov)[0]) < MC_SIGMAS * se


def test_kl_is_zero_only_at_the_posterior(rng):
    W = lg.orthogonal_decoder(2, 5, np.array([1.5, 0.7]), rng)
    b, sigma = rng.standard_normal(5), 0.8
    x = lg.sample_data(4, W, b, sigma, rng)
    mean, cov = lg.posterior(x, W, b, sigma)
    logvar = np.log(np.diag(cov)) * np.ones((4, 1))
    np.testing.assert_allclose(lg.kl_diag_to_full(mean, logvar, mean, cov), 0, atol=1e-12)
    assert np.all(lg.kl_diag_to_full(mean + 0.1, logvar, mean, cov) > 1e-4)


def test_posterior_encoder_is_the_best_diagonal_q(model, rng):
    """Its mean is exact and its variance 1/diag(M): any change of either raises the KL."""
    W, b, sigma = model
    x = rng.standard_normal((3, 6))
    enc_W, enc_b, logvar_b = lg.posterior_encoder(W, b, sigma)
    mean, cov = lg.posterior(x, W, b, sigma)
    mu = x @ enc_W + enc_b
    np.testing.assert_allclose(mu, mean, rtol=0, atol=EXACT)
    best = lg.kl_diag_to_full(mu, np.tile(logvar_b, (3, 1)), mean, cov)
    for j in range(3):
        for step in (-1e-3, 1e-3):
            logvar = np.tile(logvar_b, (3, 1))
            logvar[:, j] += step
            assert np.all(lg.kl_diag_to_full(mu, logvar, mean, cov) > best)


def test_expected_log_likelihood_matches_monte_carlo(model, rng):
    W, b, sigma = model
    x = rng.standard_normal((1, 6))
    mu, logvar = np.array([[0.2, -0.4, 0.9]]), np.array([[-0.5, -1.5, 0.2]])
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal((200_000, 3))
    samples = stats.norm(z @ W + b, sigma).logpdf(x).sum(axis=1)
    se = samples.std() / np.sqrt(len(samples))
    exact = lg.expected_log_likelihood(x, mu, logvar, W, b, sigma)[0]
    assert abs(samples.mean() - exact) < MC_SIGMAS * se


def test_expected_log_likelihood_grad_matches_finite_differences(model, rng):
    W, b, sigma = model
    x = rng.standard_normal((2, 6))
    mu, logvar = rng.standard_normal((2, 3)), rng.uniform(-1, 1, (2, 3))
    dmu, dlogvar = lg.expected_log_likelihood_grad(x, mu, logvar, W, b, sigma)

    def f():  # numerical_gradient perturbs mu and logvar in place
        return lg.expected_log_likelihood(x, mu, logvar, W, b, sigma).sum()

    assert rel_error(dmu, numerical_gradient(f, mu)) < TOLERANCE_FLOAT64
    assert rel_error(dlogvar, numerical_gradient(f, logvar)) < TOLERANCE_FLOAT64


def test_vae_params_build_a_valid_model(rng):
    W, b = rng.standard_normal((2, 4)), rng.standard_normal(4)
    cfg = lg.linear_gaussian_config(4, 2, sigma=0.5)
    enc_W, enc_b, logvar_b = rng.standard_normal((4, 2)), rng.standard_normal(2), np.zeros(2) - 1
    params = lg.vae_params(W, b, enc_W, enc_b, logvar_b)
    x, z = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    mu, logvar = encode(params, x, cfg)
    np.testing.assert_allclose(mu, x @ enc_W + enc_b, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(logvar, np.tile(logvar_b, (3, 1)))
    np.testing.assert_allclose(decode(params, z, cfg), z @ W + b, rtol=0, atol=1e-14)


def test_orthogonal_decoder_rejects_too_many_latents(rng):
    with pytest.raises(ValueError, match="latent_dim <= input_dim"):
        lg.orthogonal_decoder(5, 3, np.ones(5), rng)
