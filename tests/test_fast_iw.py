"""The blocked importance weights equal evaluate._log_weights bit for bit."""
import itertools

import numpy as np
import pytest

from vae_numpy import VAEConfig, init_params
from vae_numpy.evaluate import _log_weights, encode, iw_log_likelihood
from vae_numpy.fast_iw import LogWeights
from vae_numpy.layers import ACTIVATIONS
from vae_numpy.likelihoods import LIKELIHOODS

D, J, B = 30, 4, 9


@pytest.mark.parametrize("likelihood,activation",
                         list(itertools.product(sorted(LIKELIHOODS), sorted(ACTIVATIONS))))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("block_bytes", [None, 3000])
def test_log_weights_equal_the_readable_ones(likelihood, activation, dtype, block_bytes,
                                             threads, monkeypatch):
    if block_bytes is not None:   # several blocks of samples, the last one partial
        monkeypatch.setattr("vae_numpy.fast_iw.ROW_BLOCK_BYTES", block_bytes)
    cfg = VAEConfig(D, J, (16,), (14, 12), activation=activation, likelihood=likelihood,
                    dtype=dtype, sigma=0.7)
    rng = np.random.default_rng(0)
    params = init_params(cfg, rng)
    x = rng.random((B, D)).astype(dtype)
    mu, logvar = encode(params, x, cfg)
    log_weights = LogWeights(params, cfg)
    for S in (7, 3, 7):   # a smaller chunk, then the first size again (buffers reused)
        eps = rng.standard_normal((S, B, J), dtype=dtype)
        expected = _log_weights(params, x, mu, logvar, eps, cfg)
        got = log_weights(x, mu, logvar, eps)
        assert got.dtype == expected.dtype and got.shape == (S, B)
        assert np.array_equal(got, expected), (
            f"S={S}: max |diff| {np.max(np.abs(got - expected))}")


def test_iw_log_likelihood_reads_parameters_at_every_call():
    """Same model and seed: the estimate moves when a parameter array is replaced."""
    cfg = VAEConfig(D, J, (16,), (14,))
    rng = np.random.default_rng(1)
    params = init_params(cfg, rng)
    x = (rng.random((5, D)) < 0.5).astype(np.float64)
    before = iw_log_likelihood(params, x, cfg, 20, np.random.default_rng(2), progress=False)
    params["dec.out.b"] = params["dec.out.b"] + 1.0
    after = iw_log_likelihood(params, x, cfg, 20, np.random.default_rng(2), progress=False)
    assert np.all(before != after)
