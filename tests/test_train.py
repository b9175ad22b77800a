"""The training loop: it learns, it reports the true ELBO, it is reproducible, its options work."""
import dataclasses
import io

import numpy as np
import pytest

from vae_numpy import VAEConfig, decode, init_params
from vae_numpy.data import binarize_test_set, synthetic_dataset
from vae_numpy.likelihoods import continuous_bernoulli_mean
from vae_numpy.model import loss_terms
from vae_numpy.optim import SGD, Adam
from vae_numpy.train import (EVAL_NOISE_SEED, TIME_FIELDS, evaluate_elbo, init_output_bias,
                             kl_warmup_beta, output_bias_for_mean, train)

# Sums of per-example float64 terms taken in a different order (rec and kl summed separately,
# or chunk by chunk) differ by a few ulps of the total: 1e-12 relative is far above that
# round-off and far below any real difference (1e-4 nats or more).
SUM_ORDER_RTOL = 1e-12

CFG = VAEConfig(input_dim=784, latent_dim=4, encoder_hidden=(32,), decoder_hidden=(32,))


@pytest.fixture(scope="module")
def digits():
    """Small synthetic MNIST-like data, float64 in [0, 1]."""
    return synthetic_dataset(n_train=256, n_test=64, seed=3)


class Frozen:
    """An optimizer that never moves the parameters: isolates what train reports."""

    def init(self, params):
        return {}

    def step(self, params, grads, state):
        pass


def run(digits, seed=0, epochs=2, cfg=CFG, optimizer=None, batch_size=64, **kw):
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    kw.setdefault("x_test", digits.x_test)
    history = train(params, cfg, digits.x_train, optimizer=optimizer or Adam(1e-3), rng=rng,
                    epochs=epochs, batch_size=batch_size, progress=False, **kw)
    return params, history


def without_times(history):
    return [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in history]


def bernoulli_constant_model_nats(x):
    """-log-likelihood per example of the best model without latents: pixel d ~ Bernoulli(p_d),
    p_d = mean of pixel d (the binary entropy summed over pixels), in nats."""
    p = np.clip(x.mean(axis=0), 1e-12, 1 - 1e-12)
    return float(-np.sum(p * np.log(p) + (1 - p) * np.log1p(-p)))


def test_training_beats_the_best_model_without_latents(digits):
    params, history = run(digits, epochs=15, binarize="dynamic", optimizer=Adam(1e-2),
                          batch_size=32)
    x_test = binarize_test_set(digits.x_test)
    initial = evaluate_elbo(init_params(CFG, np.random.default_rng(0)), CFG, x_test)["neg_elbo"]
    final = history[-1]["test_neg_elbo"]
    baseline = bernoulli_constant_model_nats(x_test)
    assert final < 0.5 * initial, (initial, final)
    assert history[-1]["train_neg_elbo"] < 0.5 * history[0]["train_neg_elbo"]
    # -ELBO bounds -log p(x) from above, so beating the constant model needs the latents.
    assert final < baseline, f"test -ELBO {final:.1f} not below the constant model {baseline:.1f}"
    assert [r["epoch"] for r in history] == list(range(1, 16))


def test_history_fields_and_neg_elbo_is_rec_plus_kl(digits):
    _, history = run(digits, epochs=2, binarize="dynamic")
    for r in history:
        assert {"epoch", "steps", "beta", "train_rec", "train_kl", "train_neg_elbo",
                "train_objective", "test_rec", "test_kl", "test_neg_elbo", "seconds",
                "eval_seconds"} <= set(r)
        assert r["test_neg_elbo"] == r["test_rec"] + r["test_kl"]
        np.testing.assert_allclose(r["train_neg_elbo"], r["train_rec"] + r["train_kl"],
                                   rtol=SUM_ORDER_RTOL)
        # beta = 1, no free bits, no warm-up: the objective is the -ELBO itself.
        assert r["train_objective"] == r["train_neg_elbo"]
        assert r["train_kl"] > 0 and r["seconds"] > 0
    assert [r["steps"] for r in history] == [4, 8]  # 256 examples / 64 per batch


