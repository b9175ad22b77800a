r"""Optimizers written out: SGD with momentum, Adam, and gradient-norm clipping.

An optimizer holds only hyperparameters. Its state is a plain dict of arrays (made by
``init``), so a checkpoint can save it and a resumed run continues bit for bit:

    opt = Adam(lr=1e-3)
    state = opt.init(params)
    opt.step(params, grads, state)   # updates params and state in place
"""
import numpy as np

from .threads import run_blocks, scratch


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
        r"""One update of every parameter, in place.

        Each parameter is updated block by block (:func:`adam_blocks`), so that a block's
        arrays stay in the cache over the dozen passes of the update; every entry goes through
        exactly the operations of :meth:`update`, so the result does not depend on the blocks.
        The blocks run on the calling thread (``ADAM_THREADS``): spread over two threads they
        were measured slower inside a training epoch (vae_numpy.fast_step.STEP_THREADS).
        """
        t = int(state["step"]) + 1
        state["step"] = np.array(t)
        bias1, bias2 = 1 - self.beta1**t, 1 - self.beta2**t
        blocks = adam_blocks(params, grads, state)
        run_blocks(lambda block: self.update(*block, bias1, bias2), blocks,
                   threads=ADAM_THREADS)

    def update(self, p, g, m, v, bias1, bias2):
        r"""The update of the class docstring on arrays p, g, m, v (any shape), in place.

        Written with two scratch buffers instead of temporaries, in the same order of
        operations as the formula, so it equals ``p - lr * (m / bias1) / (sqrt(v / bias2)
        + eps)`` bit for bit; ``bias1 = 1 - beta1**t``, ``bias2 = 1 - beta2**t``.
        """
        if not all(a.flags.c_contiguous and a.dtype == p.dtype and a.shape == p.shape
                   for a in (g, m, v)):
            return self._update_plain(p, g, m, v, bias1, bias2)
        tmp = scratch("adam.tmp", p.size, p.dtype).reshape(p.shape)
        den = scratch("adam.den", p.size, p.dtype).reshape(p.shape)
        m *= self.beta1
        m += np.multiply(g, 1 - self.beta1, out=tmp)        # (1 - beta1) * g
        v *= self.beta2
        tmp = np.multiply(g, g, out=tmp)
        v += np.multiply(tmp, 1 - self.beta2, out=tmp)      # (1 - beta2) * g**2
        np.divide(v, bias2, out=den)
        np.sqrt(den, out=den)
        den += self.eps                                     # sqrt(v_hat) + eps
        np.divide(m, bias1, out=tmp)                        # m_hat
        tmp *= self.lr
        tmp /= den
        p -= tmp

    def _update_plain(self, p, g, m, v, bias1, bias2):
        r"""The formula with temporaries (for arrays the blocked path cannot view in place)."""
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        p -= self.lr * (m / bias1) / (np.sqrt(v / bias2) + self.eps)


# Threads for Adam's blocks: one (see Adam.step).
ADAM_THREADS = 1

# Entries per block of an optimizer update: 256 kB per array (64k float32 or 32k float64
# entries), so a block's p, g, m, v and two scratch buffers (1.5 MB) stay in a 2 MB L2 cache
# while the dozen passes of the update run over them.
BLOCK_BYTES = 2**18


def adam_blocks(params, grads, state, block_bytes=BLOCK_BYTES):
    r"""``(p, g, m, v)`` views of every parameter in blocks of ``block_bytes``: a list of tuples.

    Contiguous arrays of one dtype are cut into flat blocks (views, so updating a block
    updates the parameter); anything else is one block of the whole arrays.
    """
    blocks = []
    for k, p in params.items():
        g, m, v = grads[k], state[f"m/{k}"], state[f"v/{k}"]
        arrays = (p, g, m, v)
        if not all(a.flags.c_contiguous and a.dtype == p.dtype and a.shape == p.shape
                   for a in arrays):
            blocks.append(arrays)
            continue
        flat = [a.reshape(-1) for a in arrays]
        size = max(1, block_bytes // p.itemsize)
        for start in range(0, p.size, size):
            blocks.append(tuple(a[start:start + size] for a in flat))
    return blocks


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
