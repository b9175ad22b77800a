r"""The IWAE training step of :func:`vae_numpy.train`: :func:`vae_numpy.iwae._iwae_step`
computed into buffers that live from one step to the next.

Shape letters: B batch, D data dimensions, H hidden width, J latent dimensions,
K importance samples.

:mod:`vae_numpy.iwae` is the page to read; this module computes the same numbers with less
work, with the building blocks of :mod:`vae_numpy.fast_step` (in-place tanh and ReLU layers,
the fused Bernoulli pass over row blocks, on the calling thread as in ``FastStep``):

- the encoder's arrays are (B, H) buffers and the decoder's (K*B, H) and (K*B, D) buffers of
  a workspace kept per (batch size, K, dtype), written in place, so a step allocates little;
- the Bernoulli likelihood runs as one pass over row blocks of the (K*B, D) logits, computing
  ``rec`` and ``g = sigmoid(l) - x`` together (:func:`vae_numpy.fast_step.bernoulli_rows`
  with ``dnll = 1``, so ``g * 1 = g`` exactly), each block reading its rows of x (B, D)
  directly instead of a (K*B, D) copy of x. The scale ``dnll_kb = dper_b * s_kb`` needs the
  importance weights s, hence every rec, so it is applied afterwards, one more pass over the
  blocks: ``g * dnll`` there and ``dnll * g`` in ``bernoulli_nll_backward`` are the same
  product (multiplication is commutative in IEEE arithmetic);
- no input checks (train checks its data once) and no dtype changes.

Every other array goes through the same floating-point operations, in the same order, as in
``_iwae_step``, so the loss, the gradients and the terms are equal bit for bit (tested for
every likelihood and activation, both reductions, float32 and float64, several K and batch
sizes). Likelihoods other than Bernoulli call the functions of :mod:`vae_numpy.likelihoods`
on a (K*B, D) copy of x, as ``_iwae_step`` does.

The returned ``grads`` and the terms are views of the workspace or fresh arrays; the next call
overwrites the workspace. ``train`` uses them before the next step; anyone who keeps them must
copy.
"""
import numpy as np

from . import fast_step
from .fast_step import LIKELIHOOD_BLOCK_ROWS, FastStep, bernoulli_rows
from .gaussian import (kl_standard_normal, log_standard_normal, reparameterize_backward,
                       reparameterize_forward)
from .iwae import log_mean_exp_and_softmax
from .model import reduce_batch, reduction_weights
from .threads import run_blocks


class IWAEWorkspace:
    r"""The buffers of one (batch size B, K, dtype): encoder (B, H_i), decoder (K*B, H_i),
    logits and their gradient (K*B, D), gradients of the parameters."""

    def __init__(self, cfg, batch, k, dtype, params):
        B, KB, J, D = batch, k * batch, cfg.latent_dim, cfg.input_dim
        self.key = (batch, k, np.dtype(dtype))
        self.enc_a = [np.empty((B, h), dtype) for h in cfg.encoder_hidden]    # (B, H_i)
        self.enc_dh = [np.empty((B, h), dtype) for h in cfg.encoder_hidden]
        self.enc_scratch = [np.empty((B, h), dtype) for h in cfg.encoder_hidden]
        self.enc_mask = [np.empty((B, h), bool) for h in cfg.encoder_hidden]
        self.dec_a = [np.empty((KB, h), dtype) for h in cfg.decoder_hidden]   # (K*B, H_i)
        self.dec_dh = [np.empty((KB, h), dtype) for h in cfg.decoder_hidden]
        self.dec_scratch = [np.empty((KB, h), dtype) for h in cfg.decoder_hidden]
        self.dec_mask = [np.empty((KB, h), bool) for h in cfg.decoder_hidden]
        H_enc = cfg.encoder_hidden[-1] if cfg.encoder_hidden else D
        self.mu, self.logvar = np.empty((B, J), dtype), np.empty((B, J), dtype)
        self.head_dh = np.empty((B, H_enc), dtype)
        self.logits = np.empty((KB, D), dtype)                                # (K*B, D)
        self.dlogits = np.empty((KB, D), dtype)
        self.tmp = np.empty((KB, D), dtype)
        self.rec = np.empty(KB, dtype)                                        # (K*B,)
        self.ones = np.ones(KB, dtype)
        self.grads = {name: np.empty_like(v) for name, v in params.items()}


