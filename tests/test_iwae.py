"""The IWAE objective (vae_numpy.iwae): every gradient against finite differences, the bound's
composition, L_1 as the one-sample ELBO with a Monte Carlo KL, and clear errors for bad input.
The Monte Carlo properties of L_K (monotone in K, -> log p(x)) are at the end."""
import itertools

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

import vae_numpy as vn
from vae_numpy import iwae, model
from vae_numpy import linear_gaussian as lg
from vae_numpy.evaluate import log_importance_weights
from vae_numpy.gaussian import log_normal_diag, log_standard_normal
from vae_numpy.gradcheck import (TOLERANCE_FLOAT64, check_params, failures, numerical_gradient,
                                rel_error)
from vae_numpy.layers import ACTIVATIONS
from vae_numpy.likelihoods import LIKELIHOODS

D, J, B = 6, 3, 4  # small, so the finite-difference loop over every parameter is quick
KINKED = ("relu", "leaky_relu")
# ReLU pre-activations stay this far from 0: a step h = 1e-5 in any parameter moves a
# pre-activation by at most ~1e-5 * (sum of |inputs|) ~ 1e-4, so no kink is crossed.
KINK_MARGIN = 1e-3
# With K = 3, at least two examples of the batch have no normalized weight above this: where
# one sample takes all the weight, the check sees the gradient of a single log w and would
# miss a wrong softmax weighting.
MAX_WEIGHT = 0.9
FLOAT32_RTOL = 1e-4  # float32 round-off (6e-8) grown through a few layers and sums over D
# Two float64 evaluations of the same formula in a different order: a few ulps of |log w|.
ROUND_OFF = 1e-13


def make_case(likelihood, activation, hidden, k, seed=0):
    cfg = vn.VAEConfig(input_dim=D, latent_dim=J, encoder_hidden=hidden,
                       decoder_hidden=hidden[::-1], activation=activation,
                       likelihood=likelihood, sigma=0.8)
    rng = np.random.default_rng(seed)
    params = vn.init_params(cfg, rng)
    if likelihood == "bernoulli":
        x = (rng.random((B, D)) < 0.5).astype(float)
    elif likelihood == "continuous_bernoulli":
        x = rng.random((B, D))
    else:
        x = rng.standard_normal((B, D))
    eps = rng.standard_normal((k, B, J))
    return cfg, params, x, eps


def min_abs_preactivation(params, x, eps, cfg):
    """Smallest |a| over every kinked hidden unit, encoder and decoder (all K*B samples)."""
    (mu, logvar), (enc_hidden, _, _) = model.encoder_forward(params, x, cfg)
    z = mu + np.exp(logvar / 2) * eps  # (K, B, J)
    _, (dec_hidden, _) = model.decoder_forward(params, z.reshape(-1, J), cfg)
    return min(np.abs(act_cache).min() for _, act_cache in enc_hidden + dec_hidden)


def case_away_from_kinks(likelihood, activation, hidden, k):
    for seed in range(50):  # deterministic: the first seed whose units are all off the kink
        case = make_case(likelihood, activation, hidden, k, seed)
        if activation not in KINKED or min_abs_preactivation(*case[1:], case[0]) > KINK_MARGIN:
            return case
    raise AssertionError("no seed kept every ReLU pre-activation off the kink")


CONFIGS = list(itertools.product(sorted(LIKELIHOODS), sorted(ACTIVATIONS), [(5,), (5, 4)],
                                 ["mean", "sum"], [1, 3]))


@pytest.mark.parametrize("likelihood, activation, hidden, reduction, k", CONFIGS)
def test_every_parameter_gradient_matches_finite_differences(likelihood, activation, hidden,
                                                             reduction, k):
    cfg, params, x, eps = case_away_from_kinks(likelihood, activation, hidden, k)
    loss, grads, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction)
    assert list(grads) == list(params)
    if k > 1:
        assert np.sum(softmax(terms["log_weights"], axis=0).max(axis=0) <= MAX_WEIGHT) >= 2
    errors = check_params(lambda: iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction)[0],
                          params, grads, entries=None)
    assert not failures(errors, TOLERANCE_FLOAT64), failures(errors, TOLERANCE_FLOAT64)


