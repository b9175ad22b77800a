r"""Optimizers written out: SGD with momentum, Adam, and gradient-norm clipping.

An optimizer holds only hyperparameters. Its state is a plain dict of arrays (made by
``init``), so a checkpoint can save it and a resumed run continues bit for bit:

    opt = Adam(lr=1e-3)
    state = opt.init(params)
    opt.step(params, grads, state)   # updates params and state in place
"""
import numpy as np


class SGD:
    r"""Stochastic gradient descent with (optionally Nesterov) momentum, as ``torch.optim.SGD``.

    ``buf <- momentum * buf + g`` (buf starts at 0, so the first step uses g);
    ``p <- p - lr * buf``, or with Nesterov ``p <- p - lr * (g + momentum * buf)``.
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        if not lr > 0 or not 0 <= momentum < 1:
            raise ValueError(f"SGD needs lr > 0 and 0 <= momentum < 1, got lr={lr}, "
                             f"momentum={momentum}")
        self.lr, self.momentum, self.nesterov = lr, momentum, nesterov

    def init(self, params):
        r"""State: ``step`` and a zero momentum buffer ``buf/<name>`` per parameter."""
        state = {"step": np.array(0)}
        state.update({f"buf/{k}": np.zeros_like(v) for k, v in params.items()})
        return state

    def step(self, params, grads, state):
        r"""One update of every parameter, in place."""
        state["step"] = state["step"] + 1
        for k, p in params.items():
            g = grads[k]
            buf = state[f"buf/{k}"]
            buf *= self.momentum
            buf += g
            p -= self.lr * (g + self.momentum * buf if self.nesterov else buf)


class Adam:
    r"""Adam (Kingma & Ba 2015, Algorithm 1), with torch.optim.Adam's defaults.

    For step t = 1, 2, ...:
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t),  v_hat = v / (1 - beta2**t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        if not lr > 0 or not 0 <= beta1 < 1 or not 0 <= beta2 < 1 or not eps > 0:
            raise ValueError(f"Adam needs lr > 0, 0 <= beta1, beta2 < 1, eps > 0; got lr={lr}, "
                             f"beta1={beta1}, beta2={beta2}, eps={eps}")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps

    def init(self, params):
        r"""State: ``step`` and zero moments ``m/<name>``, ``v/<name>`` per parameter."""
        state = {"step": np.array(0)}
        for k, v in params.items():
            state[f"m/{k}"] = np.zeros_like(v)
            state[f"v/{k}"] = np.zeros_like(v)
        return state

    def step(self, params, grads, state):
        r"""One update of every parameter, in place: :meth:`update` on each parameter's
        :func:`cache_blocks` (each entry's update depends on that entry alone, so the blocks
        change no number; they keep the arrays in the cache over the formula's passes)."""
        t = int(state["step"]) + 1
        state["step"] = np.array(t)
        bias1, bias2 = 1 - self.beta1**t, 1 - self.beta2**t
        for k, p in params.items():
            for block in cache_blocks(p, grads[k], state[f"m/{k}"], state[f"v/{k}"]):
                self.update(*block, bias1, bias2)

    def update(self, p, g, m, v, bias1, bias2):
        r"""The update of the class docstring on arrays p, g, m, v of one shape, in place;
        ``bias1 = 1 - beta1**t`` and ``bias2 = 1 - beta2**t`` are the bias corrections."""
        m *= self.beta1
        m += (1 - self.beta1) * g                           # m = beta1 m + (1 - beta1) g
        v *= self.beta2
        v += (1 - self.beta2) * np.square(g)                # v = beta2 v + (1 - beta2) g**2
        p -= self.lr * (m / bias1) / (np.sqrt(v / bias2) + self.eps)


# Bytes per array in a block of cache_blocks: 256 kB (64k float32 or 32k float64 entries), so a
# block's p, g, m, v and the update's temporaries (about 2 MB) stay in a 2 MB L2 cache while
# the dozen passes of Adam's formula run over them. On the 784-400-20 parameters (float32, one
# core of a busy 2-core machine) the update over whole arrays took 1.26-1.31 times as long
# (python benchmarks/readable_vs_copy.py --rows adam_blocks --repeats 15 --calls 10).
BLOCK_BYTES = 2**18


def cache_blocks(*arrays, block_bytes=BLOCK_BYTES):
    r"""Views of arrays of one shape in flat blocks of ``block_bytes``: yields tuples with one
    view per array (updating a view updates the array).

    Arrays that are not all C-contiguous with one dtype come as one block of the whole arrays.
    """
    first = arrays[0]
    if not all(a.flags.c_contiguous and a.dtype == first.dtype and a.shape == first.shape
               for a in arrays):
        yield arrays
        return
    flat = [a.reshape(-1) for a in arrays]
    size = max(1, block_bytes // first.itemsize)
    for start in range(0, first.size, size):
        yield tuple(a[start:start + size] for a in flat)


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def global_norm(grads):
    r"""``sqrt(sum over all parameters and entries of g**2)``, as a Python float."""
    return float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))


def clip_grad_norm(grads, max_norm):
    r"""Scale all gradients by ``max_norm / (norm + 1e-6)`` when that is < 1 (as
    ``torch.nn.utils.clip_grad_norm_``). Returns (clipped grads dict, norm before clipping)."""
    norm = global_norm(grads)
    coef = max_norm / (norm + 1e-6)
    if coef >= 1:
        return grads, norm
    return {k: g * g.dtype.type(coef) for k, g in grads.items()}, norm
