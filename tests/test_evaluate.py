"""log p(x) estimates and diagnostics, checked on the linear-Gaussian VAE whose log p(x) is exact.

The model (vae_numpy.linear_gaussian): p(z) = N(0, I), p(x|z) = N(z @ W + b, sigma**2 I), as a
vae_numpy VAE with no hidden layers, identity activation and the gaussian likelihood. With
orthogonal rows in W its exact posterior is diagonal, so the encoder can equal it.
"""
import json
import math

import numpy as np
import pytest
from scipy.special import expit, logsumexp

from vae_numpy import VAEConfig, encode, init_params, loss_terms
from vae_numpy import evaluate as ev
from vae_numpy import linear_gaussian as lg
from vae_numpy.gaussian import log_normal_diag

EXACT = 1e-10          # float64 sums of O(10)-nat terms: round-off is ~1e-14
CHUNK_INVARIANCE = 1e-12  # same noise, different BLAS blocking of the products: ~1e-15
N_SIGMAS = 3.0         # "significantly" in a paired Monte Carlo comparison
MC_SIGMAS = 4.0        # "agrees with" in a Monte Carlo comparison
D, J, SIGMA = 8, 3, 0.5


@pytest.fixture
def lin(rng):
    """Decoder with orthogonal rows, data from the model, exact log p(x) and posterior."""
    W = lg.orthogonal_decoder(J, D, np.array([2.0, 1.5, 1.0]), rng)
    b = rng.standard_normal(D)
    x = lg.sample_data(400, W, b, SIGMA, rng)
    return dict(W=W, b=b, x=x, cfg=lg.linear_gaussian_config(D, J, SIGMA),
                log_px=lg.log_marginal(x, W, b, SIGMA))


def exact_params(lin):
    return lg.vae_params(lin["W"], lin["b"], *lg.posterior_encoder(lin["W"], lin["b"], SIGMA))


def wrong_params(lin):
    """q with a shrunken mean map, a shift, and a variance e times too small: not the posterior."""
    enc_W, enc_b, logvar_b = lg.posterior_encoder(lin["W"], lin["b"], SIGMA)
    return lg.vae_params(lin["W"], lin["b"], 0.8 * enc_W, enc_b + 0.2, logvar_b - 1.0)


def iw(params, lin, k, seed, x=None, **kw):
    x = lin["x"] if x is None else x
    return ev.iw_log_likelihood(params, x, lin["cfg"], k, np.random.default_rng(seed),
                                progress=False, **kw)


def paired(a, b):
    """Mean and standard error of a - b over examples."""
    return ev.mean_and_stderr(np.asarray(a) - np.asarray(b))


# --- exactness with q = p(z|x) ---------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 10, 100])
def test_iw_is_exact_when_q_is_the_posterior(lin, k):
    """Every weight p(x, z) / q(z|x) equals p(x) when q = p(z|x), so IW_K = log p(x) for any K."""
    x = lin["x"][:50]
    np.testing.assert_allclose(iw(exact_params(lin), lin, k, 0, x=x), lin["log_px"][:50],
                               rtol=0, atol=EXACT)


def test_every_log_weight_equals_log_px_when_q_is_the_posterior(lin, rng):
    x = lin["x"][:20]
    eps = rng.standard_normal((30, 20, J))
    log_w = ev.log_importance_weights(exact_params(lin), x, eps, lin["cfg"])
    np.testing.assert_allclose(log_w, np.broadcast_to(lin["log_px"][:20], (30, 20)),
                               rtol=0, atol=EXACT)


# --- the bounds, with q not the posterior ---------------------------------------------------------

def test_elbo_below_iw_below_log_px(lin):
    """ELBO <= IW_K <= log p(x) on average over examples (paired differences, in SEs)."""
    params = wrong_params(lin)
    elbo = ev.elbo(params, lin["x"], lin["cfg"], np.random.default_rng(1), n_samples=200)
    iw_10 = iw(params, lin, 10, 2)
    gain, se = paired(iw_10, elbo)
    assert gain > N_SIGMAS * se, f"IW_10 - ELBO = {gain:.4f} +- {se:.4f} is not > 0"
    for k in (1, 10, 1000):
        excess, se = paired(iw(params, lin, k, 3), lin["log_px"])
        assert excess < N_SIGMAS * se, f"IW_{k} - log p(x) = {excess:.4f} +- {se:.4f} > 0"