def test_the_check_fails_when_the_weights_are_uniform():
    """The classic mistake: averaging the K ELBO-style gradients (s_k = 1/K) instead of
    weighting them by softmax(log w). The finite-difference check must reject it."""
    cfg, params, x, eps = case_away_from_kinks("bernoulli", "tanh", (5,), 3)
    singles = [iwae.iwae_loss_and_grads(params, x, eps[k:k + 1], cfg)[1] for k in range(3)]
    uniform = {name: sum(g[name] for g in singles) / 3 for name in params}
    errors = check_params(lambda: iwae.iwae_loss_and_grads(params, x, eps, cfg)[0],
                          params, uniform, entries=None)
    assert max(errors.values()) > 100 * TOLERANCE_FLOAT64, errors


# --- the bound's composition ------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
def test_loss_is_reduced_minus_log_mean_exp_of_the_log_weights(likelihood, reduction):
    cfg, params, x, eps = make_case(likelihood, "tanh", (5,), 4)
    loss, _, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction)
    assert terms["log_weights"].shape == (4, B)
    assert all(terms[k].shape == (B,) for k in ("iw_bound", "rec", "kl"))
    assert terms["mu"].shape == terms["logvar"].shape == (B, J)
    assert loss == (-terms["iw_bound"].mean() if reduction == "mean"
                    else -terms["iw_bound"].sum())
    np.testing.assert_allclose(terms["iw_bound"],
                               logsumexp(terms["log_weights"], axis=0) - np.log(4),
                               rtol=ROUND_OFF)


@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
def test_log_weights_equal_evaluate_log_importance_weights(likelihood):
    cfg, params, x, eps = make_case(likelihood, "softplus", (5, 4), 5)
    _, _, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg)
    np.testing.assert_allclose(terms["log_weights"],
                               log_importance_weights(params, x, eps, cfg), rtol=ROUND_OFF)


def test_log_weights_are_the_formulas_written_out():
    """log w recomputed with the density of q at z (the z - mu form, not the eps form)."""
    cfg, params, x, eps = make_case("bernoulli", "tanh", (5,), 3)
    _, _, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg)
    mu, logvar = terms["mu"], terms["logvar"]
    z = mu + np.sqrt(np.exp(logvar)) * eps  # (K, B, J)
    h = np.tanh(z @ params["dec.0.W"] + params["dec.0.b"])
    logits = h @ params["dec.out.W"] + params["dec.out.b"]  # (K, B, D)
    log_px_z = (x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits)).sum(-1)
    log_q = np.sum(-0.5 * np.log(2 * np.pi * np.exp(logvar))
                   - (z - mu) ** 2 / (2 * np.exp(logvar)), axis=-1)
    log_p = np.sum(-0.5 * np.log(2 * np.pi) - z**2 / 2, axis=-1)
    np.testing.assert_allclose(terms["log_weights"], log_px_z + log_p - log_q, rtol=1e-12)
    np.testing.assert_allclose(terms["rec"], -log_px_z.mean(0), rtol=1e-12)
    np.testing.assert_allclose(
        terms["kl"], 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=-1), rtol=1e-12)


@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
def test_l1_is_the_one_sample_elbo_with_a_monte_carlo_kl(likelihood):
    """L_1 = -(rec + log q(z|x) - log p(z)) at the same eps, with rec and z from the VAE's
    loss_and_grads and log q evaluated as the density at z."""
    cfg, params, x, eps = make_case(likelihood, "relu", (5, 4), 1)
    _, _, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg)
    _, _, vae = vn.loss_and_grads(params, x, eps[0], cfg)
    kl_monte_carlo = (log_normal_diag(vae["z"], vae["mu"], vae["logvar"])
                      - log_standard_normal(vae["z"]))
    np.testing.assert_allclose(terms["iw_bound"], -(vae["rec"] + kl_monte_carlo),
                               rtol=ROUND_OFF)
    np.testing.assert_array_equal(terms["rec"], vae["rec"])
    np.testing.assert_array_equal(terms["kl"], vae["kl"])


