"""The fast training step equals the readable loss_and_grads bit for bit."""
import importlib
import itertools

import numpy as np
import pytest

from vae_numpy import VAEConfig, init_params, loss_and_grads
from vae_numpy.data import synthetic_dataset
from vae_numpy.fast_step import LIKELIHOOD_BLOCK_ROWS, FastStep
from vae_numpy.layers import ACTIVATIONS
from vae_numpy.likelihoods import LIKELIHOODS
from vae_numpy.optim import Adam
from vae_numpy.threads import (ENV_THREADS, num_threads, row_blocks, run_blocks,
                               set_num_threads)

# The module, not the function vae_numpy.train that the package exports under the same name.
train_module = importlib.import_module("vae_numpy.train")

D, J = 30, 4
# Two batch sizes: one spanning several likelihood row blocks with a partial last block,
# one smaller than a block (train's last batch of an epoch is usually smaller).
BATCHES = (2 * LIKELIHOOD_BLOCK_ROWS + 5, 3)


def assert_same(readable, fast, label):
    """loss, every grad and every term equal bit for bit (and of the same dtype)."""
    (l1, g1, t1), (l2, g2, t2) = readable, fast
    assert l1.dtype == l2.dtype and np.array_equal(l1, l2), f"{label}: loss {l1!r} != {l2!r}"
    assert list(g1) == list(g2), f"{label}: grads keys {list(g2)}, expected {list(g1)}"
    for k in g1:
        assert g2[k].dtype == g1[k].dtype, f"{label}: grad {k} dtype {g2[k].dtype}"
        assert np.array_equal(g1[k], g2[k]), (
            f"{label}: grad {k} differs, max |diff| {np.max(np.abs(g1[k] - g2[k]))}")
    for k in t1:
        assert np.array_equal(t1[k], t2[k]), f"{label}: term {k} differs"


def compare(cfg, reduction="mean", free_bits=0.0, beta=0.37, seed=0):
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    step = FastStep(cfg, reduction, free_bits)
    for B in BATCHES + BATCHES[:1]:   # back to the first size: its workspace is reused
        x = rng.random((B, cfg.input_dim)).astype(cfg.dtype)
        eps = rng.standard_normal((B, cfg.latent_dim), dtype=cfg.dtype)
        label = f"{cfg}, {reduction}, free_bits={free_bits}, B={B}"
        assert_same(loss_and_grads(params, x, eps, cfg, reduction, free_bits, beta=beta),
                    step(params, x, eps, beta), label)


@pytest.mark.parametrize("likelihood,activation",
                         list(itertools.product(sorted(LIKELIHOODS), sorted(ACTIVATIONS))))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_step_equals_loss_and_grads_for_every_likelihood_and_activation(
        likelihood, activation, dtype, threads):
    cfg = VAEConfig(D, J, (16, 12), (14,), activation=activation, likelihood=likelihood,
                    dtype=dtype, sigma=0.8)
    compare(cfg)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("free_bits", [0.0, 0.3])
@pytest.mark.parametrize("rec_weight", [1.0, 0.7, 0.0])
def test_fast_step_equals_loss_and_grads_for_every_objective_option(
        reduction, free_bits, rec_weight, threads):
    cfg = VAEConfig(D, J, (16,), (14,), dtype="float32", rec_weight=rec_weight, beta=2.5)
    compare(cfg, reduction, free_bits, beta=0.37)
    compare(cfg, reduction, free_bits, beta=None)   # None: cfg.beta, as loss_and_grads


@pytest.mark.parametrize("encoder_hidden,decoder_hidden",
                         [((), ()), ((), (14,)), ((16, 12), ()), ((16, 12, 8), (8, 10, 14))])
@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
def test_fast_step_equals_loss_and_grads_for_any_depth(encoder_hidden, decoder_hidden,
                                                       activation, threads):
    cfg = VAEConfig(D, J, encoder_hidden, decoder_hidden, activation=activation,
                    dtype="float64")
    compare(cfg)


def test_fast_step_uses_a_parameter_the_caller_replaced_or_edited():
    cfg = VAEConfig(D, J, (16,), (14,), activation="tanh", dtype="float64")
    rng = np.random.default_rng(1)
    params = init_params(cfg, rng)
    x = rng.random((7, D))
    eps = rng.standard_normal((7, J))
    step = FastStep(cfg)
    step(params, x, eps, 1.0)
    params["enc.logvar.W"] = rng.standard_normal(params["enc.logvar.W"].shape)   # replaced
    params["dec.out.W"][0] += 1.0                                                # edited
    assert_same(loss_and_grads(params, x, eps, cfg, beta=1.0), step(params, x, eps, 1.0),
                "after replacing enc.logvar.W and editing dec.out.W")


def test_train_with_the_fast_step_equals_train_with_loss_and_grads(monkeypatch):
    """Whole runs: the step train uses is the only difference, and the parameters, optimizer
    state and history agree bit for bit (warm-up, free bits, clipping, dynamic binarization,
    a last batch smaller than the others)."""
    data = synthetic_dataset(n_train=150, n_test=20, seed=5)
    cfg = VAEConfig(784, 3, (24,), (20,), activation="tanh", dtype="float32")

    def run():
        rng = np.random.default_rng(0)
        params = init_params(cfg, rng)
        state = Adam(1e-3).init(params)
        history = train_module.train(
            params, cfg, data.x_train.astype(np.float32), optimizer=Adam(1e-3), rng=rng,
            epochs=2, batch_size=64, binarize="dynamic", kl_warmup_epochs=1, free_bits=0.1,
            clip_norm=50.0, opt_state=state, progress=False)
        return params, state, [{k: v for k, v in r.items() if k not in train_module.TIME_FIELDS}
                               for r in history]

    fast = run()

    def readable_step(cfg, reduction="mean", free_bits=0.0):
        return lambda params, x, eps, beta: loss_and_grads(params, x, eps, cfg, reduction,
                                                           free_bits, beta=beta)
    monkeypatch.setattr(train_module, "make_step", readable_step)
    readable = run()
    for k in readable[0]:
        assert np.array_equal(readable[0][k], fast[0][k]), f"param {k} differs after training"
    for k in readable[1]:
        assert np.array_equal(readable[1][k], fast[1][k]), f"optimizer state {k} differs"
    assert readable[2] == fast[2]


# --- threads --------------------------------------------------------------------------------

def test_row_blocks_split_a_range_into_contiguous_parts():
    for n, parts in [(10, 3), (2, 5), (7, 1), (128, 2)]:
        blocks = row_blocks(n, parts)
        assert len(blocks) == min(n, parts)
        assert list(itertools.chain(*(range(n)[b] for b in blocks))) == list(range(n))


def test_run_blocks_runs_every_block_and_raises_their_errors(threads):
    seen = np.zeros(9)

    def fn(i):
        seen[i] += 1
    run_blocks(fn, list(range(9)))
    assert np.all(seen == 1)

    def fail(i):
        if i == 5:
            raise KeyError("block 5")
    with pytest.raises(KeyError, match="block 5"):
        run_blocks(fail, list(range(9)))


def test_thread_count_comes_from_the_override_then_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_THREADS, "3")
    assert num_threads() == 3
    set_num_threads(2)
    assert num_threads() == 2
    set_num_threads(None)
    monkeypatch.delenv(ENV_THREADS)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert num_threads() == 1
    monkeypatch.setenv(ENV_THREADS, "two")
    with pytest.raises(ValueError, match="VAE_NUMPY_NUM_THREADS='two'"):
        num_threads()
    with pytest.raises(ValueError, match="positive integer"):
        set_num_threads(0)