@pytest.mark.parametrize("held_out", ["binarized", "grey"])
def test_test_numbers_are_the_fixed_seed_elbo_of_x_test_as_given(digits, held_out):
    # The caller owns the held-out set's binarization: train evaluates x_test as given.
    x = binarize_test_set(digits.x_test) if held_out == "binarized" else digits.x_test
    params, history = run(digits, epochs=1, binarize="dynamic", x_test=x)
    eps = np.random.default_rng(EVAL_NOISE_SEED).standard_normal((len(x), CFG.latent_dim))
    rec, kl = loss_terms(params, x, eps, CFG)
    np.testing.assert_allclose(history[0]["test_rec"], rec.mean(), rtol=SUM_ORDER_RTOL)
    np.testing.assert_allclose(history[0]["test_kl"], kl.mean(), rtol=SUM_ORDER_RTOL)


def test_evaluate_elbo_is_chunk_independent_and_ignores_beta(digits):
    params = init_params(CFG, np.random.default_rng(0))
    x = binarize_test_set(digits.x_test)
    whole = evaluate_elbo(params, CFG, x)
    for key, value in evaluate_elbo(params, CFG, x, chunk=7).items():
        np.testing.assert_allclose(value, whole[key], rtol=SUM_ORDER_RTOL)
    heavy = dataclasses.replace(CFG, beta=5.0)
    assert evaluate_elbo(params, heavy, x) == whole
    assert evaluate_elbo(params, CFG, x, seed=EVAL_NOISE_SEED + 1) != whole


def test_seeded_runs_are_reproducible(digits):
    p1, h1 = run(digits, seed=7, binarize="dynamic")
    p2, h2 = run(digits, seed=7, binarize="dynamic")
    p3, h3 = run(digits, seed=8, binarize="dynamic")
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    assert without_times(h1) == without_times(h2)
    assert not np.array_equal(p1["enc.mu.W"], p3["enc.mu.W"])
    assert h1[-1]["train_rec"] != h3[-1]["train_rec"]


def test_float32_training_keeps_float32(digits):
    cfg = dataclasses.replace(CFG, dtype="float32")
    data = dataclasses.replace(digits, x_train=digits.x_train.astype(np.float32),
                               x_test=digits.x_test.astype(np.float32))
    params, history = run(data, cfg=cfg, epochs=1, binarize="dynamic")
    assert {v.dtype for v in params.values()} == {np.dtype(np.float32)}
    assert np.isfinite(history[0]["test_neg_elbo"])


def test_kl_warmup_beta_values():
    assert kl_warmup_beta(0, 10) == 0.0
    assert kl_warmup_beta(5, 10) == 0.5
    assert kl_warmup_beta(10, 10) == 1.0
    assert kl_warmup_beta(25, 10) == 1.0
    assert kl_warmup_beta(3, 12, beta=2.0) == 0.5
    assert kl_warmup_beta(0, 0, beta=0.7) == 0.7   # no warm-up
    with pytest.raises(ValueError, match="warmup_steps >= 0"):
        kl_warmup_beta(0, -1)


def test_kl_warmup_in_the_loop(digits):
    # 4 steps per epoch, warm-up over 2 epochs = 8 steps: the last step of epoch 1 is step 3
    # (beta 3/8), of epoch 2 step 7 (7/8); epoch 3 runs at full beta.
    _, history = run(digits, epochs=3, kl_warmup_epochs=2, optimizer=Frozen())
    assert [r["beta"] for r in history] == [3 / 8, 7 / 8, 1.0]
    # Frozen params: the epoch-1 batches have steps 0..3 with beta 0, 1/8, 2/8, 3/8, so the
    # objective is below the -ELBO; from epoch 3 on it is the -ELBO.
    assert history[0]["train_objective"] < history[0]["train_neg_elbo"]
    assert history[0]["train_objective"] > history[0]["train_rec"]
    assert history[2]["train_objective"] == history[2]["train_neg_elbo"]


def test_free_bits_change_the_objective_not_the_reported_elbo(digits):
    free_bits = 2.0
    _, plain = run(digits, epochs=1, optimizer=Frozen())
    _, floored = run(digits, epochs=1, optimizer=Frozen(), free_bits=free_bits)
    for key in ("train_rec", "train_kl", "train_neg_elbo", "test_neg_elbo"):
        assert floored[0][key] == plain[0][key], key
    # A fresh encoder's KL per dimension is far below 2 nats, so every dimension sits on the
    # floor and the optimized KL is J * free_bits per example.
    assert plain[0]["train_kl"] < CFG.latent_dim * free_bits / 4
    np.testing.assert_allclose(floored[0]["train_objective"],
                               floored[0]["train_rec"] + CFG.latent_dim * free_bits,
                               rtol=SUM_ORDER_RTOL)


