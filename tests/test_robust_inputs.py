"""Inputs a user really passes, at the public entry points: data outside the likelihood's
support, empty batches, an overflowing logvar, a missing rng, config numbers that make no sense.
Each is a clear error naming the array (or field), what is wrong and the fix."""
import math

import numpy as np
import pytest

import vae_numpy
from vae_numpy import VAEConfig, init_params, loss_and_grads, sample
from vae_numpy.files.checks import LOGVAR_MAX, check_support
from vae_numpy.evaluate import (active_units, elbo, encode_all, evaluate_elbo, evaluate_model,
                                iw_log_likelihood, log_importance_weights, mutual_information,
                                rate_distortion)
from vae_numpy.iwae import iwae_loss_and_grads
from vae_numpy.optim import Adam
from vae_numpy.train import train

D, J = 6, 2


def model(likelihood="bernoulli", dtype="float64"):
    cfg = VAEConfig(input_dim=D, latent_dim=J, encoder_hidden=(5,), decoder_hidden=(5,),
                    likelihood=likelihood, dtype=dtype)
    return cfg, init_params(cfg, np.random.default_rng(0))


def grey(n=4, dtype="float64"):
    return np.random.default_rng(1).random((n, D)).astype(dtype)


# --- support ------------------------------------------------------------------------------------

def unscaled_uint8(n=4):
    x = grey(n)
    x[2, 3] = 255.0   # one pixel of an image cast from uint8 but not divided by 255
    return x


def evaluation_calls(params, cfg, x):
    rng = np.random.default_rng(0)
    return {
        "loss_and_grads": lambda: loss_and_grads(params, x, np.zeros((len(x), J)), cfg),
        "iw_log_likelihood": lambda: iw_log_likelihood(params, x, cfg, 3, rng, progress=False),
        "log_importance_weights": lambda: log_importance_weights(
            params, x, np.zeros((2, len(x), J)), cfg),
        "elbo": lambda: elbo(params, x, cfg, rng),
        "evaluate_elbo": lambda: evaluate_elbo(params, cfg, x),
        "rate_distortion": lambda: rate_distortion(params, x, cfg, rng),
        "evaluate_model": lambda: evaluate_model(params, x, cfg, k=3, progress=False),
        "train": lambda: train(params, cfg, x, optimizer=Adam(), rng=rng, epochs=1,
                               progress=False),
        "iwae_loss_and_grads": lambda: iwae_loss_and_grads(params, x, np.zeros((2, len(x), J)),
                                                           cfg),
    }


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli"])
@pytest.mark.parametrize("entry", list(evaluation_calls(None, None, grey())))
def test_data_outside_0_1_is_refused_at_every_entry_point(likelihood, entry):
    cfg, params = model(likelihood)
    call = evaluation_calls(params, cfg, unscaled_uint8())[entry]
    name = "x_train" if entry == "train" else "x"
    with pytest.raises(ValueError, match=rf"^{name} has values outside \[0, 1\], the support of "
                                         rf"the {likelihood} likelihood: row 2 has 255 "
                                         r"\(column 3\).*[Dd]ivide them by 255"):
        call()


@pytest.mark.parametrize("bad", [-0.5, 1.0 + 1e-6])
def test_slightly_negative_or_above_one_is_refused_too(bad):
    cfg, params = model("bernoulli")
    x = grey()
    x[0, 0] = bad
    with pytest.raises(ValueError, match=rf"row 0 has {bad:g} .*Rescale the data into \[0, 1\]"):
        loss_and_grads(params, x, np.zeros((4, J)), cfg)


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli"])
def test_grey_values_and_the_bounds_themselves_are_in_the_support(likelihood):
    cfg, params = model(likelihood)
    x = grey()
    x[0, :2] = 0.0, 1.0
    loss, _, _ = loss_and_grads(params, x, np.zeros((4, J)), cfg)
    assert np.isfinite(loss)


