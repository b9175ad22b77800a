r"""The gradients' signal-to-noise ratio (vae_numpy.snr): the statistics, and the known result.

The known result (Rainforth et al. 2018; Tucker et al. 2019), on the wide-q toy model of
``snr.toy_model(2.5, 2.0)`` (1-D linear-Gaussian VAE, q's mean 2.5 posterior standard
deviations off, twice the posterior's variance), seed 0:

    IWAE encoder SNR ~ K**-0.5 over K = 30..1000   (R = 20,000 draws)
    decoder SNR      ~ K**+0.5 over K = 30..1000   (the same draws)
    DReG encoder SNR ~ K**+0.5 over K = 100..1000  (R = 1,000: its SNR is 5-15, far above noise)

each within SLOPE_TOLERANCE. Where the numbers come from: with 200,000 draws per K (an
independent vectorized computation of the same estimators) the IWAE encoder's slope over
30..1000 is -0.534, the decoder's +0.51, DReG's over 100..1000 +0.484. With 20,000 draws the
IWAE encoder's fitted slope varies by about 0.03 from seed to seed (6 seeds: -0.50 to -0.58),
so the +-0.15 band is about 4 of those from the seed-free value.
"""
import math

import numpy as np
import pytest

from vae_numpy import snr
from vae_numpy.iwae import iwae_loss_and_grads

SLOPE_TOLERANCE = 0.15          # around -0.5 and +0.5 (the asymptotic slopes)
IWAE_DRAWS = 20000              # IWAE's encoder SNR at K = 1000 is ~0.06: 8 noise floors up
DREG_DRAWS = 1000
WIDE_Q = (2.5, 2.0)             # (mean shift in posterior std, variance ratio)


@pytest.fixture(scope="module")
def wide_q_iwae():
    params, x, cfg = snr.toy_model(*WIDE_Q)
    return snr.gradient_snr(params, x, cfg, (30, 1000), IWAE_DRAWS, seed=0,
                            estimators=("iwae",))


# --- the known result ------------------------------------------------------------------------

@pytest.mark.slow
def test_iwae_encoder_snr_falls_like_k_to_the_minus_half(wide_q_iwae):
    r = wide_q_iwae
    slope, _ = snr.fit_slope(r["ks"], r["snr"]["encoder"]["iwae"], 30, 1000)
    assert abs(slope - (-0.5)) <= SLOPE_TOLERANCE, f"IWAE encoder slope {slope:.3f}"
    # the K = 1000 value is signal, not the noise floor (which has slope 0 in K)
    assert r["snr"]["encoder"]["iwae"][-1] > 4 * r["noise_floor"]


@pytest.mark.slow
def test_decoder_snr_rises_like_k_to_the_half(wide_q_iwae):
    r = wide_q_iwae
    slope, _ = snr.fit_slope(r["ks"], r["snr"]["decoder"]["iwae"], 30, 1000)
    assert abs(slope - 0.5) <= SLOPE_TOLERANCE, f"decoder slope {slope:.3f}"


def test_dreg_encoder_snr_does_not_fall_it_rises_like_k_to_the_half():
    params, x, cfg = snr.toy_model(*WIDE_Q)
    r = snr.gradient_snr(params, x, cfg, (100, 1000), DREG_DRAWS, seed=0, estimators=("dreg",))
    slope, _ = snr.fit_slope(r["ks"], r["snr"]["encoder"]["dreg"], 100, 1000)
    assert abs(slope - 0.5) <= SLOPE_TOLERANCE, f"DReG encoder slope {slope:.3f}"


def test_the_slope_check_tells_the_estimators_apart():
    r"""STL's encoder SNR (a biased estimator: its mean does not vanish) rises too; the check
    on IWAE's slope would fail on it, so that check is about the estimator, not the model."""
    params, x, cfg = snr.toy_model(*WIDE_Q)
    r = snr.gradient_snr(params, x, cfg, (30, 1000), DREG_DRAWS, seed=0, estimators=("stl",))
    slope, _ = snr.fit_slope(r["ks"], r["snr"]["encoder"]["stl"], 30, 1000)
    assert abs(slope - (-0.5)) > SLOPE_TOLERANCE + 0.5, f"STL encoder slope {slope:.3f}"


# --- the statistics ----------------------------------------------------------------------------

def test_draw_moments_equal_mean_and_sample_std_of_the_draws(rng):
    draws = [{"a": rng.standard_normal(7) * 3 + 1e6, "b": rng.standard_normal((2, 3))}
             for _ in range(50)]
    got = snr.draw_moments(lambda r: draws[r], 50)
    for name in ("a", "b"):
        stack = np.stack([np.ravel(d[name]) for d in draws])          # (R, P)
        mean, std = got[name]
        np.testing.assert_allclose(mean, stack.mean(axis=0), rtol=1e-14)
        # a mean 3e5 times the spread loses no digits (the sums are shifted by the first draw)
        np.testing.assert_allclose(std, stack.std(axis=0, ddof=1), rtol=1e-9)


