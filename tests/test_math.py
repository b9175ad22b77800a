"""The equations of docs/math.md that no other test states on its own, each checked against the code.

Each test is named in docs/math.md next to the equation it proves (tests/test_docs.py checks
that the names resolve).
"""
import numpy as np
import pytest
from scipy import integrate, special

import vae_numpy as vn
from vae_numpy import estimators as est
from vae_numpy import evaluate as ev
from vae_numpy import likelihoods as L
from vae_numpy import linear_gaussian as lg
from vae_numpy import model
from vae_numpy.gaussian import (kl_standard_normal, kl_standard_normal_backward,
                                log_normal_diag, log_standard_normal)
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, numerical_gradient, rel_error

EXACT = 1e-12      # two float64 evaluations of the same O(1) quantity by different routes
MC_SIGMAS = 4.0    # "agrees with" in a Monte Carlo comparison
QUAD_TOL = 1e-9    # scipy.integrate.quad on a smooth density on [0, 1]
BETA = 0.7         # != 1, so a formula that drops beta fails
D, J, B = 6, 3, 5


def small_case(likelihood="bernoulli", seed=0):
    cfg = vn.VAEConfig(input_dim=D, latent_dim=J, encoder_hidden=(5,), decoder_hidden=(4,),
                       activation="tanh", likelihood=likelihood, beta=BETA, sigma=0.8)
    rng = np.random.default_rng(seed)
    params = vn.init_params(cfg, rng)
    x = (rng.random((B, D)) < 0.5).astype(float)
    eps = rng.standard_normal((B, J))
    return cfg, params, x, eps


# --- sections 1 and 2: log p(x) as an integral, and Jensen's step -----------------------------

INTEGRAL_TOL = 1e-10  # Gauss-Legendre, 200 x 200 nodes on [-10, 10]**2, of a smooth integrand
                      # whose mass outside that square is below 1e-20: round-off, ~1e-13 in log


def linear_case(rng, input_dim=3, latent_dim=2, sigma=0.7):
    """A linear-Gaussian model (exact log p(x)) as a vae_numpy VAE, and one x drawn from it."""
    W = lg.orthogonal_decoder(latent_dim, input_dim, np.linspace(1.5, 0.8, latent_dim), rng)
    b = rng.standard_normal(input_dim)
    x = lg.sample_data(1, W, b, sigma, rng)   # (1, D)
    cfg = lg.linear_gaussian_config(input_dim, latent_dim, sigma)
    return W, b, sigma, x, cfg


def test_log_px_is_the_integral_of_the_likelihood_times_the_prior(rng):
    r"""``log p(x) = log int p(x|z) p(z) dz`` with the model's own decoder, likelihood and prior,
    the integral over z (J = 2) by Gauss-Legendre quadrature, equals the closed-form log p(x) of the
    linear-Gaussian model (``linear_gaussian.log_marginal``)."""
    W, b, sigma, x, cfg = linear_case(rng)
    params = lg.vae_params(W, b, *lg.posterior_encoder(W, b, sigma))  # the decoder is what counts
    nodes, weights = special.roots_legendre(200)                      # on [-1, 1]
    z1, z2 = np.meshgrid(10 * nodes, 10 * nodes, indexing="ij")
    z = np.stack([z1.ravel(), z2.ravel()], axis=1)                    # (40000, J = 2)
    outs, _ = model.decoder_forward(params, z, cfg)
    likelihood = L.get_likelihood(cfg.likelihood)
    log_p_x_and_z = (log_standard_normal(z)
                     - likelihood.nll(np.repeat(x, len(z), 0), outs, cfg.sigma))
    area = 100 * np.outer(weights, weights).ravel()                   # dz1 dz2 of each node
    log_px = special.logsumexp(log_p_x_and_z, b=area)                  # log int p(x|z) p(z) dz
    assert abs(log_px - lg.log_marginal(x, W, b, sigma)[0]) <= INTEGRAL_TOL