def test_gaussian_likelihoods_take_any_real_data():
    for likelihood in ("gaussian", "gaussian_learned"):
        cfg, params = model(likelihood)
        loss, _, _ = loss_and_grads(params, 255 * grey(), np.zeros((4, J)), cfg)
        assert np.isfinite(loss)


def test_check_support_names_the_first_bad_row_in_order():
    x = np.zeros((5, 3))
    x[3, 0], x[1, 2] = 2.0, -1.0
    with pytest.raises(ValueError, match="row 1 has -1 .column 2.; data spans"):
        check_support("data", x, "bernoulli")


def test_train_checks_its_data_once_not_per_step(monkeypatch):
    """The support is checked before the first epoch, by train itself; the step does not."""
    import vae_numpy.model as model_module
    calls = []
    real = model_module.check_support
    monkeypatch.setattr(model_module, "check_support", lambda *a: calls.append(a[0]) or real(*a))
    cfg, params = model()
    train(params, cfg, grey(40), optimizer=Adam(), rng=np.random.default_rng(0), epochs=2,
          batch_size=4, progress=False)
    assert calls.count("x_train") == 1
    # loss_and_grads (the step) keeps its own check for direct callers; this records how many
    # steps ran it, so that a future unchecked step shows up here as a drop to 0.
    assert calls.count("x") in (0, 20)


# --- edge sizes -----------------------------------------------------------------------------------

def test_an_empty_batch_is_an_error_not_nan():
    cfg, params = model()
    with pytest.raises(ValueError, match=r"x has shape \(0, 6\): an empty batch \(B = 0\)"):
        loss_and_grads(params, np.zeros((0, D)), np.zeros((0, J)), cfg)
    with pytest.raises(ValueError, match=r"x has shape \(0, 6\): an empty batch \(B = 0\)"):
        iwae_loss_and_grads(params, np.zeros((0, D)), np.zeros((3, 0, J)), cfg)


@pytest.mark.parametrize("entry", ["iw_log_likelihood", "elbo", "evaluate_elbo",
                                   "rate_distortion", "evaluate_model",
                                   "log_importance_weights"])
def test_no_examples_is_an_error_in_every_evaluation_function(entry):
    cfg, params = model()
    call = evaluation_calls(params, cfg, np.zeros((0, D)))[entry]
    with pytest.raises(ValueError, match=r"(no examples to evaluate \(N = 0\)|empty data set)"):
        call()


@pytest.mark.parametrize("fn", [encode_all, active_units])
def test_encoding_nothing_is_an_error(fn):
    cfg, params = model()
    with pytest.raises(ValueError, match=r"N = 0"):
        fn(params, np.zeros((0, D)), cfg)


def test_mutual_information_of_nothing_is_an_error():
    cfg, params = model()
    with pytest.raises(ValueError, match=r"N = 0"):
        mutual_information(params, np.zeros((0, D)), cfg, np.random.default_rng(0))


@pytest.mark.parametrize("kw", [dict(n_samples=0), dict(batch_size=0)])
def test_elbo_sizes_must_be_positive(kw):
    cfg, params = model()
    with pytest.raises(ValueError, match=f"elbo_terms.{next(iter(kw))} must be >= 1"):
        elbo(params, grey(), cfg, np.random.default_rng(0), **kw)


