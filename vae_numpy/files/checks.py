r"""Checks at the public entry points: data in the likelihood's support, a posterior that has
not overflowed, sane configuration numbers. Each raises an error that names the array (or field),
says what is wrong and how to fix it.

Shape letters: B batch, D data dimensions, J latent dimensions.

Where they run: once per call of a public function (``loss_and_grads``, the evaluation
functions, ``train`` on its data before the first epoch), never inside a loop over steps.

**Support.** The Bernoulli and the continuous Bernoulli are distributions over x in [0, 1]; a
value outside (most often uint8 pixels cast to float and not divided by 255) gives a loss of
1e4 to 1e56 nats with no error anywhere else, so it is refused here.

Grey values strictly between 0 and 1 stay allowed for the Bernoulli (pytorch/examples trains on
them): the "negative log-likelihood" is then the binary cross-entropy against a soft target,
which is not the log-density of any distribution over grey images. Numbers computed that way
are not log-likelihoods and are not comparable with published binarized-MNIST results (about
80-90 nats); binarize (vae_numpy.data.binarize_dynamic / binarize_test_set) for those, or use
the continuous Bernoulli, which is normalized on [0, 1].

**Overflow.** ``exp(logvar)`` overflows when logvar exceeds log(largest float) (709.78 in
float64, 88.72 in float32); an encoder whose logvar gets near that has diverged (a variance of
1e154 for a prior of variance 1). Rather than clamping (which would hide the divergence and
change the math away from the formulas), an entry point refuses a logvar above LOGVAR_MAX, half
of that limit (354.9 in float64, 44.4 in float32), with a FloatingPointError naming the cause;
below it exp(logvar) <= sqrt(largest float), so the KL and its sum over J and B stay finite.
"""
import math
import numbers

import numpy as np

from ..likelihoods import get_likelihood

# Largest logvar an entry point accepts, per dtype: half of log(finfo.max) (see above).
LOGVAR_MAX = {name: 0.5 * math.log(np.finfo(name).max) for name in ("float64", "float32")}
_LOGVAR_LIMIT = {np.dtype(name): limit for name, limit in LOGVAR_MAX.items()}


def check_support(name, x, likelihood_name, value_range=None):
    r"""Raise ValueError if x has values outside the support of the likelihood.

    Parameters
    ----------
    name : the array's name in the message ("x", "x_train", ...).
    x : ndarray, (B, D), finite.
    likelihood_name : a key of vae_numpy.likelihoods.LIKELIHOODS; only the bernoulli and the
        continuous_bernoulli have a bounded support, [0, 1].
    value_range : (min, max) of x if the caller already has them (saves two passes).

    The message names the first row (in C order) with a bad value, the value, and the fix.
    """
    support = get_likelihood(likelihood_name).support
    if support is None or x.size == 0:
        return
    low, high = support
    lo, hi = value_range if value_range is not None else (x.min(), x.max())
    if low <= lo and hi <= high:
        return
    bad = (x < low) | (x > high)
    row, col = (int(i) for i in np.argwhere(bad)[0]) if x.ndim == 2 else (0, 0)
    value = x[row, col] if x.ndim == 2 else x[bad][0]
    hint = ("Were uint8 pixels cast to float without scaling? Divide them by 255 "
            "(vae_numpy.data.to_unit_interval and load_dataset do)" if hi > 1.5
            else "Rescale the data into [0, 1]")
    raise ValueError(
        f"{name} has values outside [{low:g}, {high:g}], the support of the {likelihood_name} "
        f"likelihood: row {row} has {float(value):g} (column {col}); {name} spans "
        f"[{float(lo):g}, {float(hi):g}]. {hint}, or use a gaussian likelihood for "
        "real-valued data")


def check_logvar(logvar):
    r"""Raise FloatingPointError when logvar (B, J) exceeds LOGVAR_MAX of its dtype.

    NaN counts as exceeding. One reduction over (B, J) (the latent code, not the data), about
    3 microseconds for B = 128, J = 20: this check runs in every training step.
    """
    if logvar.size and not logvar.max() <= _LOGVAR_LIMIT[logvar.dtype]:
        _logvar_error(logvar)


def _logvar_error(logvar):
    limit = LOGVAR_MAX[logvar.dtype.name]
    row, col = (int(i) for i in np.argwhere(~(logvar <= limit))[0])
    raise FloatingPointError(
        f"the encoder's logvar is {float(logvar[row, col]):g} (row {row}, latent dimension "
        f"{col}), beyond {limit:.1f} where exp(logvar) is about to overflow {logvar.dtype}: the "
        "encoder has diverged. Lower the learning rate or clip the gradient norm "
        "(train(..., clip_norm=...)) and retrain from the last good checkpoint")


def check_number(owner, name, value, low=None, high=None, low_open=False, integer=False):
    r"""Return ``value`` if it is a finite real number (an integer if asked) within bounds.

    ``low`` is inclusive unless ``low_open``; ``high`` is inclusive. Booleans are refused.
    Raises TypeError for a non-number, ValueError for NaN, inf or a value out of bounds,
    naming ``owner.name``.
    """
    kind = "an integer" if integer else "a finite number"
    ok_type = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, ok_type):
        if not (integer and isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value) and int(value) == value):
            raise TypeError(f"{owner}.{name} must be {kind}, got {value!r} "
                            f"({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be {kind}, got {value!r}")
    below = value <= low if low_open else value < low if low is not None else False
    if below or (high is not None and value > high):
        bounds = (f"{'>' if low_open else '>='} {low:g}" if low is not None else "") + \
                 (f"{' and ' if low is not None else ''}<= {high:g}" if high is not None else "")
        raise ValueError(f"{owner}.{name} must be {bounds}, got {value!r}")
    return value