def test_mean_reduction_is_sum_divided_by_batch():
    cfg, params, x, eps = make_case("gaussian_learned", "softplus", (5, 4), 3)
    loss_mean, g_mean, _ = iwae.iwae_loss_and_grads(params, x, eps, cfg, "mean")
    loss_sum, g_sum, _ = iwae.iwae_loss_and_grads(params, x, eps, cfg, "sum")
    np.testing.assert_allclose(loss_sum, B * loss_mean, rtol=1e-14)
    for k in params:
        np.testing.assert_allclose(g_sum[k], B * g_mean[k], rtol=1e-12, atol=1e-14)


def test_sample_order_does_not_matter():
    """L_K is symmetric in the K samples: permuting eps along the sample axis changes nothing
    but round-off (and the log-weights are permuted with it)."""
    cfg, params, x, eps = make_case("continuous_bernoulli", "sigmoid", (5,), 4)
    loss, grads, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg)
    order = [2, 0, 3, 1]
    loss_p, grads_p, terms_p = iwae.iwae_loss_and_grads(params, x, eps[order], cfg)
    np.testing.assert_allclose(loss_p, loss, rtol=ROUND_OFF)
    np.testing.assert_array_equal(terms_p["log_weights"], terms["log_weights"][order])
    for k in params:
        np.testing.assert_allclose(grads_p[k], grads[k], rtol=1e-12, atol=1e-15, err_msg=k)


def test_bound_is_stable_for_huge_log_weights():
    """A Gaussian decoder with a tiny sigma gives log w of order -1e6; exp(log w) underflows to
    0, but the bound and the weights stay finite and exact (log-sum-exp about the max)."""
    cfg, params, x, eps = make_case("gaussian", "tanh", (5,), 3)
    cfg = vn.VAEConfig(**{**cfg.to_dict(), "sigma": 1e-3})
    x = 30 * x
    loss, grads, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg)
    log_w = terms["log_weights"]
    assert log_w.max() < -1e5 and np.isfinite(loss)
    assert all(np.isfinite(g).all() for g in grads.values())
    np.testing.assert_allclose(terms["iw_bound"], logsumexp(log_w, axis=0) - np.log(3),
                               rtol=ROUND_OFF)


@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
def test_float32_agrees_with_float64(likelihood):
    cfg, params, x, eps = make_case(likelihood, "relu", (5, 4), 3)
    cfg32 = vn.VAEConfig(**{**cfg.to_dict(), "dtype": "float32"})
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    loss32, g32, t32 = iwae.iwae_loss_and_grads(p32, x.astype(np.float32),
                                                eps.astype(np.float32), cfg32)
    loss64, g64, _ = iwae.iwae_loss_and_grads(params, x, eps, cfg)
    assert loss32.dtype == np.float32
    assert all(t32[k].dtype == np.float32 for k in ("iw_bound", "log_weights", "rec", "kl"))
    assert all(g.dtype == np.float32 for g in g32.values())
    np.testing.assert_allclose(loss32, loss64, rtol=FLOAT32_RTOL)
    for k in params:
        scale = np.abs(g64[k]).max()
        np.testing.assert_allclose(g32[k], g64[k], rtol=0, atol=FLOAT32_RTOL * scale, err_msg=k)


def test_private_step_is_the_public_function_without_checks():
    cfg, params, x, eps = make_case("bernoulli", "relu", (5,), 3)
    loss, grads, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg, "sum")
    loss_s, grads_s, terms_s = iwae._iwae_step(params, x, eps, cfg, "sum")
    assert loss_s == loss
    assert all(np.array_equal(grads_s[k], grads[k]) for k in params)
    assert all(np.array_equal(terms_s[k], terms[k]) for k in terms)


# --- bad input ----------------------------------------------------------------------------

@pytest.fixture
def small():
    return make_case("bernoulli", "relu", (5,), 2)


def test_beta_other_than_one_is_refused(small):
    cfg, params, x, eps = small
    for field, value in (("beta", 0.5), ("rec_weight", 0.0)):
        bad = vn.VAEConfig(**{**cfg.to_dict(), field: value})
        with pytest.raises(ValueError, match=f"cfg.{field} is {value}.*must be 1"):
            iwae.iwae_loss_and_grads(params, x, eps, bad)