def test_jensen_log_of_the_mean_weight_is_log_px_the_mean_log_weight_is_the_elbo():
    r"""``log p(x) = log E_q[w] >= E_q[log w] = ELBO``, ``w = p(x, z) / q(z|x)``, with a q that is
    not the posterior (wider, so w is bounded). With S draws of eps: the mean weight is p(x)
    within 4 SE; the log-weights and ``evaluate.elbo`` (its rec at the same eps, its KL in closed
    form) differ per draw by ``log p(z) - log q(z|x) + KL``, of mean 0 within 4 SE (a 1% error in
    the KL is 5.6 SE); and the mean log-weight is below log p(x) by far more than its SE: Jensen's
    gap, strictly positive when q is not the posterior."""
    W, b, sigma, x, cfg = linear_case(np.random.default_rng(0), input_dim=8, latent_dim=3,
                                      sigma=0.5)
    enc_W, enc_b, logvar_b = lg.posterior_encoder(W, b, sigma)
    params = lg.vae_params(W, b, 0.9 * enc_W, enc_b + 0.3, logvar_b + 0.7)
    log_px = lg.log_marginal(x, W, b, sigma)[0]
    S, seed = 200_000, 1
    eps = np.random.default_rng(seed).standard_normal((S, 1, 3))
    log_w = ev.log_importance_weights(params, x, eps, cfg)[:, 0]                  # (S,)
    w_over_px = np.exp(log_w - log_px)                                   # mean 1 if E_q[w] = p(x)
    assert abs(w_over_px.mean() - 1) < MC_SIGMAS * w_over_px.std(ddof=1) / np.sqrt(S)
    elbo = ev.elbo(params, np.repeat(x, S, axis=0), cfg, np.random.default_rng(seed))  # same eps
    d = log_w - elbo
    assert abs(d.mean()) < MC_SIGMAS * d.std(ddof=1) / np.sqrt(S), d.mean()
    se_log_w = log_w.std(ddof=1) / np.sqrt(S)
    assert log_px - log_w.mean() > 20 * se_log_w, (log_px, log_w.mean(), se_log_w)


# --- section 5: one reparameterized sample estimates E_q[log p(x|z)] without bias -------------

def test_one_sample_rec_is_unbiased_for_the_expected_reconstruction(rng):
    r"""``rec_b = -log p(x_b | z_b)``, one ``z_b = mu + exp(logvar / 2) * eps_b`` per row
    (``evaluate.elbo_terms`` with one sample), averaged over S rows holding the same x, equals
    ``-E_q[log p(x|z)]`` in closed form on the linear-Gaussian model within 4 SE; the same check
    rejects std = exp(logvar) (the variance enters E_q through the trace term)."""
    W, b, sigma, x, cfg = linear_case(rng, input_dim=8, latent_dim=3, sigma=0.5)
    enc_W, enc_b, logvar_b = lg.posterior_encoder(W, b, sigma)
    params = lg.vae_params(W, b, 0.9 * enc_W, enc_b + 0.3, logvar_b + 1.5)  # wide q: a big trace
    S = 20_000
    rec, _ = ev.elbo_terms(params, np.repeat(x, S, axis=0), cfg, rng, n_samples=1)  # (S,)
    mu, logvar = vn.encode(params, x, cfg)
    expected = -lg.expected_log_likelihood(x, mu, logvar, W, b, sigma)[0]
    assert abs(rec.mean() - expected) < MC_SIGMAS * rec.std(ddof=1) / np.sqrt(S)


# --- the backward chain, at the encoder outputs ----------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_encoder_output_gradients_are_the_two_paths_added(reduction):
    r"""dL/dmu = dz + beta * c_b * mu,
    dL/dlogvar = dz * 0.5 * std * eps + beta * c_b * 0.5 * expm1(logvar),
    with c_b = 1/B (mean) or 1 (sum) and dz the decoder's gradient at z; checked against finite
    differences of the loss as a function of (mu, logvar), and against loss_and_grads' encoder
    head biases (d loss / d enc.mu.b = sum_b dL/dmu_b)."""
    cfg, params, x, eps = small_case()
    lik = L.get_likelihood(cfg.likelihood)
    c_b = 1 / B if reduction == "mean" else 1.0
    (mu, logvar), _ = model.encoder_forward(params, x, cfg)
    mu, logvar = mu.copy(), logvar.copy()

    def loss_of_mu_logvar():
        z = mu + np.exp(0.5 * logvar) * eps
        outs, _ = model.decoder_forward(params, z, cfg)
        per = lik.nll(x, outs, cfg.sigma) + BETA * kl_standard_normal(mu, logvar)
        return per.mean() if reduction == "mean" else per.sum()

    std = np.exp(0.5 * logvar)
    z = mu + std * eps
    outs, dec_cache = model.decoder_forward(params, z, cfg)
    douts = lik.nll_backward(np.full(B, c_b), x, outs, cfg.sigma)
    dz = model.decoder_backward(douts, dec_cache, cfg, {})
    dmu = dz + BETA * c_b * mu
    dlogvar = dz * 0.5 * std * eps + BETA * c_b * 0.5 * np.expm1(logvar)

    assert rel_error(dmu, numerical_gradient(loss_of_mu_logvar, mu)) <= TOLERANCE_FLOAT64
    assert rel_error(dlogvar, numerical_gradient(loss_of_mu_logvar, logvar)) <= TOLERANCE_FLOAT64
    _, grads, _ = vn.loss_and_grads(params, x, eps, cfg, reduction)
    np.testing.assert_allclose(grads["enc.mu.b"], dmu.sum(axis=0), rtol=EXACT, atol=EXACT)
    np.testing.assert_allclose(grads["enc.logvar.b"], dlogvar.sum(axis=0), rtol=EXACT,
                               atol=EXACT)


