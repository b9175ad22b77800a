r"""The training step of :func:`vae_numpy.train`: :func:`vae_numpy.model.loss_and_grads`
computed into buffers that live from one step to the next.

Shape letters: B batch, D data dimensions, H hidden width, J latent dimensions.

``loss_and_grads`` is the page to read; this module computes the same numbers with less work:

- every (B, H) and (B, D) array of the step is a buffer of a workspace kept per batch size,
  written in place (``np.matmul(h, W, out=a)``, ``np.tanh(a, out=a)``), so a step allocates
  almost nothing;
- the encoder heads keep one matrix product each. One product with the merged (H, 2J)
  weight ``[W_mu | W_logvar]`` (gathered at every step) was measured against two products:
  it saved about 10% of the heads' time at 784-400-20 and lost 10-50% at 784-200-200-50,
  under 1% of a step either way, and OpenBLAS's kernels for 2J columns sum in another order than
  for J columns (checked: not bit-identical in float64, nor in float32 at H = 200), which
  would cost the bit-for-bit equality below. So the step reads ``params`` as they are at
  every call: no merged copy, nothing to go stale when the caller replaces a parameter;
- the Bernoulli likelihood's forward and backward run as one pass over row blocks of the
  (B, D) logits, on the calling thread. Spreading the blocks over two threads was measured
  slower on the 2-core machines this project runs on (see ``STEP_THREADS``);
- no input checks (train checks its data once) and no dtype changes.

Every array goes through the same floating-point operations, in the same order, as in
``loss_and_grads``, so the loss, the gradients and the terms are equal bit for bit (tested
for every likelihood and activation, both reductions, free bits, rec_weight and beta). The
ReLU and tanh layers and the Bernoulli likelihood have in-place versions here; the other
activations and likelihoods call the functions of :mod:`vae_numpy.layers` and
:mod:`vae_numpy.likelihoods` themselves (fresh arrays, the same numbers).

The returned ``grads`` and the (B, J) terms are views of the workspace: the next call
overwrites them. ``train`` uses them before the next step; anyone who keeps them must copy.
"""
import numpy as np
from scipy.special import expit

from .gaussian import (kl_standard_normal, kl_standard_normal_backward,
                       reparameterize_backward, reparameterize_forward)
from .layers import activation_pair
from .likelihoods import get_likelihood
from .model import free_bits_kl, reduce_batch, reduction_weights
from .threads import run_blocks

# Rows of the (B, D) logits per block of the fused likelihood pass: 32 rows of 784 float32
# are 100 kB per array, so the handful of arrays the pass touches stay in the L2 cache.
LIKELIHOOD_BLOCK_ROWS = 32

# Threads for the step's elementwise work (and Adam's, see vae_numpy.optim): one. A 2-core
# Intel Xeon, one epoch of 10,000 MNIST images through train(), float32, medians of 3, s
# (OpenBLAS threads x elementwise threads):
#
#     model, batch              1x1    2x1    1x2    2x2
#     784-400-20 relu, 128      0.79   0.79   0.78   0.89
#     784-200-200-50 tanh, 20   1.77   1.51   1.90   1.98
#     784-200-200-50 tanh, 100  0.62   0.52   0.61   0.67
#
# Identical runs on that machine differ by 10-20%, but the split (x2) columns lose or tie in
# every row, and in the IWAE step too (k = 5, batch 100: 0.98 s at 2x2 against 0.84 at 2x1).
# A step's blocks are small (25k entries), so each thread's share is a few microseconds of
# work between hand-offs of Python's lock. Even Adam alone, outside training, ran its blocks
# over two threads in 1.6-1.9 ms against 2.3 ms on one, where a clean split would give 1.1.
# The importance-weighted evaluation, whose arrays are K times larger, does split its work
# (vae_numpy.fast_iw).
STEP_THREADS = 1


# --- activations in place: forward(a) overwrites a with h; backward(dh, h) overwrites dh ------