def test_two_dimensional_eps_says_where_the_sample_axis_goes(small):
    cfg, params, x, eps = small
    with pytest.raises(ValueError, match=r"eps has shape \(4, 3\), expected \(K, 4, 3\).*"
                                         r"eps\[None\]"):
        iwae.iwae_loss_and_grads(params, x, eps[0], cfg)


def test_sample_axis_last_is_refused(small):
    cfg, params, x, eps = small
    with pytest.raises(ValueError, match=r"eps has shape \(4, 3, 2\), expected \(K, 4, 3\)"):
        iwae.iwae_loss_and_grads(params, x, np.moveaxis(eps, 0, -1), cfg)


def test_zero_samples_are_refused(small):
    cfg, params, x, eps = small
    with pytest.raises(ValueError, match=r"eps has shape \(0, 4, 3\)"):
        iwae.iwae_loss_and_grads(params, x, eps[:0], cfg)


def test_dtype_mismatch_is_an_error_not_a_cast(small):
    cfg, params, x, eps = small
    with pytest.raises(TypeError, match="eps has dtype float32 but the parameters are float64"):
        iwae.iwae_loss_and_grads(params, x, eps.astype(np.float32), cfg)
    with pytest.raises(TypeError, match="x has dtype float32"):
        iwae.iwae_loss_and_grads(params, x.astype(np.float32), eps, cfg)


def test_nan_and_bad_x_are_reported(small):
    cfg, params, x, eps = small
    bad = eps.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"eps contains NaN or inf \(1 entries\)"):
        iwae.iwae_loss_and_grads(params, x, bad, cfg)
    with pytest.raises(ValueError, match=r"x has shape \(4, 5\), expected \(B, 6\)"):
        iwae.iwae_loss_and_grads(params, x[:, :5], eps, cfg)


@pytest.mark.parametrize("estimator", ["iwae", "stl", "dreg"])
def test_a_diverged_encoder_raises_the_error_of_loss_and_grads(small, estimator):
    """logvar pushed to 360 (beyond LOGVAR_MAX = 354.9 in float64): the public function and
    the unchecked step train runs raise loss_and_grads' FloatingPointError, word for word,
    instead of returning a loss of 1e156 or NaN."""
    cfg, params, x, eps = small
    params = {**params, "enc.logvar.W": np.zeros_like(params["enc.logvar.W"]),
              "enc.logvar.b": np.full_like(params["enc.logvar.b"], 360.0)}
    with pytest.raises(FloatingPointError) as vae_error:
        vn.loss_and_grads(params, x, eps[0], cfg)
    assert "the encoder's logvar is 360" in str(vae_error.value)
    for call in (iwae.iwae_loss_and_grads, iwae._iwae_step):
        with pytest.raises(FloatingPointError) as error:
            call(params, x, eps, cfg, "mean", estimator)
        assert str(error.value) == str(vae_error.value)


def test_bad_reduction_is_refused(small):
    cfg, params, x, eps = small
    with pytest.raises(ValueError, match="reduction must be one of"):
        iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction="avg")


# --- an independent PyTorch implementation (tests/torch_iwae.py) -----------------------------

# Two float64 implementations of the same formulas differ by round-off only; torch's
# continuous Bernoulli switches to its Taylor series only within 0.499 < sigmoid(l) < 0.501,
# where the closed form has lost ~4 digits (measured here: 2.7e-12 worst for the continuous
# Bernoulli, 3.3e-15 for the other likelihoods). Every real formula mistake is off by 1e-3 or more.
TORCH_REL_TOL = 1e-10


@pytest.fixture
def torch_iwae():
    pytest.importorskip("torch",
                        reason="the PyTorch comparison needs torch (pip install -e '.[torch]')")
    import torch_iwae
    return torch_iwae