def test_iw_increases_towards_log_px_with_k(lin):
    params = wrong_params(lin)
    estimates = {k: iw(params, lin, k, k) for k in (1, 10, 100, 1000)}
    ks = sorted(estimates)
    for small, large in zip(ks, ks[1:]):
        gain, se = paired(estimates[large], estimates[small])
        assert gain > N_SIGMAS * se, f"IW_{large} - IW_{small} = {gain:.4f} +- {se:.4f}"
    gaps = [np.mean(lin["log_px"] - estimates[k]) for k in ks]
    assert gaps[-1] < 0.25 * gaps[0], f"gaps log p(x) - IW_K for K = {ks}: {gaps}"


def test_iw_1_is_the_elbo_in_expectation(lin):
    params = wrong_params(lin)
    elbo = ev.elbo(params, lin["x"], lin["cfg"], np.random.default_rng(1), n_samples=200)
    diff, se = paired(iw(params, lin, 1, 5), elbo)
    assert abs(diff) < MC_SIGMAS * se


def test_elbo_gap_is_kl_to_the_posterior(lin):
    """log p(x) - ELBO = KL(q(z|x) || p(z|x)) (closed form), per example, within MC error."""
    params = wrong_params(lin)
    elbo = ev.elbo(params, lin["x"], lin["cfg"], np.random.default_rng(7), n_samples=500)
    mu, logvar = encode(params, lin["x"], lin["cfg"])
    mean, cov = lg.posterior(lin["x"], lin["W"], lin["b"], SIGMA)
    kl = lg.kl_diag_to_full(mu, logvar, mean, cov)
    diff, se = paired(lin["log_px"] - elbo, kl)
    assert kl.mean() > 100 * se, "the test needs a KL much larger than its MC error"
    assert abs(diff) < MC_SIGMAS * se, f"gap - KL = {diff:.5f} +- {se:.5f}"


# --- chunking and the random streams ------------------------------------------------------------

def test_chunk_sizes_do_not_change_the_estimate(lin):
    params = wrong_params(lin)
    x = lin["x"][:37]
    reference = iw(params, lin, 250, 11, x=x, batch_size=37, chunk_size=250)
    for batch_size, chunk_size in [(1, 1), (5, 7), (10, 64), (100, 1000)]:
        np.testing.assert_allclose(
            iw(params, lin, 250, 11, x=x, batch_size=batch_size, chunk_size=chunk_size),
            reference, rtol=0, atol=CHUNK_INVARIANCE, err_msg=f"{batch_size}, {chunk_size}")


def test_an_example_estimate_does_not_depend_on_the_others(lin):
    params = wrong_params(lin)
    np.testing.assert_allclose(iw(params, lin, 100, 4, x=lin["x"][:10]),
                               iw(params, lin, 100, 4, x=lin["x"][:30])[:10],
                               rtol=0, atol=CHUNK_INVARIANCE)


def test_documented_noise_reproduces_the_estimate(lin):
    """IW_K from example_noise streams and log_importance_weights equals iw_log_likelihood."""
    params, x, k = wrong_params(lin), lin["x"][:6], 40
    seed = int(np.random.default_rng(9).integers(2**63))
    eps = np.stack([ev.example_noise(seed, n, k, J, np.float64) for n in range(6)], axis=1)
    log_w = ev.log_importance_weights(params, x, eps, lin["cfg"])
    np.testing.assert_allclose(iw(params, lin, k, 9, x=x), logsumexp(log_w, axis=0) - np.log(k),
                               rtol=0, atol=CHUNK_INVARIANCE)


def test_log_q_shortcut_equals_the_density_at_the_sample(lin, rng):
    """_log_weights evaluates log q(z|x) from eps; it must equal log N(z; mu, diag(var))."""
    params, x = wrong_params(lin), lin["x"][:5]
    eps = rng.standard_normal((7, 5, J))
    mu, logvar = encode(params, x, lin["cfg"])
    z = mu + np.exp(0.5 * logvar) * eps
    x_mean = z @ lin["W"] + lin["b"]
    log_px_z = -0.5 * np.sum(np.log(2 * np.pi * SIGMA**2) + (x - x_mean) ** 2 / SIGMA**2, -1)
    expected = log_px_z + log_normal_diag(z, 0, 0) - log_normal_diag(z, mu, logvar)
    np.testing.assert_allclose(ev.log_importance_weights(params, x, eps, lin["cfg"]), expected,
                               rtol=0, atol=EXACT)