def test_group_snr_averages_over_the_noisy_parameters_only():
    mean = np.array([1.0, 0.0, 3.0, 5.0])
    std = np.array([2.0, 0.0, 1.0, 5.0 * 1e-14])       # exactly 0, and 0 up to round-off
    got = snr.group_snr(mean, std, n_draws=100)
    assert got["n_params"] == 2
    assert got["snr"] == pytest.approx((0.5 + 3.0) / 2, rel=1e-15)
    assert got["snr_rms"] == pytest.approx(math.sqrt((0.25 + 9.0) / 2 - 1 / 100), rel=1e-15)


def test_a_zero_mean_gradient_sits_on_the_noise_floor_and_its_corrected_snr_near_zero():
    r"""Zero-mean draws: the average |mean| / std is sqrt(2/pi)/sqrt(R) (the floor), within
    4 standard errors over the P parameters (a 1% error in the floor is 5 of them; the exact
    expectation, a Student t's, is 0.06% above the floor at R = 400); the bias-corrected SNR is
    below half the floor."""
    R, P = 400, 150000
    rng = np.random.default_rng(3)
    mean, std = snr.draw_moments(lambda r: {"g": rng.standard_normal(P)}, R)["g"]
    got = snr.group_snr(mean, std, R)
    floor = snr.noise_floor(R)
    se = math.sqrt(1 - 2 / math.pi) / math.sqrt(R) / math.sqrt(P)   # of the average |t|
    assert abs(got["snr"] - floor) < 4 * se
    assert 0.01 * floor > 4 * se
    assert got["snr_rms"] < 0.5 * floor


def test_a_known_snr_is_measured_within_a_standard_error():
    r"""Draws of mean 0.3 and std 1: the average |mean| / std is 0.3 within 4 standard errors
    of its average over P parameters (SE 3e-4; a 1% error, 0.003, is 10 of them)."""
    rng = np.random.default_rng(4)
    R, P = 2000, 5000
    draws = 0.3 + rng.standard_normal((R, P))
    mean, std = snr.draw_moments(lambda r: {"g": draws[r]}, R)["g"]
    got = snr.group_snr(mean, std, R)
    se = 1 / math.sqrt(R) / math.sqrt(P)
    assert abs(got["snr"] - 0.3) < 4 * se
    assert abs(got["snr_rms"] - 0.3) < 4 * se


def test_estimator_moments_are_the_moments_of_iwae_loss_and_grads_over_the_draws():
    r"""The SNR is that of the function users train with: a direct loop over the same noise
    (draw r is the r-th (K, 1, J) block of default_rng([seed, K])) gives the same moments."""
    params, x, cfg = snr.toy_model(1.0, 1.5)
    k, R, seed = 4, 6, 11
    got = snr.estimator_moments(params, x, cfg, k, R, seed)
    rng = np.random.default_rng([seed, k])
    per_draw = {key: [] for key in got}
    for _ in range(R):
        eps = rng.standard_normal((k, 1, 1))
        for name in snr.ESTIMATORS:
            _, grads, _ = iwae_loss_and_grads(params, x, eps, cfg, reduction="sum",
                                              estimator=name)
            for group, flat in snr.group_gradients(grads).items():
                per_draw[(group, name)].append(flat)
    assert got.pop(snr.ESS_KEY)[0].shape == (1,)
    for key, (mean, std) in got.items():
        stack = np.stack(per_draw[key])
        np.testing.assert_allclose(mean, stack.mean(axis=0), rtol=1e-12, err_msg=str(key))
        np.testing.assert_allclose(std, stack.std(axis=0, ddof=1), rtol=1e-9, err_msg=str(key))


