r"""The signal-to-noise ratio of the IWAE gradient estimators, per parameter, against K.

Shape letters: D data dimensions, J latent dimensions, K importance samples, R draws,
P parameters of a group.

For one image x (B = 1), one estimator and one K, draw r = 1..R takes fresh noise eps_r
(K, 1, J) and gives the gradient g_r (P,) of the loss ``-L_K(x)``
(:func:`vae_numpy.iwae.iwae_loss_and_grads`). Per parameter i,

    mean_i = (1/R) sum_r g_ri,   std_i = sqrt(sum_r (g_ri - mean_i)**2 / (R - 1))
    SNR_i  = |mean_i| / std_i

and the SNR of a group of parameters (the encoder's ``enc.*``, the decoder's ``dec.*``) is
the average of SNR_i over the group's parameters with nonzero variance (a parameter whose
gradient is exactly 0 in every draw, e.g. a first-layer weight of a pixel that is 0 in x, has
no noise to compare with and is left out). Rainforth et al. (2018) show that with the IWAE
estimator the encoder's SNR falls like K**-0.5 and the decoder's rises like K**0.5 once K is
large; Tucker et al. (2019) that the doubly reparameterized estimator (DReG) does not lose
the encoder's signal that way.

**The noise floor.** A parameter whose true mean is 0 still gets
``|mean_i| / std_i ~ |N(0, 1)| / sqrt(R)``, whose expectation is

    floor = sqrt(2 / pi) / sqrt(R)  (about 0.80 / sqrt(R))

so a group SNR near the floor measures the number of draws, not the estimator.

**The bias-corrected SNR.** Since ``E[mean_i**2] = mu_i**2 + sigma_i**2 / R``, the group's
root-mean-square SNR without the floor's contribution is estimated (to first order in 1/R) by

    SNR_rms = sqrt(max(0, avg_i(mean_i**2 / std_i**2) - 1 / R))

It averages squares (so the parameters with the largest SNR weigh most) and is reported beside
the plain average, not instead of it; it can resolve values below the floor.

Draws are paired: for a given K, draw r uses the same eps_r for every estimator, so the
estimators differ only in their formula (and the decoder gradient, IWAE's for all three, gives
the same decoder SNR for each, bit for bit). The noise of draw r at K comes from
``numpy.random.default_rng([seed, K])``, one (K, 1, J) block per draw in order.
"""
import math

import numpy as np

from . import linear_gaussian as lg
from .iwae import (ESTIMATORS, _iwae_step, check_estimator, check_iwae_inputs,
                   log_mean_exp_and_softmax)

GROUPS = {"encoder": "enc.", "decoder": "dec."}
ESS_KEY = ("weights", "ess")   # the effective sample size's entry among the moments

# A parameter counts as noisy when its standard deviation over the draws exceeds this fraction
# of the root mean square of its draws. An exact zero gradient has std 0 and is left out
# whatever the threshold; the threshold also leaves out a gradient that is the same in every
# draw but for round-off (float64: relative differences ~1e-16 times the depth of the
# computation, far below 1e-12), whose "SNR" of ~1e13 would swamp the average. Any parameter
# with a real noise has std / rms > 1e-6 in every case measured here.
NOISY_RELATIVE_STD = 1e-12


def noise_floor(n_draws):
    r"""``sqrt(2 / pi) / sqrt(R)``: the expected ``|mean_i| / std_i`` of a zero-mean gradient."""
    return math.sqrt(2.0 / math.pi) / math.sqrt(n_draws)


def draw_moments(draw, n_draws):
    r"""Per-entry mean and standard deviation of ``R = n_draws`` draws of several vectors.

    ``draw(r)`` returns ``{name: (P_name,) array}`` for draw r = 0..R-1. The sums run over
    ``d_r = g_r - g_0`` (shifted by the first draw, so that a mean much larger than the
    spread loses no digits):

        mean = g_0 + (1/R) sum_r d_r,   var = (sum_r d_r**2 - (sum_r d_r)**2 / R) / (R - 1)

    Returns
    -------
    ``{name: (mean (P,), std (P,))}`` in float64.
    """
    if int(n_draws) != n_draws or n_draws < 2:
        raise ValueError(f"n_draws must be an integer >= 2 (a standard deviation needs two "
                         f"draws), got {n_draws!r}")
    first = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in draw(0).items()}
    s1 = {k: np.zeros_like(v) for k, v in first.items()}
    s2 = {k: np.zeros_like(v) for k, v in first.items()}
    for r in range(1, n_draws):
        for k, g in draw(r).items():
            d = np.asarray(g, dtype=np.float64).ravel() - first[k]
            s1[k] += d
            s2[k] += d * d
    out = {}
    for k, g0 in first.items():
        var = (s2[k] - s1[k] ** 2 / n_draws) / (n_draws - 1)
        out[k] = (g0 + s1[k] / n_draws, np.sqrt(np.maximum(var, 0.0)))
    return out


