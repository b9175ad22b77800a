"""Checking the checker: it passes right gradients and FAILS on slightly wrong ones."""
import io
import sys

import numpy as np
import pytest

import vae_numpy as vn
from vae_numpy import gradcheck
from vae_numpy.commands import progress
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, check_params, check_vjp, failures

WRONG_BY = 1e-4  # a relative error 1000x above the tolerance must be caught


@pytest.fixture
def model_case():
    cfg = vn.VAEConfig(input_dim=5, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,),
                       activation="tanh", likelihood="bernoulli", beta=0.5)
    rng = np.random.default_rng(0)
    params = vn.init_params(cfg, rng)
    x = (rng.random((3, 5)) < 0.5).astype(float)
    eps = rng.standard_normal((3, 2))
    _, grads, _ = vn.loss_and_grads(params, x, eps, cfg)
    return params, grads, lambda: vn.loss_and_grads(params, x, eps, cfg)[0]


def test_checker_passes_the_right_gradient(model_case):
    params, grads, loss_fn = model_case
    assert not failures(check_params(loss_fn, params, grads, entries=None))


@pytest.mark.parametrize("name", ["enc.0.W", "enc.logvar.b", "dec.out.W"])
def test_checker_fails_a_gradient_scaled_by_one_plus_1e_4(model_case, name):
    params, grads, loss_fn = model_case
    wrong = dict(grads, **{name: grads[name] * (1 + WRONG_BY)})
    messages = failures(check_params(loss_fn, params, wrong, entries=None))
    assert len(messages) == 1 and messages[0].startswith(f"grad of {name}: rel err")


def test_checker_fails_one_entry_off_by_1e_4_of_the_tensor_scale(model_case):
    params, grads, loss_fn = model_case
    wrong = {k: v.copy() for k, v in grads.items()}
    wrong["dec.0.b"][1] += WRONG_BY * np.abs(grads["dec.0.b"]).max()
    errors = check_params(loss_fn, params, wrong, entries=None)
    assert errors["dec.0.b"] > TOLERANCE_FLOAT64
    assert [k for k, e in errors.items() if e > TOLERANCE_FLOAT64] == ["dec.0.b"]


def test_check_vjp_on_a_users_function():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    forward = lambda a, b: np.sin(a) * b
    right = lambda d: (d * np.cos(a) * b, d * np.sin(a))
    wrong = lambda d: (d * np.cos(a) * b * (1 + WRONG_BY), d * np.sin(a))
    assert max(check_vjp(forward, [a, b], right, dout)) <= TOLERANCE_FLOAT64
    errors = check_vjp(forward, [a, b], wrong, dout)
    assert errors[0] > TOLERANCE_FLOAT64 and errors[1] <= TOLERANCE_FLOAT64


def test_numerical_gradient_restores_the_array_exactly():
    a = np.random.default_rng(2).standard_normal(6)
    before = a.copy()
    gradcheck.numerical_gradient(lambda: np.sum(a**3), a)
    assert np.array_equal(a, before)


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        gradcheck.numerical_gradient(lambda: 0.0, np.zeros(3, np.float32))


def test_rel_error_is_relative_to_tensor_scale():
    assert gradcheck.rel_error([1.0, 1e-12], [1.0, 0.0]) == pytest.approx(1e-12)
    assert gradcheck.rel_error([2.0, 0.0], [1.0, 0.0]) == 0.5
    assert gradcheck.rel_error([0.0], [0.0]) == 0.0


def test_check_params_requires_matching_keys(model_case):
    params, grads, loss_fn = model_case
    with pytest.raises(ValueError, match="missing"):
        check_params(loss_fn, params, {k: v for k, v in grads.items() if k != "enc.0.W"})


# --- the sampled check (the default) ------------------------------------------------------------

REFERENCE = vn.VAEConfig(input_dim=784, latent_dim=20, encoder_hidden=(400,),
                         decoder_hidden=(400,), activation="relu", likelihood="bernoulli")


def counting(loss_fn):
    r"""``loss_fn`` that counts its calls in ``.calls``."""
    def f():
        f.calls += 1
        return loss_fn()
    f.calls = 0
    return f


@pytest.mark.slow
def test_sampled_check_catches_every_tensor_of_the_reference_model_scaled_by_1_plus_1e_4():
    r"""784-400-20 at batch 32, every gradient tensor scaled by 1 + 1e-4: the default check
    flags each one, with 2 loss evaluations per sampled entry (plus one for the step), not the
    1.3 million of a full check."""
    rng = np.random.default_rng(0)
    params = vn.init_params(REFERENCE, rng)
    x = (rng.random((32, 784)) < 0.2).astype(np.float64)
    eps = rng.standard_normal((32, REFERENCE.latent_dim))
    _, grads, _ = vn.loss_and_grads(params, x, eps, REFERENCE)
    loss_fn = counting(lambda: vn.loss_and_grads(params, x, eps, REFERENCE)[0])
    wrong = {k: g * (1 + WRONG_BY) for k, g in grads.items()}
    errors = check_params(loss_fn, params, wrong)
    assert len(failures(errors)) == len(params), errors
    checked = sum(len(gradcheck.sample_index(k, v.size)) for k, v in params.items())
    assert checked == 8 * gradcheck.SAMPLED_ENTRIES + 2 * 20  # the two 20-entry biases in full
    assert loss_fn.calls == 2 * checked + 1