def torch_errors(torch_iwae, params, x, eps, cfg, reduction):
    """{quantity: rel_error} of vae_numpy against the torch implementation."""
    loss, grads, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction)
    t_loss, t_grads, t_bound, t_log_w = torch_iwae.iwae_loss_and_grads(params, x, eps, cfg,
                                                                       reduction)
    assert set(t_grads) == set(grads)
    errors = {"loss": rel_error(loss, t_loss), "iw_bound": rel_error(terms["iw_bound"], t_bound),
              "log_weights": rel_error(terms["log_weights"], t_log_w)}
    errors.update({f"grad/{k}": rel_error(grads[k], t_grads[k]) for k in grads})
    return errors


TORCH_CONFIGS = list(itertools.product(sorted(LIKELIHOODS), sorted(ACTIVATIONS),
                                       [(), (5,), (5, 4)], [1, 3, 8]))


@pytest.mark.torch
@pytest.mark.parametrize("likelihood, activation, hidden, k", TORCH_CONFIGS)
def test_equals_an_independent_pytorch_implementation(torch_iwae, likelihood, activation,
                                                      hidden, k):
    cfg, params, x, eps = make_case(likelihood, activation, hidden, k)
    for reduction in ("mean", "sum"):
        errors = torch_errors(torch_iwae, params, x, eps, cfg, reduction)
        assert len(errors) == 3 + len(params)
        bad = {name: f"{e:.1e}" for name, e in errors.items() if not e <= TORCH_REL_TOL}
        assert not bad, f"{likelihood} {activation} {hidden} K={k} {reduction}: {bad}"


@pytest.mark.torch
def test_burda_sized_model_equals_pytorch(torch_iwae):
    """The architecture of Burda et al.'s one-stochastic-layer row: 784-200-200-50 tanh, K = 5."""
    cfg = vn.VAEConfig(input_dim=784, latent_dim=50, encoder_hidden=(200, 200),
                       decoder_hidden=(200, 200), activation="tanh")
    rng = np.random.default_rng(4)
    params = vn.init_params(cfg, rng)
    x = (rng.random((8, 784)) < 0.3).astype(float)
    eps = rng.standard_normal((5, 8, 50))
    errors = torch_errors(torch_iwae, params, x, eps, cfg, "mean")
    bad = {name: f"{e:.1e}" for name, e in errors.items() if not e <= TORCH_REL_TOL}
    assert not bad, bad


@pytest.mark.torch
def test_the_torch_comparison_catches_a_missing_log_k(torch_iwae):
    """The comparison has teeth: vae_numpy's bound without the -log K differs from torch's by
    log K = 1.1 nats, far above the tolerance."""
    cfg, params, x, eps = make_case("bernoulli", "tanh", (5,), 3)
    _, _, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg)
    _, _, t_bound, _ = torch_iwae.iwae_loss_and_grads(params, x, eps, cfg)
    assert rel_error(terms["iw_bound"], t_bound) <= TORCH_REL_TOL
    assert rel_error(terms["iw_bound"] + np.log(3), t_bound) > 1e-2


# --- Monte Carlo properties of L_K -----------------------------------------------------------
#
# Every check below uses a fixed seed and states its bound in standard errors (SE) of a mean
# over independent (example, noise) draws; each also asserts the SE is small enough that the
# check has power (stated next to it).

Z_BOUND = 4  # |mean| <= 4 SE: a correct implementation fails with probability 6e-5
Z_POWER = 3  # an increment that must be positive: > 3 SE


def mean_and_se(a):
    return a.mean(), a.std(ddof=1) / np.sqrt(a.size)


def nested_bounds(params, x, eps, cfg, ks):
    """{K: L_K (B,)} with L_K from the first K samples of eps (K_max, B, J): the differences
    L_K' - L_K are paired, so their SE is that of the difference, not of each bound."""
    return {k: iwae.iwae_loss_and_grads(params, x, eps[:k], cfg)[2]["iw_bound"] for k in ks}