# --- logvar overflow ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("logvar", [800.0, float("nan")])
def test_an_overflowing_logvar_is_an_error_naming_the_cause(dtype, logvar):
    """exp(800) overflows both dtypes; the error comes before any inf (and before numpy's
    overflow warning, which the test settings turn into an error)."""
    cfg, params = model(dtype=dtype)
    params["enc.logvar.b"][1] = logvar
    x, eps = grey(dtype=dtype), np.zeros((4, J), dtype=dtype)
    for call in (lambda: loss_and_grads(params, x, eps, cfg),
                 lambda: vae_numpy.encode(params, x, cfg),
                 lambda: iw_log_likelihood(params, x, cfg, 2, np.random.default_rng(0),
                                           progress=False)):
        with pytest.raises(FloatingPointError, match=r"the encoder's logvar is .* \(row 0, "
                                                     r"latent dimension 1\).*diverged"):
            call()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_logvar_at_the_limit_gives_a_finite_loss_and_gradient(dtype):
    """Just below LOGVAR_MAX everything is finite (that is what the limit is for); just above
    it is refused. The limit is half of log(largest float) of the dtype."""
    assert LOGVAR_MAX[dtype] == pytest.approx(0.5 * math.log(np.finfo(dtype).max))
    cfg, params = model(dtype=dtype)
    params["enc.logvar.W"][...] = 0
    eps = np.ones((4, J), dtype=dtype)
    below = np.nextafter(np.array(LOGVAR_MAX[dtype], dtype=dtype), 0)
    params["enc.logvar.b"][...] = below
    loss, grads, terms = loss_and_grads(params, grey(dtype=dtype), eps, cfg)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())
    params["enc.logvar.b"][...] = np.nextafter(np.array(LOGVAR_MAX[dtype], dtype=dtype),
                                               np.inf) * 1.01
    with pytest.raises(FloatingPointError):
        loss_and_grads(params, grey(dtype=dtype), eps, cfg)


# --- small API edges ------------------------------------------------------------------------------

def test_sample_without_a_generator_is_a_type_error():
    cfg, params = model()
    with pytest.raises(TypeError, match=r"sample needs rng = numpy.random.Generator .*NoneType"):
        sample(params, 3, cfg, None)
    with pytest.raises(TypeError, match="got int"):
        sample(params, 3, cfg, 0)
    with pytest.raises(ValueError, match=r"sample.n must be >= 0"):
        sample(params, -1, cfg, np.random.default_rng(0))
    assert sample(params, 3, cfg, np.random.default_rng(0)).shape == (3, D)


@pytest.mark.parametrize("field, value, error, message", [
    ("beta", math.inf, ValueError, "beta must be a finite number, got inf"),
    ("beta", math.nan, ValueError, "beta must be a finite number, got nan"),
    ("beta", -1.0, ValueError, "beta must be >= 0, got -1.0"),
    ("beta", "1", TypeError, "beta must be a finite number, got '1'"),
    ("sigma", 0.0, ValueError, "sigma must be > 0, got 0.0"),
    ("sigma", math.inf, ValueError, "sigma must be a finite number"),
    ("rec_weight", math.inf, ValueError, "rec_weight must be a finite number"),
    ("input_dim", 2.5, TypeError, "input_dim must be an integer, got 2.5"),
    ("input_dim", True, TypeError, "input_dim must be an integer, got True"),
    ("latent_dim", 0, ValueError, "latent_dim must be >= 1, got 0"),
    ("latent_dim", math.inf, TypeError, "latent_dim must be an integer"),
    ("encoder_hidden", (4, 0), ValueError, "encoder_hidden must be >= 1, got 0"),
    ("decoder_hidden", "400", TypeError, "decoder_hidden must be a tuple of widths"),
    ("activation", None, TypeError, "activation must be a string, got None"),
    ("likelihood", 3, TypeError, "likelihood must be a string, got 3"),
    ("dtype", "float16", ValueError, "dtype must be one of"),
    ("decoder_logvar_min", -5.0, ValueError, "decoder_logvar_min floors gaussian_learned"),
])
def test_every_config_field_is_validated(field, value, error, message):
    with pytest.raises(error, match=f"VAEConfig.{message}"):
        VAEConfig(**{"input_dim": 4, field: value})


def test_integral_floats_and_numpy_integers_are_accepted_as_sizes():
    cfg = VAEConfig(input_dim=np.int64(4), latent_dim=2.0, encoder_hidden=(np.int32(3),))
    assert (cfg.input_dim, cfg.latent_dim, cfg.encoder_hidden) == (4, 2, (3,))
