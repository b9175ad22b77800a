r"""Binarization: Bernoulli likelihoods want x in {0, 1}.

Static (one draw per pixel, once), dynamic (a fresh draw per minibatch) and threshold;
:func:`binarize_test_set` uses a fixed seed so every tool binarizes the test set identically.
Shape letters: N examples, D data dimensions.
"""
import numpy as np

from .datasets import check_unit_float


def check_probabilities(x, name="x"):
    r"""``x`` as an array, checked to be float in [0, 1] (what binarization draws from)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} has dtype {x.dtype}; binarization wants float "
                        "probabilities in [0, 1] (call to_unit_interval first)")
    check_unit_float(x, name)
    return x


def binarize_static(x, rng):
    r"""One Bernoulli draw per pixel: ``x_bin = (u < x)``, ``u ~ U[0, 1)``, so P(1) = x.

    Called once on a whole data set ("static" binarization). The uniforms are drawn in
    float64 (``rng.random(x.shape)``) whatever the dtype of ``x``, in C order, so the
    first k rows of ``x`` get the same draws as when binarized alone.

    Parameters
    ----------
    x : ndarray, any shape, float in [0, 1]
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape and dtype of ``x``, values in {0, 1}
    """
    return bernoulli_draw(check_probabilities(x), rng)


def bernoulli_draw(x, rng):
    r"""``x_bin = (u < x)``, ``u ~ U[0, 1)`` drawn in float64 in C order: the draw of
    :func:`binarize_static` without its check that x is float in [0, 1] (train checks its
    data once, then draws every minibatch with this)."""
    return (rng.random(x.shape) < x).astype(x.dtype)


def binarize_dynamic(x, rng):
    r"""Dynamic binarization: the same draw as :func:`binarize_static`, made per minibatch.

    Call it on every minibatch ``x (B, D)`` during training, with the training loop's
    ``rng``: each call is a fresh draw, so over the epochs the model sees many binary
    samples of each grey-level image (this regularizes, and it is the usual protocol
    behind published MNIST log-likelihoods). Evaluate on :func:`binarize_test_set`.
    """
    return binarize_static(x, rng)


def binarize_test_set(x, seed=0):
    r"""Static binarization with a fixed seed: ``binarize_static(x, default_rng(seed))``.

    Every run of every tool that calls this on the same test set gets the same binary
    images, so evaluation numbers are comparable.
    """
    return binarize_static(x, np.random.default_rng(seed))


def binarize_threshold(x, threshold=0.5):
    r"""Deterministic binarization ``x_bin = (x > threshold)``, shape and dtype of ``x``."""
    x = check_probabilities(x)
    return (x > threshold).astype(x.dtype)