def sample_row_blocks(k, batch, block_rows=LIKELIHOOD_BLOCK_ROWS):
    r"""Row blocks of the (K*B, D) stack that stay within one sample k: a list of
    ``(rows of the stack, rows of x)`` slice pairs, at most ``block_rows`` rows each."""
    return [(slice(i * batch + s, i * batch + min(s + block_rows, batch)),
             slice(s, min(s + block_rows, batch)))
            for i in range(k) for s in range(0, batch, block_rows)]


class FastIWAEStep(FastStep):
    r"""``step(params, x, eps, beta) -> (loss, grads, terms)``, equal to
    ``_iwae_step(params, x, eps, cfg, reduction)`` bit for bit (beta is ignored: the bound
    takes no KL weight).

    Parameters
    ----------
    cfg : VAEConfig (beta = rec_weight = 1; train checks that).
    reduction : "mean" or "sum"

    The inputs are not checked: x (B, D) and eps (K, B, J) must be C-ordered arrays of the
    params' dtype. terms: ``iw_bound`` (B,), ``log_weights`` (K, B), ``rec`` (B,) (mean over
    k), ``kl`` (B,) (analytic, for reporting), ``mu``, ``logvar`` (B, J).
    """

    def __init__(self, cfg, reduction="mean"):
        super().__init__(cfg, reduction, free_bits=0.0)

    def workspace(self, batch, k, params):
        dtype = params["enc.mu.W"].dtype
        key = (batch, k, np.dtype(dtype))
        ws = self.workspaces.get(key)
        if ws is None:
            ws = self.workspaces[key] = IWAEWorkspace(self.cfg, batch, k, dtype, params)
        return ws

    # --- the likelihood: rec first, the gradient once the weights are known -----------------

    def rec_forward(self, x, outs, k, ws):
        r"""rec (K*B,) = -log p(x|z_kb); for Bernoulli also ``ws.dlogits = sigmoid(l) - x``."""
        if self.cfg.likelihood != "bernoulli":
            x_k = np.broadcast_to(x, (k,) + x.shape).reshape(k * x.shape[0], -1)  # (K*B, D)
            return self.likelihood.nll(x_k, outs, self.cfg.sigma), x_k

        def block(pair):
            rows, x_rows = pair
            bernoulli_rows(x[x_rows], ws.logits[rows], ws.ones[rows], ws.rec[rows],
                           ws.dlogits[rows], ws.tmp[rows])
        run_blocks(block, sample_row_blocks(k, x.shape[0]), threads=fast_step.STEP_THREADS)
        return ws.rec, None

    def rec_backward(self, dnll, x_k, outs, k, ws):
        r"""d (sum_kb dnll_kb * rec_kb) / d outs, each (K*B, D)."""
        if self.cfg.likelihood != "bernoulli":
            return self.likelihood.nll_backward(dnll, x_k, outs, self.cfg.sigma)

        def block(pair):
            rows = pair[0]
            ws.dlogits[rows] *= dnll[rows, None]
        run_blocks(block, sample_row_blocks(k, ws.mu.shape[0]),
                   threads=fast_step.STEP_THREADS)
        return (ws.dlogits,)

    # --- the step ------------------------------------------------------------------------

    def encoder_heads_backward(self, dmu, dlogvar, h, params, grads, ws):
        r"""Gradients of the (mu, logvar) heads; returns d h (B, H) (None without hidden
        layers: the data needs no gradient)."""
        for head, dhead in (("mu", dmu), ("logvar", dlogvar)):
            np.matmul(h.T, dhead, out=grads[f"enc.{head}.W"])
            np.sum(dhead, axis=0, out=grads[f"enc.{head}.b"])
        if not self.cfg.encoder_hidden:
            return None
        dh = np.matmul(dmu, params["enc.mu.W"].T, out=ws.head_dh)           # (B, H)
        dh += dlogvar @ params["enc.logvar.W"].T
        return dh

    def __call__(self, params, x, eps, beta=None):
        cfg = self.cfg
        K, B, J = eps.shape
        ws = self.workspace(B, K, params)
        grads = ws.grads
        tanh = cfg.activation == "tanh"

        # forward: x -> (mu, logvar) -> z_k -> outs_k -> rec_k; log p(z_k); log q(z_k|x)
        h, enc_inputs, enc_caches = self.mlp_forward(x, params, "enc", ws.enc_a)
        mu = np.matmul(h, params["enc.mu.W"], out=ws.mu)                    # (B, J)
        mu += params["enc.mu.b"]
        logvar = np.matmul(h, params["enc.logvar.W"], out=ws.logvar)        # (B, J)
        logvar += params["enc.logvar.b"]
        z, rep_cache = reparameterize_forward(mu, logvar, eps)              # (K, B, J)
        h_dec, dec_inputs, dec_caches = self.mlp_forward(z.reshape(K * B, J), params, "dec",
                                                         ws.dec_a)
        outs = self.decoder_heads_forward(h_dec, params, ws)                # each (K*B, D)
        rec_kb, x_k = self.rec_forward(x, outs, K, ws)                      # (K*B,)
        rec = rec_kb.reshape(K, B)
        log_q = log_standard_normal(eps) - 0.5 * logvar.sum(axis=-1)        # (K, B)
        log_w = -rec + log_standard_normal(z) - log_q                       # (K, B)
        iw_bound, s = log_mean_exp_and_softmax(log_w)                       # (B,), (K, B)
        loss = reduce_batch(-iw_bound, self.reduction)

        # backward: d loss / d log w_kb = -dper_b * s_kb, then each term of log w in reverse
        dper = reduction_weights(B, self.reduction, mu.dtype)               # (B,)
        dlog_w = -dper * s                                                  # (K, B)
        douts = self.rec_backward(-dlog_w.reshape(K * B), x_k, outs, K, ws)
        dh = self.decoder_heads_backward(douts, h_dec, params, ws, grads)   # (K*B, H)
        dz = self.mlp_backward(dh, params, "dec", dec_inputs, dec_caches, ws.dec_dh,
                               ws.dec_scratch if tanh else ws.dec_mask, grads,
                               input_grad=True).reshape(K, B, J)
        dz = dz - dlog_w[..., None] * z                                     # d log p(z)/dz = -z
        dmu, dlogvar = reparameterize_backward(dz, rep_cache)               # (K, B, J) each
        dlogvar_q = 0.5 * dlog_w.sum(axis=0)[:, None]                       # (B, 1)
        dh = self.encoder_heads_backward(dmu.sum(axis=0), dlogvar.sum(axis=0) + dlogvar_q,
                                         h, params, grads, ws)
        if dh is not None:
            self.mlp_backward(dh, params, "enc", enc_inputs, enc_caches, ws.enc_dh,
                              ws.enc_scratch if tanh else ws.enc_mask, grads,
                              input_grad=False)

        terms = {"iw_bound": iw_bound, "log_weights": log_w, "rec": rec.mean(axis=0),
                 "kl": kl_standard_normal(mu, logvar), "mu": mu, "logvar": logvar}
        return loss, {name: grads[name] for name in params}, terms


def make_fast_iwae_step(cfg, reduction="mean"):
    r"""The IWAE training step for ``cfg``: a :class:`FastIWAEStep` (see the module docstring)."""
    return FastIWAEStep(cfg, reduction)
