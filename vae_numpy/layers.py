r"""Dense layer and elementwise activations as forward/backward pairs.

Shape letters: B batch, I layer input width, O layer output width.

Every ``*_forward`` returns ``(out, cache)``; the matching ``*_backward(dout, cache)``
returns the gradients of the forward's array arguments, in the forward's argument order.
Nothing is stored on objects: the cache is the only state and the caller holds it.
"""
import numpy as np
from scipy.special import expit

LEAKY_RELU_SLOPE = 0.01  # PyTorch's nn.LeakyReLU default negative_slope


def dense_forward(x, W, b):
    r"""Affine map ``out = x @ W + b``.

    Parameters
    ----------
    x : (B, I) array
    W : (I, O) array. PyTorch's ``nn.Linear.weight`` is ``W.T``.
    b : (O,) array

    Returns
    -------
    out : (B, O) array
    cache : (x, W)
    """
    out = x @ W
    out += b   # in place: ``x @ W + b`` would write a second (B, O) array, nearly doubling the time
    return out, (x, W)


def dense_backward(dout, cache, input_grad=True):
    r"""Backward of ``out = x @ W + b``.

    Local derivatives: d out / d x = W.T, d out / d W = x.T, d out / d b = 1 (summed over B).

    Parameters
    ----------
    dout : (B, O) array, upstream gradient d loss / d out.
    input_grad : False skips dx (returned as None): the data needs no gradient, and for
        the first encoder layer dx is a (B, O) x (O, I) product, a sixth of a training step.

    Returns
    -------
    dx : (B, I) or None, dW : (I, O), db : (O,)
    """
    x, W = cache
    dx = dout @ W.T if input_grad else None
    return dx, x.T @ dout, dout.sum(axis=0)


# --- activations: forward(a) -> (h, cache), backward(dh, cache) -> da ---------------------

def relu_forward(a):
    r"""``h = max(a, 0)``."""
    return np.maximum(a, 0), a


def relu_backward(dh, a):
    r"""``dh/da = 1 if a > 0 else 0`` (0 at the kink, as PyTorch)."""
    return dh * (a > 0)


def leaky_relu_forward(a):
    r"""``h = a if a > 0 else 0.01 * a``."""
    return np.where(a > 0, a, LEAKY_RELU_SLOPE * a), a


def leaky_relu_backward(dh, a):
    r"""``dh/da = 1 if a > 0 else 0.01``."""
    return dh * np.where(a > 0, 1, LEAKY_RELU_SLOPE).astype(dh.dtype)


def tanh_forward(a):
    r"""``h = tanh(a)``; the cache is ``h``."""
    h = np.tanh(a)
    return h, h


def tanh_backward(dh, h):
    r"""``dh/da = 1 - tanh(a)**2 = 1 - h**2``."""
    return dh * (1 - h * h)


def sigmoid_forward(a):
    r"""``h = 1 / (1 + exp(-a))`` (scipy's overflow-free ``expit``); the cache is ``h``."""
    h = expit(a)
    return h, h


def sigmoid_backward(dh, h):
    r"""``dh/da = sigmoid(a) * (1 - sigmoid(a)) = h * (1 - h)``."""
    return dh * h * (1 - h)


def softplus(a):
    r"""``softplus(a) = log(1 + exp(a))``, computed as ``max(a, 0) + log1p(exp(-|a|))``.

    Finite and exact for every finite a (exp never sees a positive argument), and faster than
    ``np.logaddexp(0, a)``, which equals it to round-off (a test checks): on (128, 784) logits
    9-11 times in float32 and 4-5 times in float64 (``benchmarks/bench_softplus.py``, two runs
    on one core of a shared machine; the ratio depends on the machine and NumPy build).
    """
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def softplus_forward(a):
    r"""``h = softplus(a) = log(1 + exp(a))``."""
    return softplus(a), a


def softplus_backward(dh, a):
    r"""``dh/da = sigmoid(a)``."""
    return dh * expit(a)


def identity_forward(a):
    r"""``h = a``."""
    return a, None


def identity_backward(dh, cache):
    r"""``dh/da = 1``."""
    return dh


ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward),
    "tanh": (tanh_forward, tanh_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "softplus": (softplus_forward, softplus_backward),
    "identity": (identity_forward, identity_backward),
}


def activation_pair(name):
    r"""Return ``(forward, backward)`` for an activation name; ValueError lists the choices."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None