def test_analytic_kl_gradient_is_the_mean_of_the_sampled_one(rng):
    r"""The single-sample KL ``log q(z) - log p(z)`` at ``z = mu + std * eps`` has pathwise
    gradient ``(z, -0.5 + 0.5 * z * std * eps)`` (its direct dependence on logvar included);
    its mean over eps is the analytic ``(mu, 0.5 * expm1(logvar))`` that loss_and_grads uses
    (``gaussian.kl_standard_normal_backward``), which has no sampling noise at all."""
    mu, logvar = np.array([0.4, -1.2, 0.9]), np.array([-0.5, 0.7, -2.0])
    std = np.exp(0.5 * logvar)
    eps = rng.standard_normal((400_000, 3))
    z = mu + std * eps
    samples = {"mu": z, "logvar": -0.5 + 0.5 * z * std * eps}
    dmu, dlogvar = kl_standard_normal_backward(np.ones(1), mu[None], logvar[None])
    analytic = {"mu": dmu[0], "logvar": dlogvar[0]}
    for name in samples:
        s = samples[name]
        se = s.std(axis=0, ddof=1) / np.sqrt(len(s))
        assert np.all(np.abs(s.mean(axis=0) - analytic[name]) < MC_SIGMAS * se), name
        assert np.all(se < 0.01 * np.maximum(np.abs(analytic[name]), 0.1)), name  # has power
    # the single-sample values are those of log q(z) - log p(z): a finite-difference check
    e = eps[:1]
    m, lv = mu[None].copy(), logvar[None].copy()
    kl_sample = lambda: float(np.sum(est.kl_monte_carlo(m + np.exp(0.5 * lv) * e, m, lv)))
    assert rel_error(samples["mu"][:1], numerical_gradient(kl_sample, m)) <= TOLERANCE_FLOAT64
    assert rel_error(samples["logvar"][:1],
                     numerical_gradient(kl_sample, lv)) <= TOLERANCE_FLOAT64


# --- the likelihoods ---------------------------------------------------------------------------

LOGITS = np.array([[-30.0, -4.0, -0.7, -5e-3, 0.0, 1e-6, 2e-2, 1.3, 9.0, 40.0]])


def test_rec_gradient_in_the_natural_parameter_is_mean_minus_x(rng):
    r"""d rec / d eta = E[x | eta] - x: Bernoulli and continuous Bernoulli with eta = the logit,
    the fixed-sigma Gaussian with eta = mean / sigma**2 (so d rec / d mean = (mean - x) / sigma**2)."""
    ones = np.ones(1)
    x = rng.random(LOGITS.shape)
    np.testing.assert_allclose(L.bernoulli_nll_backward(ones, x, LOGITS),
                               L.bernoulli_mean(LOGITS) - x, rtol=0, atol=EXACT)
    np.testing.assert_allclose(L.continuous_bernoulli_nll_backward(ones, x, LOGITS),
                               L.continuous_bernoulli_mean(LOGITS) - x, rtol=0, atol=EXACT)
    sigma, mean = 0.3, rng.standard_normal(LOGITS.shape)
    d_eta = sigma**2 * L.gaussian_nll_backward(ones, x, mean, sigma)  # d/d(mean/s**2)
    np.testing.assert_allclose(d_eta, mean - x, rtol=0, atol=EXACT)


@pytest.mark.parametrize("logit", [-6.0, -1.0, 0.0, 0.5, 3.0])
def test_cross_entropy_on_grey_levels_is_not_normalized(logit):
    r"""On x in [0, 1], exp(-BCE) integrates to 1 / C(l), not 1 (1/2 at l = 0); the continuous
    Bernoulli's log C is exactly the missing term."""
    l = np.array([[logit]])
    total, _ = integrate.quad(lambda v: np.exp(-L.bernoulli_nll(np.array([[v]]), l)[0]), 0, 1,
                              epsabs=1e-13, epsrel=1e-13)
    assert abs(total - np.exp(-L.cb_log_norm(l)[0, 0])) <= QUAD_TOL
    assert total <= 0.5 + QUAD_TOL  # at most half the mass: C(l) >= 2