def test_a_single_wrong_entry_is_missed_with_probability_1_minus_n_over_N():
    r"""One wrong entry among N = 1000, n = 32 sampled per seed, 2000 seeds: the fraction of
    seeds that miss it is 1 - n/N = 0.968 within 4 standard errors (SE = 0.0039)."""
    N, seeds = 1000, 2000
    a = np.random.default_rng(3).standard_normal(N)
    params = {"a": a}
    wrong = {"a": a.copy()}
    wrong["a"][417] += 1.0
    missed = [not failures(check_params(lambda: 0.5 * np.sum(a**2), params, wrong, seed=s,
                                        progress=False))
              for s in range(seeds)]
    p = 1 - gradcheck.SAMPLED_ENTRIES / N
    se = np.sqrt(p * (1 - p) / seeds)
    assert abs(np.mean(missed) - p) <= 4 * se, (np.mean(missed), p)


def test_the_sample_is_seeded_per_tensor_and_small_tensors_are_checked_in_full():
    idx = gradcheck.sample_index("enc.0.W", 10_000)
    assert len(idx) == gradcheck.SAMPLED_ENTRIES and len(set(idx)) == len(idx)
    assert np.array_equal(idx, gradcheck.sample_index("enc.0.W", 10_000))  # same seed, same
    assert not np.array_equal(idx, gradcheck.sample_index("enc.0.W", 10_000, seed=1))
    assert not np.array_equal(idx, gradcheck.sample_index("dec.0.W", 10_000))
    small = gradcheck.FULL_CHECK_MAX
    assert np.array_equal(gradcheck.sample_index("b", small), np.arange(small))
    assert len(gradcheck.sample_index("b", small + 1)) == gradcheck.SAMPLED_ENTRIES
    assert np.array_equal(gradcheck.sample_index("W", 10_000, entries=None), np.arange(10_000))


def test_check_params_refuses_a_bad_entries_argument(model_case):
    params, grads, loss_fn = model_case
    for bad in (0, -3, 2.5, "all"):
        with pytest.raises(ValueError, match="entries must be a positive int"):
            check_params(loss_fn, params, grads, entries=bad)


def test_the_default_step_grows_as_the_cube_root_of_the_loss():
    assert gradcheck.default_step(0.3) == gradcheck.DEFAULT_STEP
    assert gradcheck.default_step(-1000.0) == pytest.approx(10 * gradcheck.DEFAULT_STEP)


# --- the progress line --------------------------------------------------------------------------

class Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def progress_of(monkeypatch, tty, loss_fn=lambda a: 0.5 * np.sum(a**2)):
    r"""Everything check_params writes to stderr with progress forced on, lines every entry."""
    stream = Stream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(progress, "TTY_EVERY", 0.0)
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    a, b = np.arange(5.0), np.arange(3.0)
    params = {"a": a, "b": b}
    try:
        check_params(lambda: loss_fn(a) + 0.5 * np.sum(b**2), params, {"a": a, "b": b},
                     progress=True)
    finally:
        monkeypatch.undo()
    return stream.getvalue()


def test_progress_into_a_log_is_whole_lines_without_carriage_returns(monkeypatch):
    text = progress_of(monkeypatch, tty=False)
    assert "\r" not in text and "\x1b" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines[0] == "gradcheck: 1 of 8 entries, tensor 1 of 2 (a)"
    assert lines[-2] == "gradcheck: 8 of 8 entries, tensor 2 of 2 (b)"
    assert lines[-1] == "gradcheck: 8 entries of 2 tensors checked"


def test_progress_on_a_terminal_is_one_line_rewritten_and_ended(monkeypatch):
    text = progress_of(monkeypatch, tty=True)
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") >= 8
    assert text.split("\r")[-1].startswith("gradcheck: 8 entries of 2 tensors checked")


def test_an_error_ends_the_open_progress_line_before_the_message(monkeypatch):
    stream = Stream(True)
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(progress, "TTY_EVERY", 0.0)
    a = np.arange(4.0)
    calls = []

    def loss_fn():
        calls.append(1)
        if len(calls) == 4:  # the step's evaluation, then entry 0's two, then this
            raise ValueError("boom")
        return float(np.sum(a**2))
    with pytest.raises(ValueError, match="boom"):
        check_params(loss_fn, {"a": a}, {"a": 2 * a}, progress=True)
    assert stream.getvalue().startswith("\rgradcheck: 1 of 4 entries")
    assert stream.getvalue().endswith("\n")  # the error's message starts on a line of its own


def test_a_quick_check_prints_nothing_by_default(model_case, capsys):
    params, grads, loss_fn = model_case
    check_params(loss_fn, params, grads)
    assert capsys.readouterr().err == ""
