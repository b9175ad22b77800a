r"""Decoder likelihoods p(x|z): negative log-likelihoods per example and their gradients.

Shape letters: B batch, D data dimensions.

Each ``*_nll`` returns ``rec_b = -log p(x_b | z_b)`` summed over the D data dimensions, in
nats, shape (B,). Each ``*_nll_backward(dnll, ...)`` takes ``dnll`` of shape (B,) (d loss /
d rec_b) and returns the gradients with respect to the decoder's unconstrained outputs.
Leading axes broadcast: outputs of shape (S, B, D) for S samples of z per example, with x
(B, D), give rec (S, B), and dnll (S, B) gives gradients (S, B, D).
Everything is computed from logits or log-variances with a stable softplus: no clipping.

At the end, one small class per likelihood (:class:`Bernoulli`, :class:`Gaussian`,
:class:`GaussianLearned`, :class:`ContinuousBernoulli`) bundles its formulas behind the
interface the model calls; :data:`LIKELIHOODS` maps ``VAEConfig.likelihood`` names to them.
"""
import math

import numpy as np
from scipy.special import expit

from .gaussian import LOG_2PI
from .layers import softplus

# Below |logit| = CB_TAYLOR_BELOW[dtype] the continuous-Bernoulli normalizer log C, its
# derivative and its mean use Taylor series: the closed forms divide 0 by 0 at logit 0, and the
# derivative and the mean subtract two terms of size 1 / |l|, so their rounding error is about
# eps / |l| absolute. The series' error grows with |l| (log C's first omitted term is
# 31 l**6 / 90720), so the switch is where the two errors cross, which depends on eps. Measured
# against a 60-digit decimal evaluation of the closed forms, worst absolute error of the three
# functions for 1e-4 <= |l| <= 4 (`python tests/test_cb_series.py` prints the table):
#   float64: switch 1e-2 -> 1.9e-14 (the derivative's closed form just above the switch; log C's
#            series 8.9e-16 below it); 2e-2 -> 2.2e-14 (now log C's series); 5e-2 -> 5.3e-12.
#   float32: switch 1e-2 -> 1.4e-5 (the derivative's closed form, 0.7% of its value); 0.1 ->
#            1.3e-6; 0.3 -> 5.5e-7 (4.6 float32 eps); 0.4 -> 1.3e-6 and 0.5 -> 5.1e-6 (log C's
#            series).
CB_TAYLOR_BELOW = {np.dtype(np.float64): 1e-2, np.dtype(np.float32): 0.3}


def cb_taylor_below(logits):
    r"""The series/closed-form switch for logits' dtype (:data:`CB_TAYLOR_BELOW`)."""
    try:
        return CB_TAYLOR_BELOW[logits.dtype]
    except KeyError:
        raise TypeError(
            f"logits has dtype {logits.dtype}; the continuous-Bernoulli formulas take float32 "
            f"or float64 logits (convert with logits.astype(np.float64))") from None


# --- Bernoulli ------------------------------------------------------------------------------

def bernoulli_nll(x, logits):
    r"""Bernoulli negative log-likelihood from logits (binary cross-entropy with logits).

    ``rec = sum_d [softplus(l_d) - x_d * l_d]``, which equals
    ``-sum_d [x_d log sigmoid(l_d) + (1 - x_d) log(1 - sigmoid(l_d))]`` and is exact and finite
    for any finite logit (no log(0), no clipping). x may be binary or in [0, 1].

    Derivation. With lam = sigmoid(l) = 1 / (1 + exp(-l)) and softplus(l) = log(1 + exp(l)):

        log(1 - lam) = log(exp(-l) / (1 + exp(-l))) = -log(1 + exp(l)) = -softplus(l)
        log lam      = log(1 - lam) + log(lam / (1 - lam)) = l - softplus(l)
        -[x log lam + (1 - x) log(1 - lam)] = -x (l - softplus(l)) + (1 - x) softplus(l)
                                             = softplus(l) - x * l

    Why this form is the stable one: evaluated as written, the cross-entropy rounds
    sigmoid(l) to 1 once exp(-l) is below the float's resolution at 1 (l > 53 ln 2 = 36.7 in
    float64, 24 ln 2 = 16.6 in float32), and log(1 - lam) becomes log(0) = -inf (likewise
    log lam for l very negative). ``softplus`` is computed as ``max(l, 0) + log1p(exp(-|l|))``
    (:func:`vae_numpy.layers.softplus`), where exp never sees a positive argument, so the
    form above is finite and exact to round-off for every finite l, with no clipping.

    Parameters
    ----------
    x, logits : (B, D) arrays

    Returns
    -------
    (B,) array, summed over D.
    """
    return np.sum(softplus(logits) - x * logits, axis=-1)