def test_gradient_clipping_caps_the_step(digits):
    # One batch holding all the data, plain SGD: the step is -lr * clipped gradient, so the
    # global norm of the parameter change is lr * clip_norm when the gradient is larger.
    clip_norm, lr = 0.5, 1e-3
    rng = np.random.default_rng(0)
    params = init_params(CFG, rng)
    before = {k: v.copy() for k, v in params.items()}
    history = train(params, CFG, digits.x_train, optimizer=SGD(lr), rng=rng, epochs=1,
                    batch_size=len(digits.x_train), clip_norm=clip_norm, progress=False)
    step_norm = np.sqrt(sum(np.sum((params[k] - before[k]) ** 2) for k in params))
    assert history[0]["grad_norm_mean"] > 10 * clip_norm
    assert history[0]["clipped_fraction"] == 1.0
    # clip_grad_norm scales by clip / (norm + 1e-6), as torch does: relative error < 1e-6 / norm.
    np.testing.assert_allclose(step_norm, lr * clip_norm, rtol=1e-6)


def test_static_binarization_is_fixed_and_dynamic_draws_differ(digits):
    _, static1 = run(digits, seed=0, epochs=1, binarize="static", optimizer=Frozen())
    _, static2 = run(digits, seed=0, epochs=1, binarize="static", optimizer=Frozen())
    _, dynamic = run(digits, seed=0, epochs=1, binarize="dynamic", optimizer=Frozen())
    _, grey = run(digits, seed=0, epochs=1, binarize="none", optimizer=Frozen())
    assert without_times(static1) == without_times(static2)
    assert static1[0]["train_rec"] != dynamic[0]["train_rec"]
    # Binary targets cost more nats than their grey means under the same model.
    assert grey[0]["train_rec"] < dynamic[0]["train_rec"]


def test_output_bias_starts_the_decoder_at_the_data_mean(digits):
    params = init_params(CFG, np.random.default_rng(0))
    init_output_bias(params, digits.x_train, CFG)
    for k in params:
        if k.startswith("dec.") and k.endswith(".W"):
            params[k][...] = 0   # the decoder output is then sigmoid(bias) for every z
    mean = np.clip(digits.x_train.mean(axis=0), 1e-3, 1 - 1e-3)
    out = decode(params, np.zeros((1, CFG.latent_dim)), CFG)[0]
    np.testing.assert_allclose(out, mean, rtol=1e-12)
    assert np.all(np.isfinite(params["dec.out.b"]))


def test_output_bias_lowers_the_initial_loss(digits):
    x = binarize_test_set(digits.x_test)
    plain = init_params(CFG, np.random.default_rng(0))
    biased = init_output_bias({k: v.copy() for k, v in plain.items()}, digits.x_train, CFG)
    assert evaluate_elbo(biased, CFG, x)["rec"] < 0.6 * evaluate_elbo(plain, CFG, x)["rec"]