def test_bad_eps_shape_is_an_error(lin, rng):
    with pytest.raises(ValueError, match="eps has shape"):
        ev.log_importance_weights(exact_params(lin), lin["x"][:4], rng.standard_normal((3, 4)),
                                  lin["cfg"])


# --- a nonlinear Bernoulli model: log w from a hand-written forward pass -------------------------

def test_log_weights_of_a_bernoulli_mlp(rng):
    cfg = VAEConfig(input_dim=12, latent_dim=3, encoder_hidden=(7,), decoder_hidden=(5,),
                    activation="tanh", likelihood="bernoulli")
    params = init_params(cfg, rng)
    x = (rng.random((4, 12)) < 0.4).astype(np.float64)
    eps = rng.standard_normal((6, 4, 3))
    h = np.tanh(x @ params["enc.0.W"] + params["enc.0.b"])
    mu = h @ params["enc.mu.W"] + params["enc.mu.b"]
    logvar = h @ params["enc.logvar.W"] + params["enc.logvar.b"]
    z = mu + np.exp(logvar / 2) * eps
    p = expit(np.tanh(z @ params["dec.0.W"] + params["dec.0.b"]) @ params["dec.out.W"]
              + params["dec.out.b"])
    log_px_z = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)
    expected = log_px_z + log_normal_diag(z, 0, 0) - log_normal_diag(z, mu, logvar)
    np.testing.assert_allclose(ev.log_importance_weights(params, x, eps, cfg), expected,
                               rtol=0, atol=EXACT)


# --- diagnostics --------------------------------------------------------------------------------

def test_active_units_ignores_dimensions_the_encoder_does_not_use(lin):
    enc_W, enc_b, logvar_b = lg.posterior_encoder(lin["W"], lin["b"], SIGMA)
    enc_W[:, 1] = 0  # dimension 1 ignores x
    params = lg.vae_params(lin["W"], lin["b"], enc_W, enc_b, logvar_b)
    variances = ev.posterior_mean_variance(params, lin["x"], lin["cfg"])
    assert variances[1] < 1e-20  # a constant mu: zero up to the round-off of its mean
    assert np.all(variances[[0, 2]] > 10 * ev.ACTIVE_UNIT_THRESHOLD)
    assert ev.active_units(params, lin["x"], lin["cfg"]) == 2
    enc_W[:] = 0
    params = lg.vae_params(lin["W"], lin["b"], enc_W, enc_b, logvar_b)
    assert ev.active_units(params, lin["x"], lin["cfg"]) == 0


def test_active_units_threshold_is_on_the_variance_of_mu(lin):
    """A dimension whose mean varies with variance 0.005 (< 0.01) is inactive, 0.02 active."""
    x = lin["x"]
    direction = np.zeros(D)
    direction[0] = 1 / x[:, 0].std()
    enc_W = np.stack([direction * math.sqrt(v) for v in (0.005, 0.02, 1.0)], axis=1)  # (D, J)
    params = lg.vae_params(lin["W"], lin["b"], enc_W, np.zeros(J), np.zeros(J))
    np.testing.assert_allclose(ev.posterior_mean_variance(params, x, lin["cfg"]),
                               [0.005, 0.02, 1.0], rtol=1e-12)
    assert ev.active_units(params, x, lin["cfg"]) == 2


def test_mean_kl_per_dimension_sums_to_the_mean_kl(lin, rng):
    params = wrong_params(lin)
    per_dim = ev.mean_kl_per_dimension(params, lin["x"], lin["cfg"])
    np.testing.assert_array_equal(ev.kl_per_dimension(params, lin["x"], lin["cfg"]), per_dim)
    _, kl = loss_terms(params, lin["x"], rng.standard_normal((400, J)), lin["cfg"])
    np.testing.assert_allclose(per_dim.sum(), kl.mean(), rtol=1e-12)
    mu, logvar = encode(params, lin["x"], lin["cfg"])
    expected_0 = np.mean(0.5 * (mu[:, 0] ** 2 + np.exp(logvar[:, 0]) - 1 - logvar[:, 0]))
    np.testing.assert_allclose(per_dim[0], expected_0, rtol=1e-12)


def test_mutual_information_is_zero_when_the_encoder_ignores_x(lin):
    enc_W, enc_b, logvar_b = lg.posterior_encoder(lin["W"], lin["b"], SIGMA)
    params = lg.vae_params(lin["W"], lin["b"], 0 * enc_W, enc_b, logvar_b)
    mi = ev.mutual_information(params, lin["x"], lin["cfg"], np.random.default_rng(0))
    assert abs(mi) < 1e-12  # all q(z|x_n) are equal: log q(z|x) - log q(z) is 0 exactly