def bernoulli_nll_backward(dnll, x, logits):
    r"""d rec / d logits = sigmoid(logits) - x, scaled by dnll (B,). Returns (B, D).

    From ``rec = softplus(l) - x * l`` (:func:`bernoulli_nll`): d softplus(l) / dl =
    exp(l) / (1 + exp(l)) = sigmoid(l), and d(x * l) / dl = x.
    """
    return dnll[..., None] * (expit(logits) - x)


def bernoulli_mean(logits):
    r"""E[x | z] = sigmoid(logits)."""
    return expit(logits)


# --- Gaussian with fixed sigma --------------------------------------------------------------

def gaussian_nll(x, mean, sigma=1.0):
    r"""Gaussian negative log-likelihood with a fixed standard deviation sigma.

    ``rec = sum_d [(x_d - mean_d)**2 / (2 sigma**2) + log(sigma) + 0.5 log(2 pi)]``

    Relation to MSE: ``rec = D * mse / (2 sigma**2) + D * (log(sigma) + 0.5 log(2 pi))`` with
    ``mse = mean_d (x_d - mean_d)**2``. The second term is a constant, so minimizing rec is
    minimizing the squared error, and sigma sets its weight against the KL: sigma = 1 gives
    ``0.5 * sum of squared errors``; a smaller sigma is like a beta below 1.

    Parameters
    ----------
    x, mean : (B, D) arrays; mean is the decoder's linear output.
    sigma : positive float

    Returns
    -------
    (B,) array, summed over D.
    """
    D = x.shape[-1]
    sq = np.sum((x - mean) ** 2, axis=-1)
    return sq / (2 * sigma**2) + D * (math.log(sigma) + 0.5 * LOG_2PI)


def gaussian_nll_backward(dnll, x, mean, sigma=1.0):
    r"""d rec / d mean = (mean - x) / sigma**2, scaled by dnll (B,). Returns (B, D)."""
    return dnll[..., None] * (mean - x) / sigma**2


# --- Gaussian with a learned per-pixel variance ---------------------------------------------

def gaussian_learned_nll(x, mean, logvar):
    r"""Gaussian negative log-likelihood with a per-pixel log-variance head.

    ``rec = 0.5 * sum_d [log(2 pi) + logvar_d + (x_d - mean_d)**2 * exp(-logvar_d)]``
    (Kingma & Welling 2014, App. C.2, with logvar = log sigma**2).

    A density, so rec can be negative, and it is unbounded below: where the decoder predicts a
    pixel exactly (x_d = mean_d), rec falls without limit as logvar_d -> -inf. On data with
    constant pixels training follows that direction; ``VAEConfig.decoder_logvar_min``
    (:func:`logvar_floor_forward`) bounds it.

    Parameters
    ----------
    x, mean, logvar : (B, D) arrays

    Returns
    -------
    (B,) array, summed over D.
    """
    return 0.5 * np.sum(LOG_2PI + logvar + (x - mean) ** 2 * np.exp(-logvar), axis=-1)


def gaussian_learned_nll_backward(dnll, x, mean, logvar):
    r"""Gradients of ``gaussian_learned_nll``.

    d rec / d mean = (mean - x) * exp(-logvar);
    d rec / d logvar = 0.5 * (1 - (x - mean)**2 * exp(-logvar)).

    Returns
    -------
    dmean, dlogvar : (B, D) arrays, each scaled by dnll (B,).
    """
    inv_var = np.exp(-logvar)
    dnll = dnll[..., None]
    return dnll * (mean - x) * inv_var, dnll * 0.5 * (1 - (x - mean) ** 2 * inv_var)


