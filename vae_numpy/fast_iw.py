r"""The importance weights of :func:`vae_numpy.evaluate.iw_log_likelihood`, computed in
cache-sized blocks into buffers reused from one chunk of samples to the next.

Shape letters: S samples in a chunk, B examples, D data dimensions, H hidden width,
J latent dimensions.

``evaluate._log_weights`` is the readable version:

    log w = log p(x|z) + log p(z) - log q(z|x),   z = mu + exp(logvar / 2) * eps   (S, B)

It decodes all S * B latent vectors at once (5000 rows at the defaults) into (S * B, D)
arrays of 16 MB (float32), fresh for every chunk, each elementwise pass of the likelihood
streaming them through memory. Here the decoder runs on blocks of whole samples whose (rows,
D) outputs fit in about 1 MB (ROW_BLOCK_BYTES), written in place into buffers that live as
long as the :class:`LogWeights` object, and the Bernoulli likelihood's passes run on each block
while it is in cache, split over :func:`vae_numpy.threads.num_threads` threads. The
operations on every entry are those of the readable version, in the same order, so the
log-weights are equal bit for bit (tested for every likelihood and activation; OpenBLAS
computes each row of a matrix product the same way whatever the other rows, checked for
these shapes). Likelihoods other than Bernoulli and activations other than ReLU and tanh use
the package's own functions on each block.
"""
import numpy as np

from .gaussian import log_standard_normal, std_from_logvar
from .layers import activation_pair
from .likelihoods import get_likelihood
from .threads import num_threads, row_blocks, run_blocks, scratch


class ReluInPlace:
    r"""``h = max(a, 0)``, written over a."""

    def forward(self, a):
        return np.maximum(a, 0, out=a)


class TanhInPlace:
    r"""``h = tanh(a)``, written over a."""

    def forward(self, a):
        return np.tanh(a, out=a)


IN_PLACE_ACTIVATIONS = {"relu": ReluInPlace, "tanh": TanhInPlace}


def bernoulli_nll_rows(x, logits, rec, sp, scratch):
    r""":func:`vae_numpy.likelihoods.bernoulli_nll` of some rows, into ``rec`` (b,).

    ``rec = sum_d [softplus(l) - x * l]`` with ``softplus(l) = max(l, 0) + log1p(exp(-|l|))``,
    the same operations in the same order as the readable function; ``sp`` and ``scratch``
    (b, D) are overwritten. x may broadcast against logits (the same x for every sample).
    """
    np.abs(logits, out=sp)
    np.negative(sp, out=sp)
    np.exp(sp, out=sp)
    np.log1p(sp, out=sp)
    sp += np.maximum(logits, 0, out=scratch)       # softplus(l)
    sp -= np.multiply(x, logits, out=scratch)      # softplus(l) - x * l
    np.sum(sp, axis=-1, out=rec)

# Bytes of one block's (rows, D) decoder output: about 1 MB, so the output, its scratch copy
# and the weights' panel stay in a 2 MB L2 cache while the likelihood's passes run.
ROW_BLOCK_BYTES = 2**20


class LogWeights:
    r"""``log_w = LogWeights(params, cfg)(x, mu, logvar, eps)``: (S, B) log-weights for eps
    (S, B, J), equal to ``evaluate._log_weights(params, x, mu, logvar, eps, cfg)``.

    Reads ``params`` at every call (nothing is copied out of them). Inputs are not checked:
    the caller (``iw_log_likelihood``) checked x and drew eps in the params' dtype.
    """

    def __init__(self, params, cfg):
        self.params, self.cfg = params, cfg
        self.likelihood = get_likelihood(cfg.likelihood)
        in_place = IN_PLACE_ACTIVATIONS.get(cfg.activation)
        self.act = in_place() if in_place else None
        self.act_forward = activation_pair(cfg.activation)[0]
        self.buffers = {}

    def buffer(self, name, shape, dtype):
        r"""A buffer kept between calls, reallocated only when a larger one is needed."""
        n = int(np.prod(shape))
        buf = self.buffers.get(name)
        if buf is None or buf.size < n or buf.dtype != dtype:
            buf = self.buffers[name] = np.empty(n, dtype)
        return buf[:n].reshape(shape)

    def decode(self, z):
        r"""Decoder outputs for z (R, J): a tuple of (R, D) arrays, the first one a buffer."""
        params, cfg = self.params, self.cfg
        h = z
        for i, width in enumerate(cfg.decoder_hidden):
            a = self.buffer(f"dec.{i}", (len(z), width), z.dtype)
            np.matmul(h, params[f"dec.{i}.W"], out=a)
            a += params[f"dec.{i}.b"]
            h = self.act.forward(a) if self.act is not None else self.act_forward(a)[0]
        outs = []
        for j, head in enumerate(self.likelihood.heads):
            out = self.buffer(f"out.{j}", (len(z), cfg.input_dim), z.dtype)
            np.matmul(h, params[f"dec.{head}.W"], out=out)
            out += params[f"dec.{head}.b"]
            outs.append(out)
        return tuple(outs)

    def log_px_z(self, x, outs, into):
        r"""``log p(x|z)`` of one block: outs each (s, B, D), written into ``into`` (s, B)."""
        if self.cfg.likelihood != "bernoulli":
            np.negative(self.likelihood.nll(x, outs, self.cfg.sigma), out=into)
            return
        (logits,) = outs
        s, B, D = logits.shape
        tasks = [(k, rows) for k in range(s) for rows in row_blocks(B, num_threads())]

        def task(item):
            k, rows = item
            n = rows.stop - rows.start
            sp = scratch("iw.sp", n * D, logits.dtype).reshape(n, D)
            tmp = scratch("iw.tmp", n * D, logits.dtype).reshape(n, D)
            bernoulli_nll_rows(x[rows], logits[k, rows], into[k, rows], sp, tmp)
        run_blocks(task, tasks)
        np.negative(into, out=into)

    def __call__(self, x, mu, logvar, eps):
        S, B, J = eps.shape
        D = self.cfg.input_dim
        z = mu + std_from_logvar(logvar) * eps                       # (S, B, J)
        log_px_z = np.empty((S, B), eps.dtype)                       # (S, B)
        per_block = max(1, ROW_BLOCK_BYTES // (B * D * eps.dtype.itemsize))
        for s0 in range(0, S, per_block):
            s1 = min(S, s0 + per_block)
            outs = self.decode(z[s0:s1].reshape((s1 - s0) * B, J))  # each (s*B, D)
            outs = tuple(o.reshape(s1 - s0, B, D) for o in outs)
            self.log_px_z(x, outs, log_px_z[s0:s1])
        log_q = log_standard_normal(eps) - 0.5 * np.sum(logvar, axis=-1)  # (S, B)
        return log_px_z + log_standard_normal(z) - log_q