class ReluInPlace:
    r"""``h = max(a, 0)``; ``dh/da = 1 if a > 0 else 0``, read from h (h > 0 exactly when a > 0)."""

    def forward(self, a):
        return np.maximum(a, 0, out=a)

    def backward(self, dh, h, mask):
        np.greater(h, 0, out=mask)
        return np.multiply(dh, mask, out=dh)


class TanhInPlace:
    r"""``h = tanh(a)``; ``dh/da = 1 - h**2``."""

    def forward(self, a):
        return np.tanh(a, out=a)

    def backward(self, dh, h, scratch):
        np.multiply(h, h, out=scratch)
        np.subtract(1, scratch, out=scratch)
        return np.multiply(dh, scratch, out=dh)


IN_PLACE_ACTIVATIONS = {"relu": ReluInPlace, "tanh": TanhInPlace}


# --- the Bernoulli likelihood, forward and backward in one pass ------------------------------

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


def bernoulli_rows(x, logits, dnll, rec, dlogits, tmp):
    r"""Forward and backward of :func:`vae_numpy.likelihoods.bernoulli_nll` on some rows.

    ``rec`` (b,) as in :func:`bernoulli_nll_rows`, and ``dlogits = dnll * (sigmoid(l) - x)``
    (b, D) as in :func:`vae_numpy.likelihoods.bernoulli_nll_backward`; ``tmp`` is scratch.
    """
    bernoulli_nll_rows(x, logits, rec, tmp, dlogits)
    expit(logits, out=dlogits)
    dlogits -= x
    dlogits *= dnll[:, None]


# --- the workspace --------------------------------------------------------------------------

class Workspace:
    r"""The buffers of one batch size: pre-activations (B, H_i), logits (B, D), gradients."""

    def __init__(self, cfg, batch, dtype, params):
        B, J = batch, cfg.latent_dim
        self.batch = batch
        self.enc_a = [np.empty((B, h), dtype) for h in cfg.encoder_hidden]   # (B, H_i)
        self.dec_a = [np.empty((B, h), dtype) for h in cfg.decoder_hidden]   # (B, H_i)
        self.enc_dh = [np.empty((B, h), dtype) for h in cfg.encoder_hidden]
        self.dec_dh = [np.empty((B, h), dtype) for h in cfg.decoder_hidden]
        self.enc_scratch = [np.empty((B, h), dtype) for h in cfg.encoder_hidden]
        self.dec_scratch = [np.empty((B, h), dtype) for h in cfg.decoder_hidden]
        self.enc_mask = [np.empty((B, h), bool) for h in cfg.encoder_hidden]
        self.dec_mask = [np.empty((B, h), bool) for h in cfg.decoder_hidden]
        H_enc = cfg.encoder_hidden[-1] if cfg.encoder_hidden else cfg.input_dim
        self.mu, self.logvar = np.empty((B, J), dtype), np.empty((B, J), dtype)
        self.dmu, self.dlogvar = np.empty((B, J), dtype), np.empty((B, J), dtype)
        self.head_dh = np.empty((B, H_enc), dtype)
        self.logits = np.empty((B, cfg.input_dim), dtype)                     # (B, D)
        self.dlogits = np.empty((B, cfg.input_dim), dtype)
        self.tmp = np.empty((B, cfg.input_dim), dtype)
        self.rec = np.empty(B, dtype)
        self.grads = {k: np.empty_like(v) for k, v in params.items()}