# --- estimators ----------------------------------------------------------------------------

def test_pathwise_variance_can_exceed_the_score_functions(rng):
    r"""Usually lower, not always: for f(z) = sin(k z) with k = 5 the pathwise estimate of
    d E[f] / dmu is k cos(k z) (variance ~ k**2 / 2) while the score function's f(z) * eps / std
    has |f| <= 1; both are unbiased for the exact k cos(k mu) exp(-k**2 var / 2)."""
    k = 5.0
    mu, logvar = np.array([[0.3]]), np.array([[0.0]])
    eps = rng.standard_normal((400_000, 1, 1))
    path, _ = est.pathwise_gradient(lambda z: k * np.cos(k * z), mu, logvar, eps)
    score, _ = est.score_function_gradient(lambda z: np.sin(k * z)[..., 0], mu, logvar, eps)
    exact = k * np.cos(k * 0.3) * np.exp(-k**2 / 2)
    for s in (path, score):
        se = s.std(ddof=1) / np.sqrt(s.size)
        assert abs(s.mean() - exact) < MC_SIGMAS * se
    ratio = path.var() / score.var()
    assert ratio > 10, ratio  # measured 25


# --- bounds and what the numbers mean --------------------------------------------------------

def test_single_sample_loss_is_not_a_bound(rng):
    r"""With q = p(z|x) the ELBO equals log p(x), yet the one-sample loss rec(z) + kl falls
    below -log p(x) for about half the draws of eps: only its expectation is a bound."""
    Dl, Jl, sigma = 8, 3, 0.5
    W = lg.orthogonal_decoder(Jl, Dl, np.array([2.0, 1.5, 1.0]), rng)
    b = rng.standard_normal(Dl)
    x = lg.sample_data(1, W, b, sigma, rng)
    cfg = lg.linear_gaussian_config(Dl, Jl, sigma)
    params = lg.vae_params(W, b, *lg.posterior_encoder(W, b, sigma))
    neg_log_px = -lg.log_marginal(x, W, b, sigma)[0]
    S = 20_000
    rec, kl = vn.loss_terms(params, np.repeat(x, S, axis=0), rng.standard_normal((S, Jl)), cfg)
    loss = rec + kl  # (S,) one-sample losses at beta = 1
    se = loss.std(ddof=1) / np.sqrt(S)
    assert abs(loss.mean() - neg_log_px) < MC_SIGMAS * se  # -ELBO = -log p(x) here
    assert 0.3 < np.mean(loss < neg_log_px) < 0.7


def linear_gaussian_mi_case(rng):
    sigma = 0.5
    W = lg.orthogonal_decoder(2, 5, np.array([1.2, 0.6]), rng)
    b = rng.standard_normal(5)
    params = lg.vae_params(W, b, *lg.posterior_encoder(W, b, sigma))
    exact = 0.5 * np.linalg.slogdet(lg.posterior_precision(W, sigma))[1]  # I(x; z), q = p(z|x)
    return W, b, sigma, params, lg.linear_gaussian_config(5, 2, sigma), exact


def test_mutual_information_estimate_is_biased_low_by_an_amount_that_shrinks_with_n(rng):
    r"""E[MI estimate] < I(x; z) and <= log N: with I = 1.40 nats, the deficit averaged over
    fresh data sets is 0.17 nats at N = 20 (measured 0.166 +- 0.017) and 0.02 at N = 1000."""
    W, b, sigma, params, cfg, exact = linear_gaussian_mi_case(rng)
    small = [ev.mutual_information(params, lg.sample_data(20, W, b, sigma, rng), cfg, rng)
             for _ in range(200)]
    assert max(small) <= np.log(20) + 1e-12
    mean, se = ev.mean_and_stderr(small)
    assert exact - mean > MC_SIGMAS * se and 0.1 < exact - mean < 0.25, (exact, mean, se)
    large = [ev.mutual_information(params, lg.sample_data(1000, W, b, sigma, rng), cfg, rng)
             for _ in range(10)]
    mean, se = ev.mean_and_stderr(large)
    assert -MC_SIGMAS * se < exact - mean < 0.05, (exact, mean, se)