def logvar_floor_forward(raw, floor):
    r"""An optional floor on the decoder's log-variance: ``logvar = max(raw, floor)``.

    ``gaussian_learned``'s rec is not bounded below: a pixel the decoder predicts exactly (MNIST's
    border is always 0) lowers ``0.5 * logvar_d`` without limit as ``logvar_d -> -inf``. With a
    floor each pixel's rec is at least ``0.5 * (log(2 pi) + floor)``. ``floor=None`` (the
    default of :class:`vae_numpy.VAEConfig`) returns raw unchanged.

    Returns
    -------
    logvar : array of raw's shape; mask : bool array, True where raw > floor (None without a
    floor).
    """
    if floor is None:
        return raw, None
    mask = raw > floor
    return np.where(mask, raw, raw.dtype.type(floor)), mask


def logvar_floor_backward(dlogvar, mask):
    r"""d logvar / d raw = 1 above the floor, 0 below it (at the floor itself: 0)."""
    return dlogvar if mask is None else dlogvar * mask


# --- Continuous Bernoulli -------------------------------------------------------------------

def _log_tanh(u):
    r"""``log(tanh(u))`` for u > 0, as ``log(-expm1(-2u)) - log1p(exp(-2u))`` (no overflow)."""
    e = np.exp(-2 * u)
    return np.log(-np.expm1(-2 * u)) - np.log1p(e)


def cb_log_norm(logits):
    r"""Log-normalizer of the continuous Bernoulli, log C, as a function of the logit l.

        ``C = l / tanh(l / 2)``,  ``log C = log|l| - log tanh(|l| / 2)``,

    and for |l| < ``CB_TAYLOR_BELOW[dtype]`` the series
    ``log C = log 2 + l**2 / 12 - 7 l**4 / 1440``.

    Derivation of C. The unnormalized density ``lam**x (1 - lam)**(1 - x)`` on [0, 1], with
    lam = sigmoid(l), is ``(1 - lam) exp(x * l)`` because lam / (1 - lam) = exp(l). So

        1 / C = int_0^1 (1 - lam) exp(x l) dx = (1 - lam) (exp(l) - 1) / l
              = (exp(l) - 1) / (l (exp(l) + 1)) = tanh(l / 2) / l,    as 1 - lam = 1 / (1 + exp(l))

    and C = l / tanh(l / 2), an even function of l; Loaiza-Ganem & Cunningham (2019, eq. 7)
    write the same C(lam) = 2 artanh(1 - 2 lam) / (1 - 2 lam), since 1 - 2 lam = -tanh(l / 2)
    and artanh(1 - 2 lam) = -l / 2. ``log tanh`` is computed without overflow by
    :func:`_log_tanh`.

    Derivation of the series. At l = 0 the closed form is 0 / 0, and near 0 it subtracts
    nearly equal logarithms. With u = l / 2, ``u / tanh(u) = 1 + u**2 / 3 - u**4 / 45 +
    2 u**6 / 945 - ...``, so ``C = 2 (1 + l**2 / 12 - l**4 / 720 + l**6 / 30240 - ...)`` (C(0) = 2),
    and with log(1 + a) = a - a**2 / 2 + a**3 / 3 - ...:

        log C = log 2 + l**2 / 12 - (1 / 720 + 1 / 288) l**4 + ...
              = log 2 + l**2 / 12 - 7 l**4 / 1440 + 31 l**6 / 90720 - ...

    The first omitted term, 31 l**6 / 90720, is 3.4e-16 at the float64 switch |l| = 1e-2 and
    2.5e-7 at the float32 switch 0.3 (the switches are measured: :data:`CB_TAYLOR_BELOW`).

    Parameters
    ----------
    logits : array

    Returns
    -------
    array of log C, same shape.
    """
    a = np.abs(logits)
    small = a < cb_taylor_below(logits)
    safe = np.where(small, 1.0, a)  # keep the closed form away from 0 / 0
    closed = np.log(safe) - _log_tanh(safe / 2)
    series = math.log(2.0) + a**2 / 12 - 7 * a**4 / 1440
    return np.where(small, series, closed).astype(logits.dtype, copy=False)