def toy_gradients(params, x, eps, estimator):
    r"""Per-draw d(-L_K)/d param of the 1-D toy model in closed form, vectorized over draws:
    eps (R, K) -> {group: (R, P)}. An oracle written from the formulas, not from vae_numpy.

    mu = a x + c, logvar = l (the logvar head's weight is 0), z_k = mu + std eps_k,
    log w_k = -(x - w z_k - beta)**2 / 2 - z_k**2 / 2 + eps_k**2 / 2 + l / 2 (+ constants),
    P_k = d[log p(x|z) + log p(z)]/dz = w (x - w z_k - beta) - z_k, s = softmax_k(log w);
    IWAE: dL/dmu = sum s P, dL/dl = sum s P std eps / 2 + 1/2; STL: P + eps / std in place of
    P and no 1/2; DReG: STL with s**2. Decoder: dL/dw = sum s r z, dL/dbeta = sum s r,
    r = x - w z - beta."""
    x = float(x[0, 0])
    a, c = params["enc.mu.W"][0, 0], params["enc.mu.b"][0]
    l, w, beta = params["enc.logvar.b"][0], params["dec.out.W"][0, 0], params["dec.out.b"][0]
    std = np.exp(0.5 * l)
    z = a * x + c + std * eps                                          # (R, K)
    r = x - w * z - beta
    log_w = -0.5 * r**2 - 0.5 * z**2 + 0.5 * eps**2
    s = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    path = w * r - z
    if estimator == "iwae":
        dmu, dl = (s * path).sum(1), (s * path * 0.5 * std * eps).sum(1) + 0.5
    else:
        a_k = s if estimator == "stl" else s**2
        dmu = (a_k * (path + eps / std)).sum(1)
        dl = (a_k * (path + eps / std) * 0.5 * std * eps).sum(1)
    encoder = -np.stack([x * dmu, dmu, x * dl, dl], axis=1)           # enc.mu.W, .b, logvar
    decoder = -np.stack([(s * r * z).sum(1), (s * r).sum(1)], axis=1)  # dec.out.W, dec.out.b
    return {"encoder": encoder, "decoder": decoder}


@pytest.mark.parametrize("estimator", snr.ESTIMATORS)
def test_the_moments_equal_a_closed_form_oracle_on_the_toy_model(estimator):
    r"""On the toy model, the per-parameter mean and std over R draws equal those of the
    gradients written out in closed form above (the same eps), to round-off: the SNR measures
    the estimators the docs describe."""
    params, x, cfg = snr.toy_model(*WIDE_Q)
    k, R, seed = 7, 300, 5
    got = snr.estimator_moments(params, x, cfg, k, R, seed, estimators=(estimator,))
    rng = np.random.default_rng([seed, k])
    eps = np.stack([rng.standard_normal((k, 1, 1))[:, 0, 0] for _ in range(R)])   # (R, K)
    got.pop(snr.ESS_KEY)
    for group, draws in toy_gradients(params, x, eps, estimator).items():
        mean, std = got[(group, estimator)]
        np.testing.assert_allclose(mean, draws.mean(axis=0), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(std, draws.std(axis=0, ddof=1), rtol=1e-10)


def test_paired_draws_give_one_decoder_snr_and_dreg_equals_stl_at_k_1():
    params, x, cfg = snr.toy_model(*WIDE_Q)
    r = snr.gradient_snr(params, x, cfg, (1, 5), 50, seed=0)
    dec = r["snr"]["decoder"]
    assert dec["iwae"] == dec["stl"] == dec["dreg"]
    assert r["snr"]["encoder"]["dreg"][0] == r["snr"]["encoder"]["stl"][0]
    assert r["snr"]["encoder"]["dreg"][1] != r["snr"]["encoder"]["stl"][1]
    assert r["n_params"]["encoder"]["iwae"] == [4, 4] and r["n_params"]["decoder"]["iwae"] == [2, 2]


def test_fit_slope_recovers_a_power_law():
    ks = np.array([1, 10, 100, 1000, 10000])
    slope, log_c = snr.fit_slope(ks, 3.0 * ks ** -0.5, 10, 1000)
    assert slope == pytest.approx(-0.5, abs=1e-12) and log_c == pytest.approx(math.log(3.0))


# --- bad input ---------------------------------------------------------------------------------

def test_bad_input_is_a_clear_error():
    params, x, cfg = snr.toy_model(*WIDE_Q)
    with pytest.raises(ValueError, match="one image"):
        snr.gradient_snr(params, np.ones((2, 1)), cfg, (1,), 10)
    with pytest.raises(ValueError, match="increasing positive"):
        snr.gradient_snr(params, x, cfg, (10, 1), 10)
    with pytest.raises(ValueError, match="n_draws"):
        snr.gradient_snr(params, x, cfg, (1,), 1)
    with pytest.raises(ValueError, match="estimator must be one of"):
        snr.gradient_snr(params, x, cfg, (1,), 10, estimators=("reinforce",))
    with pytest.raises(ValueError, match="at least two K"):
        snr.fit_slope([1, 10, 100], [1.0, 0.3, 0.1], 20, 1000)
    with pytest.raises(ValueError, match="positive values"):
        snr.fit_slope([1, 10], [1.0, 0.0], 1, 10)


def test_effective_sample_size_is_k_for_equal_weights_and_1_for_one_weight():
    log_w = np.array([[0.0, 0.0, 5.0], [0.0, -1e4, 5.0], [0.0, -1e4, 5.0 + np.log(2.0)]])
    np.testing.assert_allclose(snr.effective_sample_size(log_w), [3.0, 1.0, 16 / 6], rtol=1e-14)