def test_rate_is_mutual_information_plus_marginal_kl(rng):
    r"""ELBO surgery (Hoffman & Johnson 2016): mean_n KL(q(z|x_n) || p(z)) = I(x; z)
    + KL(q(z) || p(z)), q(z) = (1/N) sum_n q(z|x_n), on N = 4 examples. The rate is analytic;
    I (evaluate.mutual_information, exact in expectation for the N-point data set) and the
    marginal KL are Monte Carlo."""
    W, b, sigma, params, cfg, _ = linear_gaussian_mi_case(rng)
    x = lg.sample_data(4, W, b, sigma, rng)
    mu, logvar = vn.encode(params, x, cfg)
    rate = kl_standard_normal(mu, logvar).mean()
    mi = [ev.mutual_information(params, x, cfg, rng) for _ in range(4000)]
    n = rng.integers(4, size=200_000)  # z ~ q(z): pick an example, then z ~ q(z|x_n)
    z = mu[n] + np.exp(0.5 * logvar[n]) * rng.standard_normal((len(n), 2))
    log_qz = np.logaddexp.reduce(log_normal_diag(z[:, None], mu, logvar), axis=1) - np.log(4)
    marginal_kl = log_qz - log_standard_normal(z)
    m1, se1 = ev.mean_and_stderr(mi)
    m2, se2 = ev.mean_and_stderr(marginal_kl)
    assert m1 > 0.5 and m2 > 0.5  # both terms matter here
    assert abs(m1 + m2 - rate) < MC_SIGMAS * np.hypot(se1, se2), (m1, m2, rate)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_iwae_encoder_output_gradients(reduction):
    r"""For loss = reduce_b(-IW_K(x_b)) with s = softmax_k(log w):
    dz_k = c_b * s_k * (d rec_k / dz_k + z_k), dL/dmu = sum_k dz_k, dL/dlogvar = sum_k dz_k * 0.5 * std * eps_k - 0.5 * c_b (the last
    term from -log q = -log N(eps; 0, I) + 0.5 * sum_j logvar_j, with sum_k s_k = 1)."""
    from scipy.special import logsumexp, softmax

    from vae_numpy import iwae

    cfg, params, x, _ = small_case()
    cfg = vn.VAEConfig(**{**cfg.to_dict(), "beta": 1.0})
    K = 4
    eps = np.random.default_rng(3).standard_normal((K, B, J))
    lik = L.get_likelihood(cfg.likelihood)
    c_b = 1 / B if reduction == "mean" else 1.0
    x_k = np.broadcast_to(x, (K, B, D)).reshape(K * B, D)
    (mu, logvar), _ = model.encoder_forward(params, x, cfg)
    mu, logvar = mu.copy(), logvar.copy()

    def log_weights(mu, logvar):
        z = mu + np.exp(0.5 * logvar) * eps                                   # (K, B, J)
        outs, cache = model.decoder_forward(params, z.reshape(K * B, J), cfg)
        rec = lik.nll(x_k, outs, cfg.sigma).reshape(K, B)
        log_q = log_normal_diag(z, mu, logvar)                               # at z itself
        return -rec + log_standard_normal(z) - log_q, z, outs, cache

    def loss_of_mu_logvar():
        per = -(logsumexp(log_weights(mu, logvar)[0], axis=0) - np.log(K))
        return per.mean() if reduction == "mean" else per.sum()

    log_w, z, outs, cache = log_weights(mu, logvar)
    s = softmax(log_w, axis=0)                                                # (K, B)
    drec = lik.nll_backward((c_b * s).reshape(K * B), x_k, outs, cfg.sigma)
    dz = model.decoder_backward(drec, cache, cfg, {}).reshape(K, B, J) + (c_b * s)[..., None] * z
    std = np.exp(0.5 * logvar)
    dmu = dz.sum(axis=0)
    dlogvar = (dz * 0.5 * std * eps).sum(axis=0) - 0.5 * c_b

    assert rel_error(dmu, numerical_gradient(loss_of_mu_logvar, mu)) <= TOLERANCE_FLOAT64
    assert rel_error(dlogvar, numerical_gradient(loss_of_mu_logvar, logvar)) <= TOLERANCE_FLOAT64
    _, grads, _ = iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction)
    np.testing.assert_allclose(grads["enc.mu.b"], dmu.sum(axis=0), rtol=EXACT, atol=EXACT)
    np.testing.assert_allclose(grads["enc.logvar.b"], dlogvar.sum(axis=0), rtol=EXACT,
                               atol=EXACT)
