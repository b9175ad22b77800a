"""The IWAE step and the IW log-weights as they run: the cache-sized blocks of
(samples, examples) change no number (bit for bit, every likelihood and activation, both
dtypes), and the learned-Gaussian decoder's log-variance floor (VAEConfig.decoder_logvar_min)
applies in the IWAE loss, its gradient and the log-weights of the evaluation."""
import itertools

import numpy as np
import pytest

import vae_numpy as vn
from vae_numpy import iwae
from vae_numpy.evaluate import (_log_weights, encode, example_noise, iw_log_likelihood,
                                log_importance_weights)
from vae_numpy.gaussian import log_normal_diag, log_standard_normal
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, check_params, failures
from vae_numpy.layers import ACTIVATIONS
from vae_numpy.likelihoods import LIKELIHOODS

D, J = 30, 4
# BLOCK_BYTES values that make blocks of part of one sample's examples (with a partial last
# block), of one whole sample, and of several samples, for the shapes below.
BLOCK_SIZES = (3 * D * 8 + 1, 9 * D * 8, 20 * D * 8 * 9)


def config(likelihood, activation, dtype, **kw):
    return vn.VAEConfig(D, J, (16, 12), (14,), activation=activation, likelihood=likelihood,
                        dtype=dtype, sigma=0.8, **kw)


def data(cfg, batch, rng):
    return rng.random((batch, cfg.input_dim)).astype(cfg.dtype)


# --- blocks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("block_bytes", [1, 100, 1000, 10**6])
@pytest.mark.parametrize("n_samples, batch", [(1, 1), (5, 1), (3, 7), (7, 100)])
def test_blocks_cover_every_sample_and_example_once(n_samples, batch, block_bytes,
                                                    monkeypatch):
    monkeypatch.setattr(iwae, "BLOCK_BYTES", block_bytes)
    row_bytes = 8 * D
    seen = np.zeros((n_samples, batch), int)
    for ks, bs in iwae.blocks(n_samples, batch, row_bytes):
        rows = (ks.stop - ks.start) * (bs.stop - bs.start)
        assert rows >= 1 and (rows == 1 or rows * row_bytes <= block_bytes)
        seen[ks, bs] += 1
    assert np.all(seen == 1)


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("likelihood, activation",
                         list(itertools.product(sorted(LIKELIHOODS), sorted(ACTIVATIONS))))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_iwae_step_does_not_depend_on_the_blocks(likelihood, activation, dtype,
                                                     monkeypatch):
    cfg = config(likelihood, activation, dtype)
    rng = np.random.default_rng(0)
    params = vn.init_params(cfg, rng)
    x = data(cfg, 9, rng)
    eps = rng.standard_normal((5, 9, J)).astype(dtype)
    results = []
    for block_bytes in BLOCK_SIZES:
        monkeypatch.setattr(iwae, "BLOCK_BYTES", block_bytes)
        results.append(iwae.iwae_loss_and_grads(params, x, eps, cfg, "sum", "dreg"))
    (loss, grads, terms), others = results[0], results[1:]
    for loss_b, grads_b, terms_b in others:
        assert same(loss_b, loss)
        assert all(same(grads_b[k], grads[k]) for k in params)
        assert all(same(terms_b[k], terms[k]) for k in terms)


@pytest.mark.parametrize("likelihood, activation",
                         list(itertools.product(sorted(LIKELIHOODS), sorted(ACTIVATIONS))))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_log_weights_do_not_depend_on_the_blocks(likelihood, activation, dtype,
                                                     monkeypatch):
    """The decoder runs on each block separately: each row's matrix products come out the
    same whatever the other rows (true of OpenBLAS for these shapes), so bit for bit."""
    cfg = config(likelihood, activation, dtype)
    rng = np.random.default_rng(0)
    params = vn.init_params(cfg, rng)
    x = data(cfg, 9, rng)
    mu, logvar = encode(params, x, cfg)
    eps = rng.standard_normal((7, 9, J)).astype(dtype)
    results = []
    for block_bytes in BLOCK_SIZES:
        monkeypatch.setattr(iwae, "BLOCK_BYTES", block_bytes)
        results.append(_log_weights(params, x, mu, logvar, eps, cfg))
    assert results[0].shape == (7, 9) and results[0].dtype == np.dtype(dtype)
    assert all(same(r, results[0]) for r in results[1:])


def test_iw_log_likelihood_reads_the_parameters_at_every_call():
    """Same model and seed: the estimate moves when a parameter array is replaced (nothing
    is cached between calls)."""
    cfg = vn.VAEConfig(D, J, (16,), (14,))
    rng = np.random.default_rng(1)
    params = vn.init_params(cfg, rng)
    x = (rng.random((5, D)) < 0.5).astype(np.float64)
    before = iw_log_likelihood(params, x, cfg, 20, np.random.default_rng(2), progress=False)
    params["dec.out.b"] = params["dec.out.b"] + 1.0
    after = iw_log_likelihood(params, x, cfg, 20, np.random.default_rng(2), progress=False)
    assert np.all(before != after)