def cb_log_norm_grad(logits):
    r"""d log C / d l = 1 / l - 1 / sinh(l); series ``l / 6 - 7 l**3 / 360 + 31 l**5 / 15120``
    near 0.

    Derivation: from log C = log l - log tanh(l / 2) (:func:`cb_log_norm`; for l < 0 both
    sides are odd, so the same result holds),

        d log C / dl = 1 / l - (1/2) (1 / cosh(l/2)**2) / tanh(l/2)
                     = 1 / l - 1 / (2 sinh(l/2) cosh(l/2)) = 1 / l - 1 / sinh(l),

    and the series is the term-by-term derivative of log C's series (the next term is
    -127 l**7 / 604800). ``1 / sinh(l)`` is computed as ``2 exp(-|l|) / (1 - exp(-2|l|))``
    with the sign of l, so large |l| gives 0 instead of an overflow.
    """
    a = np.abs(logits)
    small = a < cb_taylor_below(logits)
    safe = np.where(small, 1.0, a)
    inv_sinh = 2 * np.exp(-safe) / -np.expm1(-2 * safe)
    closed = np.sign(logits) * (1 / safe - inv_sinh)
    series = logits / 6 - 7 * logits**3 / 360 + 31 * logits**5 / 15120
    return np.where(small, series, closed).astype(logits.dtype, copy=False)


def continuous_bernoulli_nll(x, logits):
    r"""Continuous-Bernoulli negative log-likelihood for x in [0, 1].

    ``log p(x | l) = x * l - softplus(l) + log C(l)``, i.e.
    ``x log lam + (1 - x) log(1 - lam) + log C(lam)`` with lam = sigmoid(l); the density
    integrates to 1 over [0, 1] for every l (Loaiza-Ganem & Cunningham 2019).

    ``rec = sum_d [softplus(l_d) - x_d * l_d - log C(l_d)]``

    Parameters
    ----------
    x, logits : (B, D) arrays

    Returns
    -------
    (B,) array, summed over D.
    """
    return np.sum(softplus(logits) - x * logits - cb_log_norm(logits), axis=-1)


def continuous_bernoulli_nll_backward(dnll, x, logits):
    r"""d rec / d l = sigmoid(l) - x - (1 / l - 1 / sinh(l)), scaled by dnll (B,)."""
    return dnll[..., None] * (expit(logits) - x - cb_log_norm_grad(logits))


def continuous_bernoulli_mean(logits):
    r"""E[x | l] = lam / (2 lam - 1) + 1 / (2 artanh(1 - 2 lam)) = 1 / (2 tanh(l/2)) + 1/2 - 1/l.

    Near l = 0 the series ``1/2 + l / 12 - l**3 / 720 + l**5 / 30240`` is used.

    Derivation: ``log p(x | l) = x l - A(l)`` with ``A(l) = softplus(l) - log C(l)`` is an
    exponential family in l, so ``E[x | l] = A'(l) = sigmoid(l) - d log C / dl``
    (:func:`cb_log_norm_grad`). With sigmoid(l) = 1/2 + tanh(l/2) / 2 and
    1 / sinh(l) = (1 / tanh(l/2) - tanh(l/2)) / 2 this is the closed form above; the series is
    sigmoid's ``1/2 + l/4 - l**3/48 + l**5/480`` minus the derivative's series.
    """
    a = np.abs(logits)
    small = a < cb_taylor_below(logits)
    safe = np.where(small, 1.0, logits)
    closed = 0.5 / np.tanh(safe / 2) + 0.5 - 1 / safe
    series = 0.5 + logits / 12 - logits**3 / 720 + logits**5 / 30240
    return np.where(small, series, closed).astype(logits.dtype, copy=False)


# --- the likelihoods as objects -------------------------------------------------------------
#
# scipy.stats' pattern: the formulas above are plain functions; one small class per likelihood
# delegates to them, so from ``likelihood.nll(...)`` in model.loss_and_grads the formula is one
# jump away. Every class has the same interface; ``outs`` is the tuple of decoder outputs (one
# (B, D) array per head) and ``sigma`` the config's sigma (used by the fixed-sigma Gaussian
# only, accepted by all so callers need not know which likelihood they hold):
#
#     heads                               names of the decoder output heads
#     support                             (low, high): the values x may take, or None (all reals)
#     nll(x, outs, sigma) -> (B,)         rec_b = -log p(x_b | z_b), summed over D
#     nll_backward(dnll, x, outs, sigma)  -> tuple of d rec / d outs, one (B, D) array per head
#     mean(outs, sigma) -> (B, D)         E[x | z]