class FastStep:
    r"""``step(params, x, eps, beta) -> (loss, grads, terms)``, equal to
    ``loss_and_grads(params, x, eps, cfg, reduction, free_bits, beta)`` bit for bit.

    Parameters
    ----------
    cfg : VAEConfig
    reduction : "mean" or "sum"
    free_bits : float >= 0, as in loss_and_grads.

    The inputs are not checked: x (B, D) and eps (B, J) must be C-ordered arrays of the
    params' dtype (``train`` checks its data once).
    """

    def __init__(self, cfg, reduction="mean", free_bits=0.0):
        reduction_weights(1, reduction, np.float64)  # the error for a bad reduction, now
        self.cfg, self.reduction, self.free_bits = cfg, reduction, free_bits
        self.likelihood = get_likelihood(cfg.likelihood)
        in_place = IN_PLACE_ACTIVATIONS.get(cfg.activation)
        self.act = in_place() if in_place else None
        self.act_pair = activation_pair(cfg.activation)
        self.workspaces = {}

    def workspace(self, batch, params):
        ws = self.workspaces.get(batch)
        dtype = params["enc.mu.W"].dtype
        if ws is None or ws.mu.dtype != dtype:
            ws = self.workspaces[batch] = Workspace(self.cfg, batch, dtype, params)
        return ws

    # --- hidden layers -------------------------------------------------------------------

    def mlp_forward(self, h, params, prefix, buffers):
        r"""``h <- act(h @ W_i + b_i)`` into ``buffers`` (B, H_i); returns (h, layer inputs,
        activation caches)."""
        inputs, caches = [], []
        for i, a in enumerate(buffers):
            inputs.append(h)
            np.matmul(h, params[f"{prefix}.{i}.W"], out=a)
            a += params[f"{prefix}.{i}.b"]
            if self.act is not None:
                h = self.act.forward(a)
                caches.append(h)
            else:
                h, cache = self.act_pair[0](a)
                caches.append(cache)
        return h, inputs, caches

    def mlp_backward(self, dh, params, prefix, inputs, caches, dh_buffers, scratch, grads,
                     input_grad):
        r"""Backward of :meth:`mlp_forward`: writes ``grads[prefix.i.W/b]``, returns d input."""
        for i in reversed(range(len(inputs))):
            if self.act is not None:
                da = self.act.backward(dh, caches[i], scratch[i])
            else:
                da = self.act_pair[1](dh, caches[i])
            np.matmul(inputs[i].T, da, out=grads[f"{prefix}.{i}.W"])
            np.sum(da, axis=0, out=grads[f"{prefix}.{i}.b"])
            if i == 0 and not input_grad:
                return None
            out = dh_buffers[i - 1] if i > 0 else None
            dh = np.matmul(da, params[f"{prefix}.{i}.W"].T, out=out)
        return dh

    # --- the likelihood --------------------------------------------------------------------

    def decoder_heads_forward(self, h, params, ws):
        if self.cfg.likelihood == "bernoulli":
            np.matmul(h, params["dec.out.W"], out=ws.logits)
            ws.logits += params["dec.out.b"]
            return (ws.logits,)
        return tuple(h @ params[f"dec.{head}.W"] + params[f"dec.{head}.b"]
                     for head in self.likelihood.heads)

    def likelihood_pass(self, x, outs, dnll, ws):
        r"""rec (B,) and d rec-part of the loss / d outs: fused for Bernoulli, else the
        likelihood's own functions."""
        if self.cfg.likelihood != "bernoulli":
            rec = self.likelihood.nll(x, outs, self.cfg.sigma)
            return rec, self.likelihood.nll_backward(dnll, x, outs, self.cfg.sigma)
        B = x.shape[0]
        blocks = [slice(s, min(s + LIKELIHOOD_BLOCK_ROWS, B))
                  for s in range(0, B, LIKELIHOOD_BLOCK_ROWS)]

        def block(rows):
            bernoulli_rows(x[rows], ws.logits[rows], dnll[rows], ws.rec[rows],
                           ws.dlogits[rows], ws.tmp[rows])
        run_blocks(block, blocks, threads=STEP_THREADS)
        return ws.rec.copy(), (ws.dlogits,)

    def decoder_heads_backward(self, douts, h, params, ws, grads):
        r"""Head gradients; returns d h (B, H) summed over the heads."""
        dh = None
        for head, dout in zip(self.likelihood.heads, douts):
            np.matmul(h.T, dout, out=grads[f"dec.{head}.W"])
            np.sum(dout, axis=0, out=grads[f"dec.{head}.b"])
            dh_head = dout @ params[f"dec.{head}.W"].T
            dh = dh_head if dh is None else dh + dh_head
        return dh

    # --- the step ------------------------------------------------------------------------

    def __call__(self, params, x, eps, beta):
        cfg = self.cfg
        beta = cfg.beta if beta is None else beta
        ws = self.workspace(x.shape[0], params)
        grads = ws.grads

        # forward: x -> hidden -> (mu, logvar) -> z -> outs -> rec; and (mu, logvar) -> kl
        h, enc_inputs, enc_caches = self.mlp_forward(x, params, "enc", ws.enc_a)
        mu = np.matmul(h, params["enc.mu.W"], out=ws.mu)                    # (B, J)
        mu += params["enc.mu.b"]
        logvar = np.matmul(h, params["enc.logvar.W"], out=ws.logvar)        # (B, J)
        logvar += params["enc.logvar.b"]
        z, rep_cache = reparameterize_forward(mu, logvar, eps)              # (B, J)
        h_dec, dec_inputs, dec_caches = self.mlp_forward(z, params, "dec", ws.dec_a)
        outs = self.decoder_heads_forward(h_dec, params, ws)                # each (B, D)
        dper = reduction_weights(x.shape[0], self.reduction, mu.dtype)      # (B,)
        rec, douts = self.likelihood_pass(x, outs, cfg.rec_weight * dper, ws)
        kl = kl_standard_normal(mu, logvar)                                 # (B,)
        kl_objective, active = kl, None
        if self.free_bits > 0:
            kl_objective, active = free_bits_kl(mu, logvar, self.free_bits)
        loss = reduce_batch(cfg.rec_weight * rec + beta * kl_objective, self.reduction)

        # backward: the decoder path and the KL path meet at the encoder heads
        dh = self.decoder_heads_backward(douts, h_dec, params, ws, grads)
        dz = self.mlp_backward(dh, params, "dec", dec_inputs, dec_caches, ws.dec_dh,
                               ws.dec_scratch if cfg.activation == "tanh" else ws.dec_mask,
                               grads, input_grad=True)
        dmu, dlogvar = reparameterize_backward(dz, rep_cache)
        dmu_kl, dlogvar_kl = kl_standard_normal_backward(beta * dper, mu, logvar)
        if active is not None:
            dmu_kl, dlogvar_kl = dmu_kl * active, dlogvar_kl * active
        dmu = np.add(dmu, dmu_kl, out=ws.dmu)                               # (B, J)
        dlogvar = np.add(dlogvar, dlogvar_kl, out=ws.dlogvar)               # (B, J)
        for head, dhead in (("mu", dmu), ("logvar", dlogvar)):
            np.matmul(h.T, dhead, out=grads[f"enc.{head}.W"])
            np.sum(dhead, axis=0, out=grads[f"enc.{head}.b"])
        if enc_inputs:
            dh = np.matmul(dmu, params["enc.mu.W"].T, out=ws.head_dh)       # (B, H)
            dh += dlogvar @ params["enc.logvar.W"].T
            self.mlp_backward(dh, params, "enc", enc_inputs, enc_caches, ws.enc_dh,
                              ws.enc_scratch if cfg.activation == "tanh" else ws.enc_mask,
                              grads, input_grad=False)

        terms = {"rec": rec, "kl": kl, "mu": mu, "logvar": logvar, "z": z,
                 "kl_objective": kl_objective}
        return loss, {k: grads[k] for k in params}, terms

def make_fast_step(cfg, reduction="mean", free_bits=0.0):
    r"""The training step for ``cfg``: a :class:`FastStep` (see the module docstring)."""
    return FastStep(cfg, reduction, free_bits)