def group_snr(mean, std, n_draws):
    r"""The group's SNR from per-parameter ``mean`` and ``std`` (P,) over R = n_draws draws.

    Returns
    -------
    dict: ``snr`` (the average of |mean_i| / std_i over the noisy parameters), ``snr_rms``
    (the bias-corrected root-mean-square SNR of the module docstring), ``n_params`` (how many
    parameters were noisy).
    """
    rms = np.sqrt(mean ** 2 + std ** 2)
    noisy = std > NOISY_RELATIVE_STD * rms
    if not np.any(noisy):
        return {"snr": float("nan"), "snr_rms": float("nan"), "n_params": 0}
    ratio = np.abs(mean[noisy]) / std[noisy]
    mean_square = float(np.mean(ratio ** 2)) - 1.0 / n_draws
    return {"snr": float(np.mean(ratio)), "snr_rms": math.sqrt(max(mean_square, 0.0)),
            "n_params": int(np.sum(noisy))}


def group_gradients(grads):
    r"""``{group: (P_group,) array}``: the gradients of each group of :data:`GROUPS`, flat."""
    return {g: np.concatenate([np.ravel(v) for k, v in grads.items() if k.startswith(prefix)])
            for g, prefix in GROUPS.items()}


def estimator_moments(params, x, cfg, k, n_draws, seed=0, estimators=ESTIMATORS,
                      progress=None):
    r"""Per-parameter mean and std of each estimator's gradient over R paired draws at one K.

    One call of the step per draw and estimator: a batch of R copies of x with eps (K, R, J)
    would cost the same arithmetic but return the sum of the R gradients, and the variance
    needs each one. Only the sums of the draws and of their squares are kept (P numbers each),
    so memory does not grow with R.

    Parameters
    ----------
    params, cfg : the model (beta = rec_weight = 1, as for the IWAE bound)
    x : (1, D) one image
    k : K, the number of importance samples
    n_draws : R
    seed : the noise of draw r is the r-th (K, 1, J) block of default_rng([seed, K])
    estimators : names accepted by ``iwae_loss_and_grads(..., estimator=)``
    progress : optional callable ``progress(draws_done)``, called after every draw

    Returns
    -------
    ``{(group, estimator): (mean (P,), std (P,))}`` for the groups of :data:`GROUPS`, and
    ``ESS_KEY: (mean (1,), std (1,))``, the effective sample size of the K weights over the
    draws (:func:`effective_sample_size`).
    """
    for name in estimators:
        check_estimator(name)
    eps_shape = (k, 1, cfg.latent_dim)
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[0] != 1:
        raise ValueError(f"x has shape {x.shape}: the SNR is measured on one image, "
                         f"pass x[:1] (shape (1, {cfg.input_dim}))")
    x, _ = check_iwae_inputs(params, x, np.zeros(eps_shape, dtype=x.dtype), cfg)
    rng = np.random.default_rng([seed, k])

    def draw(r):
        eps = rng.standard_normal(eps_shape).astype(x.dtype)  # (K, 1, J), draw r
        out = {}
        for name in estimators:
            # iwae_loss_and_grads without its input checks, made once above (as train does)
            _, grads, terms = _iwae_step(params, x, eps, cfg, "sum", name)
            out.update({(g, name): v for g, v in group_gradients(grads).items()})
        out[ESS_KEY] = effective_sample_size(terms["log_weights"])
        if progress is not None:
            progress(r + 1)
        return out
    return draw_moments(draw, n_draws)


def effective_sample_size(log_w):
    r"""Kish's effective sample size of the K importance weights of each example.

    ``ESS = (sum_k w_k)**2 / sum_k w_k**2 = 1 / sum_k s_k**2``, s = softmax_k(log w): K when
    the weights are equal, 1 when one weight carries all. The large-K behaviour of the
    estimators (the slopes of Rainforth et al. and Tucker et al.) needs K well above the
    variance of the normalized weights, i.e. an ESS that grows in proportion to K.

    log_w : (K, B) array; returns (B,).
    """
    _, s = log_mean_exp_and_softmax(np.asarray(log_w, dtype=np.float64))
    return 1.0 / np.sum(s**2, axis=0)