def test_output_bias_for_other_likelihoods():
    mean = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    cb = VAEConfig(input_dim=5, likelihood="continuous_bernoulli")
    bias = output_bias_for_mean(mean, cb)
    inside = (mean > 0.15) & (mean < 0.85)   # reachable within |logit| <= logit(1 - 1e-3)
    np.testing.assert_allclose(continuous_bernoulli_mean(bias)[inside], mean[inside], atol=1e-9)
    assert np.all(np.abs(bias) <= np.log(999) + 1e-12)
    gaussian = VAEConfig(input_dim=5, likelihood="gaussian")
    assert np.array_equal(output_bias_for_mean(mean, gaussian), mean)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        output_bias_for_mean(mean + 2, VAEConfig(input_dim=5))


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_and_summary(digits):
    stream = Terminal()  # on a terminal: a status line rewritten in place, then the summary
    rng = np.random.default_rng(0)
    params = init_params(CFG, rng)
    train(params, CFG, digits.x_train, x_test=digits.x_test, optimizer=Adam(), rng=rng,
          epochs=2, batch_size=64, stream=stream)
    text = stream.getvalue()
    assert "\r" in text and "batch 1/4" in text and "batches/s" in text
    summaries = [line for line in text.split("\n") if "held-out rec" in line]
    assert len(summaries) == 2 and "epoch 2/2" in summaries[1] and "-elbo" in summaries[1]
    log = io.StringIO()  # into a file or a pipe: whole lines, no carriage return
    train(params, CFG, digits.x_train, x_test=digits.x_test, optimizer=Adam(), rng=rng,
          epochs=2, batch_size=64, stream=log)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and log.getvalue().endswith("\n")
    assert [line.split()[:2] for line in lines if "held-out rec" in line] == [
        ["epoch", "1/2"], ["epoch", "2/2"]]  # no history given: a new run
    assert len(lines) <= 4  # a status at the start, at most one more in 10 s, two summaries
    quiet = io.StringIO()
    train(params, CFG, digits.x_train, optimizer=Adam(), rng=rng, epochs=1, progress=False,
          stream=quiet)
    assert quiet.getvalue() == ""


def test_history_continues_and_callback_sees_each_epoch(digits):
    seen = []
    rng = np.random.default_rng(0)
    params = init_params(CFG, rng)
    history = train(params, CFG, digits.x_train, optimizer=Adam(), rng=rng, epochs=1,
                    batch_size=64, progress=False)
    train(params, CFG, digits.x_train, optimizer=Adam(), rng=rng, epochs=2, batch_size=64,
          progress=False, history=history,
          callback=lambda state: seen.append((state.record["epoch"], state.params is params,
                                              state.rng is rng, state.history is history)))
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert [r["steps"] for r in history] == [4, 8, 12]
    assert seen == [(2, True, True, True), (3, True, True, True)]


@pytest.mark.parametrize("kw, error, match", [
    (dict(binarize="sometimes"), ValueError, "binarize must be one of"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(free_bits=-1.0), ValueError, "free_bits"),
    (dict(clip_norm=0.0), ValueError, "clip_norm"),
    (dict(kl_warmup_epochs=-2), ValueError, "kl_warmup_epochs"),
    (dict(rng=0), TypeError, "numpy.random.Generator"),
    (dict(history=({},)), TypeError, "history must be a list"),
])
def test_bad_options_are_clear_errors(digits, kw, error, match):
    params = init_params(CFG, np.random.default_rng(0))
    args = dict(optimizer=Adam(), rng=np.random.default_rng(0), epochs=1, progress=False)
    args.update(kw)
    with pytest.raises(error, match=match):
        train(params, CFG, digits.x_train, **args)


def test_bad_data_are_clear_errors(digits):
    params = init_params(CFG, np.random.default_rng(0))
    args = dict(optimizer=Adam(), rng=np.random.default_rng(0), epochs=1, progress=False)
    with pytest.raises(TypeError, match="x_train has dtype float32"):
        train(params, CFG, digits.x_train.astype(np.float32), **args)
    with pytest.raises(ValueError, match="x_train has shape"):
        train(params, CFG, digits.x_train.reshape(-1, 28, 28), **args)
    with pytest.raises(ValueError, match="x_train is empty"):
        train(params, CFG, digits.x_train[:0], **args)
    with pytest.raises(ValueError, match="x_test has shape"):
        train(params, CFG, digits.x_train, x_test=digits.x_test[:, :10], **args)
    with pytest.raises(ValueError, match="x_train contains NaN"):
        train(params, CFG, np.full_like(digits.x_train, np.nan), **args)


def test_rec_weight_enters_the_objective_not_the_reported_elbo(digits):
    half = dataclasses.replace(CFG, rec_weight=0.5)
    _, plain = run(digits, epochs=1, optimizer=Frozen())
    _, weighted = run(digits, epochs=1, cfg=half, optimizer=Frozen())
    assert weighted[0]["train_neg_elbo"] == plain[0]["train_neg_elbo"]
    np.testing.assert_allclose(weighted[0]["train_objective"],
                               0.5 * weighted[0]["train_rec"] + weighted[0]["train_kl"],
                               rtol=SUM_ORDER_RTOL)