# --- the decoder's log-variance floor -------------------------------------------------------------
#
# The reproduction that found it ignored by the former copies: gaussian_learned, floor 1.0
# (above most of the raw log-variances at initialization, so it changes the loss by nats).

FLOOR = 1.0
# The same float64 formulas evaluated in another order: a few ulps of |log w| ~ 50.
ROUND_OFF = 1e-12


def floor_case(floor=FLOOR, k=3, seed=0):
    cfg = vn.VAEConfig(input_dim=20, latent_dim=3, encoder_hidden=(16,), decoder_hidden=(16,),
                       likelihood="gaussian_learned", decoder_logvar_min=floor)
    rng = np.random.default_rng(seed)
    params = vn.init_params(cfg, rng)
    x = rng.standard_normal((8, 20))
    return cfg, params, x, rng.standard_normal((k, 8, 3))


def log_weights_written_out(params, x, eps, floor):
    """log p(x|z) + log p(z) - log q(z|x) with the floor applied by hand: (K, B)."""
    h = np.maximum(x @ params["enc.0.W"] + params["enc.0.b"], 0)
    mu = h @ params["enc.mu.W"] + params["enc.mu.b"]
    logvar = h @ params["enc.logvar.W"] + params["enc.logvar.b"]
    z = mu + np.exp(0.5 * logvar) * eps  # (K, B, J)
    h = np.maximum(z @ params["dec.0.W"] + params["dec.0.b"], 0)
    mean = h @ params["dec.out.W"] + params["dec.out.b"]
    raw = h @ params["dec.out_logvar.W"] + params["dec.out_logvar.b"]
    dec_logvar = raw if floor is None else np.maximum(raw, floor)
    log_px_z = log_normal_diag(x, mean, dec_logvar)
    return log_px_z + log_standard_normal(z) - log_normal_diag(z, mu, logvar), raw


@pytest.mark.parametrize("estimator", ["iwae", "stl", "dreg"])
def test_the_floor_applies_to_the_iwae_loss(estimator):
    cfg, params, x, eps = floor_case()
    loss, _, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg, "mean", estimator)
    expected, raw = log_weights_written_out(params, x, eps, FLOOR)
    assert np.mean(raw < FLOOR) > 0.5  # the floor binds for most pixels
    np.testing.assert_allclose(terms["log_weights"], expected, rtol=ROUND_OFF)
    unfloored, _ = log_weights_written_out(params, x, eps, None)
    assert np.abs(terms["log_weights"] - unfloored).max() > 1.0  # nats: the floor matters
    cfg_none = vn.VAEConfig(**{**cfg.to_dict(), "decoder_logvar_min": None})
    loss_none = iwae.iwae_loss_and_grads(params, x, eps, cfg_none, "mean", estimator)[0]
    assert loss - loss_none > 1.0


@pytest.mark.parametrize("estimator", ["iwae", "stl", "dreg"])
def test_the_gradient_under_the_floor_matches_finite_differences(estimator):
    """Central differences of the floored loss: every parameter for the IWAE gradient, the
    decoder's for STL and DReG (their decoder gradient is L_K's; their encoder gradients are
    checked against their surrogates in tests/test_iwae_estimators.py). Below the floor the
    log-variance head gets no gradient. No raw log-variance lies within kink_margin of the
    floor, so no step h crosses the kink."""
    kink_margin = 1e-3
    cfg, params, x, eps = floor_case(k=3)
    _, raw = log_weights_written_out(params, x, eps, FLOOR)
    assert np.abs(raw - FLOOR).min() > kink_margin
    _, grads, _ = iwae.iwae_loss_and_grads(params, x, eps, cfg, "mean", estimator)
    keys = list(params) if estimator == "iwae" else [k for k in params if k.startswith("dec.")]
    errors = check_params(lambda: iwae.iwae_loss_and_grads(params, x, eps, cfg)[0], params,
                          grads, keys=keys)
    assert not failures(errors, TOLERANCE_FLOAT64), failures(errors, TOLERANCE_FLOAT64)


def test_the_floor_applies_to_the_log_weights_of_the_evaluation():
    cfg, params, x, eps = floor_case(k=6)
    expected, _ = log_weights_written_out(params, x, eps, FLOOR)
    np.testing.assert_allclose(log_importance_weights(params, x, eps, cfg), expected,
                               rtol=ROUND_OFF)
    # iw_log_likelihood: example n draws its noise from its own stream (example_noise)
    seed = int(np.random.default_rng(3).integers(2**63))
    noise = np.stack([example_noise(seed, n, 6, 3, np.float64) for n in range(len(x))], axis=1)
    expected, _ = log_weights_written_out(params, x, noise, FLOOR)
    want = np.logaddexp.reduce(expected, axis=0) - np.log(6)
    got = iw_log_likelihood(params, x, cfg, 6, np.random.default_rng(3), batch_size=3,
                            chunk_size=4, progress=False)
    np.testing.assert_allclose(got, want, rtol=ROUND_OFF)