def gradient_snr(params, x, cfg, ks, n_draws, seed=0, estimators=ESTIMATORS, progress=None):
    r"""The encoder's and the decoder's gradient SNR under each estimator, for each K.

    Parameters
    ----------
    params, cfg, x, n_draws, seed, estimators : as for :func:`estimator_moments`
    ks : increasing K values
    progress : optional callable ``progress(k, draws_done, n_draws)``

    Returns
    -------
    dict with ``ks``, ``n_draws``, ``seed``, ``estimators``, ``noise_floor``
    (:func:`noise_floor`), ``ess`` (the mean effective sample size of the weights, one per K),
    and ``snr``, ``snr_rms``, ``n_params``, each ``{group: {estimator: [one value per K]}}``
    (see :func:`group_snr`).
    """
    ks = [int(k) for k in ks]
    if not ks or any(k < 1 for k in ks) or ks != sorted(set(ks)):
        raise ValueError(f"ks must be increasing positive integers, got {ks}")
    out = {"ks": ks, "n_draws": int(n_draws), "seed": seed, "estimators": list(estimators),
           "noise_floor": noise_floor(n_draws), "ess": []}
    for key in ("snr", "snr_rms", "n_params"):
        out[key] = {g: {e: [] for e in estimators} for g in GROUPS}
    for k in ks:
        tick = None if progress is None else (lambda done, k=k: progress(k, done, n_draws))
        moments = estimator_moments(params, x, cfg, k, n_draws, seed, estimators, tick)
        out["ess"].append(float(moments.pop(ESS_KEY)[0][0]))
        for (group, name), (mean, std) in moments.items():
            for key, value in group_snr(mean, std, n_draws).items():
                out[key][group][name].append(value)
    return out


def fit_slope(ks, values, k_min, k_max):
    r"""Least-squares slope of ``log(values)`` against ``log(K)`` over ``k_min <= K <= k_max``.

    ``values ~ c * K**slope`` on a log-log plot; returns ``(slope, log c)``. Needs at least two
    K in the range and positive values there.
    """
    ks, values = np.asarray(ks, dtype=np.float64), np.asarray(values, dtype=np.float64)
    inside = (ks >= k_min) & (ks <= k_max)
    if np.sum(inside) < 2:
        raise ValueError(f"fit_slope needs at least two K in [{k_min}, {k_max}], "
                         f"got {ks[inside].tolist()}")
    if not np.all(values[inside] > 0):
        raise ValueError(f"fit_slope needs positive values over [{k_min}, {k_max}], "
                         f"got {values[inside].tolist()}")
    slope, intercept = np.polyfit(np.log(ks[inside]), np.log(values[inside]), 1)
    return float(slope), float(intercept)


def toy_model(mean_shift, variance_ratio, x=1.0):
    r"""The one-dimensional linear-Gaussian VAE of the SNR experiment, with q off the posterior.

    ``p(z) = N(0, 1)``, ``p(x|z) = N(z, 1)`` (D = J = 1, :mod:`vae_numpy.linear_gaussian`),
    so ``p(z|x) = N(x / 2, 1 / 2)``. The encoder is that posterior's linear mean map, shifted,
    with a constant variance scaled:

        q(z|x) = N(x / 2 + mean_shift * sqrt(1/2), variance_ratio * 1/2)

    i.e. its mean lies ``mean_shift`` posterior standard deviations off and its variance is
    ``variance_ratio`` times the posterior's (> 1: q wider than the posterior).

    Returns
    -------
    params : dict (float64), x : (1, 1) the image, cfg : VAEConfig
    """
    W, b = np.ones((1, 1)), np.zeros(1)                     # decoder (J, D), (D,)
    enc_W, enc_b, logvar_b = lg.posterior_encoder(W, b, 1.0)  # mean x / 2, logvar log(1/2)
    params = lg.vae_params(W, b, enc_W, enc_b + mean_shift * math.sqrt(0.5),
                           logvar_b + math.log(variance_ratio))
    return params, np.full((1, 1), float(x)), lg.linear_gaussian_config(1, 1, 1.0)