# With q = p(z|x) and x ~ p(x), I(x; z) = H(z) - H(z|x) = 0.5 log det M. The estimator's MC
# error at N = 2000 is ~0.03 nats and it is biased low by ~0.02 nats at N = 1000 here
# (tests/test_math.py measures the bias);
# 0.12 nats is 4 SEs and fails a formula off by a few percent of the 1.5-nat answer.
MI_TOLERANCE = 0.12


def test_mutual_information_matches_the_exact_value(rng):
    W = lg.orthogonal_decoder(2, 5, np.array([1.2, 0.6]), rng)
    b = rng.standard_normal(5)
    x = lg.sample_data(2000, W, b, SIGMA, rng)
    params = lg.vae_params(W, b, *lg.posterior_encoder(W, b, SIGMA))
    exact = 0.5 * np.linalg.slogdet(lg.posterior_precision(W, SIGMA))[1]
    mi = ev.mutual_information(params, x, lg.linear_gaussian_config(5, 2, SIGMA),
                               np.random.default_rng(1))
    assert exact > 1.0 and 0 < mi < np.log(len(x))
    assert abs(mi - exact) < MI_TOLERANCE, f"MI estimate {mi:.4f}, exact {exact:.4f}"


def test_bits_per_dim():
    assert ev.bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0, rel=1e-15)
    assert ev.bits_per_dim(100.0, 784) == pytest.approx(100 / 784 / math.log(2), rel=1e-15)


def test_rate_distortion_is_the_elbo_split(lin):
    params = wrong_params(lin)
    rd = ev.rate_distortion(params, lin["x"], lin["cfg"], np.random.default_rng(3))
    rec, kl = ev.elbo_terms(params, lin["x"], lin["cfg"], np.random.default_rng(3))
    assert rd["rate"] == pytest.approx(kl.mean(), rel=1e-12)
    assert rd["distortion"] == pytest.approx(rec.mean(), rel=1e-12)
    assert rd["neg_elbo"] == pytest.approx(rd["rate"] + rd["distortion"], rel=1e-15)


def test_elbo_does_not_depend_on_batch_size(lin):
    a = ev.elbo(wrong_params(lin), lin["x"], lin["cfg"], np.random.default_rng(2), 3, batch_size=7)
    b = ev.elbo(wrong_params(lin), lin["x"], lin["cfg"], np.random.default_rng(2), 3)
    np.testing.assert_allclose(a, b, rtol=0, atol=CHUNK_INVARIANCE)


def test_evaluate_model_report(lin, capsys):
    params = wrong_params(lin)
    report = ev.evaluate_model(params, lin["x"], lin["cfg"], k=200, rng=np.random.default_rng(0),
                               want_bits_per_dim=True, progress=True)
    json.dumps(report)  # JSON-ready
    assert "IW log-likelihood, K = 200: 400 examples in" in capsys.readouterr().err
    assert report["n"] == 400 and report["k"] == 200
    assert report["neg_elbo"] == pytest.approx(report["rec"] + report["kl"], rel=1e-12)
    assert report["kl"] == pytest.approx(sum(report["kl_per_dimension"]), rel=1e-12)
    # -IW_200 sits between -log p(x) and -ELBO
    true_nll, _ = ev.mean_and_stderr(-lin["log_px"])
    assert report["iw_nll"] < report["neg_elbo"]
    assert report["iw_nll"] > true_nll - N_SIGMAS * report["iw_nll_se"]
    assert report["active_units"] == J
    assert report["iw_bits_per_dim"] == pytest.approx(report["iw_nll"] / (D * math.log(2)))


def test_mutual_information_shows_progress_when_it_takes_long(lin, capsys, monkeypatch):
    monkeypatch.setattr(ev, "MI_PROGRESS_AFTER", 0.0)  # as if it had run for more than 1 s
    quiet = ev.mutual_information(exact_params(lin), lin["x"], lin["cfg"], np.random.default_rng(0))
    assert capsys.readouterr().err == ""
    shown = ev.mutual_information(exact_params(lin), lin["x"], lin["cfg"], np.random.default_rng(0),
                                  progress=True)
    err = capsys.readouterr().err
    assert shown == quiet and "\r" not in err  # stderr is captured: whole lines
    assert err.splitlines()[-1].startswith("mutual information: 400 x 400 log-densities in")
