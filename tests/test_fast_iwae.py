"""The fast IWAE training step equals vae_numpy.iwae._iwae_step bit for bit."""
import importlib
import itertools

import numpy as np
import pytest

from vae_numpy import VAEConfig, init_params
from vae_numpy.data import synthetic_dataset
from vae_numpy.fast_iwae import FastIWAEStep, sample_row_blocks
from vae_numpy.fast_step import LIKELIHOOD_BLOCK_ROWS
from vae_numpy.iwae import _iwae_step
from vae_numpy.layers import ACTIVATIONS
from vae_numpy.likelihoods import LIKELIHOODS
from vae_numpy.optim import Adam

# The module, not the function vae_numpy.train that the package exports under the same name.
train_module = importlib.import_module("vae_numpy.train")

D, J = 30, 4
KS = (1, 3, 5)
# One batch spanning several likelihood row blocks with a partial last block, one smaller than
# a block (train's last batch of an epoch), then the first again (its workspace is reused).
BATCHES = (2 * LIKELIHOOD_BLOCK_ROWS + 5, 3, 2 * LIKELIHOOD_BLOCK_ROWS + 5)


def assert_same(readable, fast, label):
    """loss, every grad and every term equal bit for bit (and of the same dtype)."""
    (l1, g1, t1), (l2, g2, t2) = readable, fast
    assert l1.dtype == l2.dtype and np.array_equal(l1, l2), f"{label}: loss {l1!r} != {l2!r}"
    assert list(g1) == list(g2), f"{label}: grads keys {list(g2)}, expected {list(g1)}"
    for k in g1:
        assert g2[k].dtype == g1[k].dtype, f"{label}: grad {k} dtype {g2[k].dtype}"
        assert np.array_equal(g1[k], g2[k]), (
            f"{label}: grad {k} differs, max |diff| {np.max(np.abs(g1[k] - g2[k]))}")
    assert sorted(t1) == sorted(t2), f"{label}: terms {sorted(t2)}, expected {sorted(t1)}"
    for k in t1:
        assert t2[k].dtype == t1[k].dtype and t2[k].shape == t1[k].shape, f"{label}: term {k}"
        assert np.array_equal(t1[k], t2[k]), f"{label}: term {k} differs"


def compare(cfg, reduction="mean", seed=0):
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    step = FastIWAEStep(cfg, reduction)
    for k, B in itertools.product(KS, BATCHES):
        x = rng.random((B, cfg.input_dim)).astype(cfg.dtype)
        eps = rng.standard_normal((k, B, cfg.latent_dim), dtype=cfg.dtype)
        label = f"{cfg}, {reduction}, K={k}, B={B}"
        assert_same(_iwae_step(params, x, eps, cfg, reduction), step(params, x, eps, 1.0), label)


@pytest.mark.parametrize("likelihood,activation",
                         list(itertools.product(sorted(LIKELIHOODS), sorted(ACTIVATIONS))))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fast_iwae_step_equals_iwae_step_for_every_likelihood_and_activation(
        likelihood, activation, dtype, reduction, threads):
    cfg = VAEConfig(D, J, (16, 12), (14,), activation=activation, likelihood=likelihood,
                    dtype=dtype, sigma=0.8)
    compare(cfg, reduction)


@pytest.mark.parametrize("encoder_hidden,decoder_hidden",
                         [((), ()), ((), (14,)), ((16, 12), ()), ((16, 12, 8), (8, 10, 14))])
@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
def test_fast_iwae_step_equals_iwae_step_for_any_depth(encoder_hidden, decoder_hidden,
                                                       activation, threads):
    cfg = VAEConfig(D, J, encoder_hidden, decoder_hidden, activation=activation,
                    dtype="float64")
    compare(cfg)


def test_one_step_serves_both_dtypes_and_uses_a_parameter_the_caller_replaced():
    rng = np.random.default_rng(1)
    for dtype in ("float64", "float32"):
        cfg = VAEConfig(D, J, (16,), (14,), activation="tanh", dtype=dtype)
        params = init_params(cfg, rng)
        x = rng.random((7, D)).astype(dtype)
        eps = rng.standard_normal((3, 7, J)).astype(dtype)
        step = FastIWAEStep(cfg)
        step(params, x, eps, 1.0)
        params["enc.logvar.W"] = rng.standard_normal(params["enc.logvar.W"].shape).astype(dtype)
        params["dec.out.W"][0] += 1.0
        assert_same(_iwae_step(params, x, eps, cfg), step(params, x, eps, 1.0),
                    f"{dtype}, after replacing enc.logvar.W and editing dec.out.W")


def test_sample_row_blocks_cover_the_stack_once_within_one_sample():
    sizes = (1, 3, LIKELIHOOD_BLOCK_ROWS, 2 * LIKELIHOOD_BLOCK_ROWS + 5)
    for k, B in itertools.product(KS, sizes):
        seen = np.zeros(k * B, int)
        for rows, x_rows in sample_row_blocks(k, B):
            assert rows.stop - rows.start == x_rows.stop - x_rows.start <= LIKELIHOOD_BLOCK_ROWS
            assert rows.start // B == (rows.stop - 1) // B          # one sample per block
            assert rows.start % B == x_rows.start                    # the rows of its x
            seen[rows] += 1
        assert np.all(seen == 1), (k, B)


def test_train_uses_the_fast_iwae_step():
    cfg = VAEConfig(D, J, (16,), (14,))
    assert isinstance(train_module.make_iwae_step(cfg, "sum"), FastIWAEStep)
    assert train_module.make_iwae_step(cfg, "sum").reduction == "sum"


def test_train_with_the_fast_iwae_step_equals_train_with_iwae_step(monkeypatch):
    """Whole IWAE runs: the step train uses is the only difference, and the parameters,
    optimizer state and history agree bit for bit (dynamic binarization, clipping, a last
    batch smaller than the others)."""
    data = synthetic_dataset(n_train=150, n_test=20, seed=5)
    cfg = VAEConfig(784, 3, (24,), (20,), activation="tanh", dtype="float32")

    def run():
        rng = np.random.default_rng(0)
        params = init_params(cfg, rng)
        state = Adam(1e-3).init(params)
        history = train_module.train(
            params, cfg, data.x_train.astype(np.float32), optimizer=Adam(1e-3), rng=rng,
            epochs=2, batch_size=64, binarize="dynamic", clip_norm=50.0, opt_state=state,
            progress=False, objective="iwae", k=3)
        return params, state, [{k: v for k, v in r.items() if k not in train_module.TIME_FIELDS}
                               for r in history]

    fast = run()

    def readable_step(cfg, reduction="mean"):
        return lambda params, x, eps, beta: _iwae_step(params, x, eps, cfg, reduction)
    monkeypatch.setattr(train_module, "make_iwae_step", readable_step)
    readable = run()
    for k in readable[0]:
        assert np.array_equal(readable[0][k], fast[0][k]), f"param {k} differs after training"
    for k in readable[1]:
        assert np.array_equal(readable[1][k], fast[1][k]), f"optimizer state {k} differs"
    assert readable[2] == fast[2]