@pytest.mark.slow
def test_lk_increases_with_k_in_expectation():
    """E[L_1] <= E[L_2] <= ... <= E[L_16] on a randomly initialized nonlinear VAE, whose q is
    far from its posterior. Each increment E[L_2K] - E[L_K] is estimated from nested samples
    over 100 examples x 100 replicates and must be positive by more than 3 SE (the smallest,
    8 -> 16, measured +0.018 nats, 8.8 SE). Strictly increasing, so non-decreasing a fortiori."""
    cfg = vn.VAEConfig(input_dim=12, latent_dim=3, encoder_hidden=(8,), decoder_hidden=(8,),
                       activation="tanh")
    rng = np.random.default_rng(0)
    params = vn.init_params(cfg, rng)
    x = np.tile((rng.random((100, 12)) < 0.5).astype(float), (100, 1))  # (10000, D)
    ks = (1, 2, 4, 8, 16)
    bounds = nested_bounds(params, x, rng.standard_normal((16, len(x), 3)), cfg, ks)
    for k, k2 in zip(ks, ks[1:]):
        increment, se = mean_and_se(bounds[k2] - bounds[k])
        assert increment > Z_POWER * se, f"E[L_{k2}] - E[L_{k}] = {increment:.4f} +- {se:.4f}"


def linear_gaussian_case(mean_shift, logvar_shift, n=400, seed=0):
    """A linear-Gaussian VAE (D = 5, J = 2, orthogonal decoder rows, so its exact posterior is
    a diagonal Gaussian) with the encoder's mean and log-variance shifted from the exact
    posterior by the given amounts, and n examples drawn from the model with their exact
    log p(x)."""
    D, J, sigma = 5, 2, 0.7
    rng = np.random.default_rng(seed)
    W = lg.orthogonal_decoder(J, D, [2.0, 1.0], rng)
    b = rng.standard_normal(D)
    enc_W, enc_b, logvar_b = lg.posterior_encoder(W, b, sigma)
    params = lg.vae_params(W, b, enc_W, enc_b + mean_shift, logvar_b + logvar_shift)
    x = lg.sample_data(n, W, b, sigma, rng)
    return lg.linear_gaussian_config(D, J, sigma), params, x, lg.log_marginal(x, W, b, sigma), rng


@pytest.mark.parametrize("k", [1, 2, 5, 50])
def test_true_posterior_encoder_gives_log_px_exactly_for_every_k(k):
    """With q(z|x) = p(z|x), every weight is p(x, z) / p(z|x) = p(x): log w_k = log p(x) for
    every sample, so L_K = log p(x) for every K and every eps, to round-off (measured 1.1e-14
    at |log p(x)| up to 12.5), not only in expectation."""
    cfg, params, x, log_px, rng = linear_gaussian_case(0.0, 0.0)
    _, _, terms = iwae.iwae_loss_and_grads(params, x, rng.standard_normal((k, len(x), 2)), cfg)
    scale = np.abs(log_px).max()
    assert np.abs(terms["log_weights"] - log_px).max() <= ROUND_OFF * scale
    assert np.abs(terms["iw_bound"] - log_px).max() <= ROUND_OFF * scale


def test_l1_expectation_is_the_closed_form_elbo():
    """E[L_1] = ELBO = E_q[log p(x|z)] - KL(q || p(z)), both in closed form on the linear model
    (40,000 draws: SE 0.007 nats, against a mean |ELBO| of 7.7: a 1% error is 11 SE). And the ELBO's
    gap is the closed-form KL(q || p(z|x)), 0.64 nats here: the bound is not tight at K = 1."""
    cfg, params, x, log_px, rng = linear_gaussian_case(0.3, 0.4)
    mu, logvar = vn.encode(params, x, cfg)
    W, b = params["dec.out.W"], params["dec.out.b"]
    elbo = (lg.expected_log_likelihood(x, mu, logvar, W, b, cfg.sigma)
            - 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=-1))
    R = 100
    eps = rng.standard_normal((1, R * len(x), 2))
    _, _, terms = iwae.iwae_loss_and_grads(params, np.tile(x, (R, 1)), eps, cfg)
    error, se = mean_and_se(terms["iw_bound"] - np.tile(elbo, R))
    assert abs(error) <= Z_BOUND * se, f"E[L_1] - ELBO = {error:.4f} +- {se:.4f}"
    assert Z_BOUND * se < 0.01 * abs(elbo.mean())  # power: a 1% error fails
    mean, cov = lg.posterior(x, W, b, cfg.sigma)
    kl = lg.kl_diag_to_full(mu, logvar, mean, cov)
    np.testing.assert_allclose(log_px - elbo, kl, rtol=1e-10)
    assert kl.mean() > 0.5