class Likelihood:
    r"""A decoder likelihood p(x|z) (base class: the shared attributes and their defaults).

    ``name`` is the key in :data:`LIKELIHOODS` and in ``VAEConfig.likelihood``; ``heads`` the
    decoder output heads; ``support`` the closed interval ``(low, high)`` the data x must lie in
    for the density to be defined, or None when any real x is allowed (checking x against it is
    the callers' business; the formulas themselves never clip).
    """
    name = None
    heads = ("out",)
    support = None

    def __repr__(self):
        return f"{type(self).__name__}()"


class Bernoulli(Likelihood):
    r"""``p(x_d | z) = lam_d**x_d * (1 - lam_d)**(1 - x_d)``, ``lam = sigmoid(logits)``.

    One head, the logits. x is binary, or in [0, 1] as a soft target (binary cross-entropy).
    """
    name = "bernoulli"
    support = (0.0, 1.0)

    def nll(self, x, outs, sigma=None):
        (logits,) = outs
        return bernoulli_nll(x, logits)

    def nll_backward(self, dnll, x, outs, sigma=None):
        (logits,) = outs
        return (bernoulli_nll_backward(dnll, x, logits),)

    def mean(self, outs, sigma=None):
        (logits,) = outs
        return bernoulli_mean(logits)


class Gaussian(Likelihood):
    r"""``p(x_d | z) = N(x_d; mean_d, sigma**2)`` with the fixed sigma of the config.

    One head, the mean (a linear output). ``sigma`` is ``VAEConfig.sigma``.
    """
    name = "gaussian"

    def nll(self, x, outs, sigma=1.0):
        (mean,) = outs
        return gaussian_nll(x, mean, sigma)

    def nll_backward(self, dnll, x, outs, sigma=1.0):
        (mean,) = outs
        return (gaussian_nll_backward(dnll, x, mean, sigma),)

    def mean(self, outs, sigma=None):
        (mean,) = outs
        return mean


class GaussianLearned(Likelihood):
    r"""``p(x_d | z) = N(x_d; mean_d, exp(logvar_d))`` with a per-pixel log-variance head.

    Two heads, ``out`` (the mean) and ``out_logvar`` (Kingma & Welling 2014, App. C.2).
    """
    name = "gaussian_learned"
    heads = ("out", "out_logvar")

    def nll(self, x, outs, sigma=None):
        mean, logvar = outs
        return gaussian_learned_nll(x, mean, logvar)

    def nll_backward(self, dnll, x, outs, sigma=None):
        mean, logvar = outs
        return gaussian_learned_nll_backward(dnll, x, mean, logvar)

    def mean(self, outs, sigma=None):
        mean, _ = outs
        return mean


class ContinuousBernoulli(Likelihood):
    r"""``p(x_d | z) = C(lam_d) lam_d**x_d (1 - lam_d)**(1 - x_d)`` on [0, 1], lam = sigmoid(l).

    One head, the logits (Loaiza-Ganem & Cunningham 2019); C is :func:`cb_log_norm`'s
    normalizer, and the mean is not sigmoid(l) (:func:`continuous_bernoulli_mean`).
    """
    name = "continuous_bernoulli"
    support = (0.0, 1.0)

    def nll(self, x, outs, sigma=None):
        (logits,) = outs
        return continuous_bernoulli_nll(x, logits)

    def nll_backward(self, dnll, x, outs, sigma=None):
        (logits,) = outs
        return (continuous_bernoulli_nll_backward(dnll, x, logits),)

    def mean(self, outs, sigma=None):
        (logits,) = outs
        return continuous_bernoulli_mean(logits)


LIKELIHOODS = {lik.name: lik for lik in
               (Bernoulli(), Gaussian(), GaussianLearned(), ContinuousBernoulli())}


def get_likelihood(name):
    r"""Return the likelihood object for a name (e.g. :class:`Bernoulli` for "bernoulli");
    ValueError lists the choices."""
    try:
        return LIKELIHOODS[name]
    except KeyError:
        raise ValueError(
            f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}") from None
