"""The optional floor on gaussian_learned's decoder log-variance (VAEConfig.decoder_logvar_min)."""
import math

import numpy as np
import pytest

import vae_numpy as vn
from vae_numpy import model
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, check_params, failures

D, J, B = 6, 3, 4
FLOOR = -0.3
KINK_MARGIN = 1e-3  # raw log-variances this far from the floor: a step h = 1e-5 crosses no kink


def config(**kw):
    return vn.VAEConfig(input_dim=D, latent_dim=J, encoder_hidden=(5,), decoder_hidden=(4,),
                        activation="tanh", likelihood="gaussian_learned", **kw)


def case(floor=FLOOR, seed=0):
    cfg = config(decoder_logvar_min=floor)
    rng = np.random.default_rng(seed)
    params = vn.init_params(cfg, rng)
    return cfg, params, rng.standard_normal((B, D)), rng.standard_normal((B, J))


def raw_logvar(params, x, eps, cfg):
    """The out_logvar head's output before the floor."""
    unfloored = vn.VAEConfig(**{**cfg.to_dict(), "decoder_logvar_min": None})
    _, _, terms = vn.loss_and_grads(params, x, eps, unfloored)
    return vn.decoder_outputs(params, terms["z"], unfloored)[1]


def test_off_by_default_and_a_config_without_the_field_still_loads():
    d = config().to_dict()
    assert d["decoder_logvar_min"] is None
    del d["decoder_logvar_min"]  # as written before the field existed
    assert vn.VAEConfig.from_dict(d).decoder_logvar_min is None
    assert vn.VAEConfig.from_dict(config(decoder_logvar_min=-3).to_dict()).decoder_logvar_min == -3


def test_a_floor_below_every_output_changes_nothing():
    cfg, params, x, eps = case(floor=None)
    loss, grads, terms = vn.loss_and_grads(params, x, eps, cfg)
    low = vn.VAEConfig(**{**cfg.to_dict(), "decoder_logvar_min": -1e3})
    loss2, grads2, terms2 = vn.loss_and_grads(params, x, eps, low)
    assert loss2 == loss and all(np.array_equal(grads[k], grads2[k]) for k in grads)


def test_floor_is_applied_and_bounds_rec():
    cfg, params, x, eps = case()
    raw = raw_logvar(params, x, eps, cfg)
    assert (raw < FLOOR).any() and (raw > FLOOR).any()  # the floor is active on some pixels
    _, _, terms = vn.loss_and_grads(params, x, eps, cfg)
    mean, logvar = vn.decoder_outputs(params, terms["z"], cfg)
    np.testing.assert_array_equal(logvar, np.maximum(raw, FLOOR))
    # rec_b >= sum_d 0.5 * (log(2 pi) + logvar_d) >= D * 0.5 * (log(2 pi) + floor), even at x = mean
    rec_at_mean = vn.likelihoods.gaussian_learned_nll(mean, mean, logvar)
    assert np.all(rec_at_mean >= D * 0.5 * (math.log(2 * math.pi) + FLOOR) - 1e-12)


def test_gradient_with_an_active_floor_matches_finite_differences():
    for seed in range(20):  # the first seed whose raw log-variances are all off the kink
        cfg, params, x, eps = case(seed=seed)
        raw = raw_logvar(params, x, eps, cfg)
        if np.abs(raw - FLOOR).min() > KINK_MARGIN and (raw < FLOOR).any():
            break
    else:
        raise AssertionError("no seed kept the log-variances off the floor's kink")
    for reduction in ("mean", "sum"):
        _, grads, _ = vn.loss_and_grads(params, x, eps, cfg, reduction)
        errors = check_params(lambda: vn.loss_and_grads(params, x, eps, cfg, reduction)[0],
                              params, grads, entries=None)
        assert not failures(errors, TOLERANCE_FLOAT64), failures(errors, TOLERANCE_FLOAT64)


def test_floored_pixels_get_no_log_variance_gradient():
    cfg, params, x, eps = case()
    _, _, terms = vn.loss_and_grads(params, x, eps, cfg)
    outs, cache = model.decoder_forward(params, terms["z"], cfg)
    douts = (np.ones_like(outs[0]), np.ones_like(outs[1]))
    grads = {}
    model.decoder_backward(douts, cache, cfg, grads)
    below = raw_logvar(params, x, eps, cfg) <= FLOOR                      # (B, D)
    np.testing.assert_allclose(grads["dec.out_logvar.b"], (~below).sum(axis=0))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "continuous_bernoulli"])
def test_only_gaussian_learned_takes_a_floor(likelihood):
    with pytest.raises(ValueError, match="decoder_logvar_min"):
        vn.VAEConfig(input_dim=D, likelihood=likelihood, decoder_logvar_min=-5.0)


def test_non_finite_floor_is_refused():
    with pytest.raises(ValueError, match="VAEConfig.decoder_logvar_min must be a finite number"):
        config(decoder_logvar_min=float("-inf"))