@pytest.mark.slow
def test_gap_to_log_px_shrinks_with_k_and_vanishes_at_large_k():
    """log p(x) - E[L_K] on the linear model with an imperfect encoder: it decreases from
    K = 1 to 4, 16 and 64 (each step > 3 SE, paired over 4,000 nested draws), and at K = 1024
    it is within 4 SE of 0, with an SE below 1% of the K = 1 gap (measured: gap 0.67 at K = 1,
    -0.0006 +- 0.0015 at K = 1024; the smallest decrease, 16 -> 64, 0.020 nats = 6 SE).
    log p(x) is exact (linear_gaussian.log_marginal)."""
    cfg, params, x, log_px, rng = linear_gaussian_case(0.3, 0.4)
    R = 10
    xs, log_pxs = np.tile(x, (R, 1)), np.tile(log_px, R)
    ks = (1, 4, 16, 64)
    bounds = nested_bounds(params, xs, rng.standard_normal((64, len(xs), 2)), cfg, ks)
    gaps = {k: log_pxs - bounds[k] for k in ks}
    for k, k2 in zip(ks, ks[1:]):
        decrease, se = mean_and_se(gaps[k] - gaps[k2])
        assert decrease > Z_POWER * se, f"gap_{k} - gap_{k2} = {decrease:.4f} +- {se:.4f}"
    _, _, terms = iwae.iwae_loss_and_grads(params, x, rng.standard_normal((1024, len(x), 2)),
                                           cfg)
    gap, se = mean_and_se(log_px - terms["iw_bound"])
    assert abs(gap) <= Z_BOUND * se, f"log p(x) - E[L_1024] = {gap:.4f} +- {se:.4f}"
    assert se < 0.01 * gaps[1].mean()  # power: a bound stuck at 4% of the K = 1 gap fails


@pytest.mark.parametrize("k", [1, 5])
def test_gradient_with_the_true_posterior_is_unbiased_for_grad_log_px(k):
    """With q(z|x) = p(z|x), E[grad L_K] = grad log p(x) for every K: for the decoder it is
    Fisher's identity E_p(z|x)[grad log p(x, z)] = grad log p(x) (the weights are all equal);
    for the encoder it is 0, since q already maximizes E[L_K]. grad log p(x) is the central
    difference of the closed-form linear_gaussian.log_marginal. Mean over 250 / K batches of
    2,000 examples (data off the model, so the summed gradient grows like N); every entry
    within 4 SE, and 4 SE below 1% of the decoder gradient's largest entry and of N / 2, the
    shift a missing log q term would give d/d enc.logvar.b (measured 0.85% at most)."""
    cfg, params, x, _, rng = linear_gaussian_case(0.0, 0.0, n=2000)
    x = 1.5 * x + 1.0
    W, b = params["dec.out.W"].copy(), params["dec.out.b"].copy()
    log_px = lambda: lg.log_marginal(x, W, b, cfg.sigma).sum()  # noqa: E731
    expected = {name: np.zeros_like(p) for name, p in params.items()}
    expected["dec.out.W"] = numerical_gradient(log_px, W)
    expected["dec.out.b"] = numerical_gradient(log_px, b)
    R = 250 // k
    grads = [iwae.iwae_loss_and_grads(params, x, rng.standard_normal((k, len(x), 2)), cfg,
                                      "sum")[1] for _ in range(R)]
    for name in params:
        g = -np.stack([gr[name] for gr in grads])  # (R, ...) estimates of grad sum_n L_K
        mean, se = g.mean(axis=0), g.std(axis=0, ddof=1) / np.sqrt(R)
        z = np.abs(mean - expected[name]) / se
        assert z.max() <= Z_BOUND, f"{name}: |mean - grad log p(x)| up to {z.max():.1f} SE"
        if name.startswith("dec") or name == "enc.logvar.b":
            scale = np.abs(expected[name]).max() if name.startswith("dec") else len(x) / 2
            assert Z_BOUND * se.max() < 0.01 * scale, f"{name}: 4 SE = {Z_BOUND * se.max():.3g}"
