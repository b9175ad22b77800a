r"""The importance-weighted bound L_K (Burda et al. 2016) as a training objective, with its
gradient written out by hand.

Shape letters: B batch, D data dimensions, J latent dimensions, K importance samples.

    L_K(x) = log (1/K) sum_k w_k = logsumexp_k(log w_k) - log K
    log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),   z_k = mu(x) + std(x) * eps_k
    loss = reduce_b(-L_K(x_b))                            (mean over the batch, or sum)

The gradient of L_K is a softmax-weighted sum of the gradients of the K log-weights,

    grad L_K = sum_k s_k * grad log w_k,   s_k = w_k / sum_k' w_k' = softmax_k(log w)_k,

each ``grad log w_k`` taken along the same reparameterization path as the VAE's gradient.
With K = 1, s = 1 and L_1 = log w_1 is the one-sample ELBO with a Monte Carlo KL,
``-rec + log p(z) - log q(z|x)`` (the VAE objective of :func:`vae_numpy.model.loss_and_grads`
uses the analytic KL instead; the two agree in expectation, not sample by sample).

The noise has the sample axis first, eps (K, B, J), as in
:func:`vae_numpy.evaluate.log_importance_weights`, which computes the same ``log w`` without a
gradient. The decoder runs once on the (K*B, J) stack of every z, not K times.
"""
import math

import numpy as np

from .gaussian import (kl_standard_normal, log_standard_normal, reparameterize_backward,
                       reparameterize_forward)
from .likelihoods import get_likelihood
from .model import (check_batch, decoder_backward, decoder_forward, encoder_backward,
                    encoder_forward, params_dtype, reduce_batch, reduction_weights)


def log_mean_exp_and_softmax(log_w):
    r"""``logsumexp_k(log w_k) - log K`` and ``softmax_k(log w)``, along axis 0, stably.

    With ``m = max_k log w_k`` and ``e_k = exp(log w_k - m)`` (each in (0, 1], the largest 1):
    ``L = m + log(sum_k e_k) - log K`` and ``s_k = e_k / sum_k e_k``; one exp serves both, and
    neither overflows nor underflows to log(0) whatever the scale of log w.

    Parameters
    ----------
    log_w : (K, B) array

    Returns
    -------
    L : (B,) array; s : (K, B) array, each column summing to 1.
    """
    m = log_w.max(axis=0)                    # (B,)
    e = np.exp(log_w - m)                    # (K, B)
    total = e.sum(axis=0)                    # (B,), >= 1
    L = m + np.log(total) - log_w.dtype.type(math.log(log_w.shape[0]))
    return L, e / total


def _iwae_step(params, x, eps, cfg, reduction="mean", estimator="iwae"):
    r""":func:`iwae_loss_and_grads` without the input checks (train checks its data once).

    x (B, D) and eps (K, B, J) must already be arrays of the params' dtype; cfg.beta and
    cfg.rec_weight are not looked at (the public function rejects values other than 1).
    ``estimator``: "iwae", the gradient of L_K (the only one written out so far).
    """
    if estimator != "iwae":
        raise ValueError(f"estimator must be 'iwae' (the gradient of L_K), got {estimator!r}")
    K, B, J = eps.shape
    likelihood = get_likelihood(cfg.likelihood)

    # forward: x -> (mu, logvar) -> z_k -> outs_k -> log p(x|z_k); log p(z_k); log q(z_k|x)
    (mu, logvar), enc_cache = encoder_forward(params, x, cfg)        # (B, J) each
    z, rep_cache = reparameterize_forward(mu, logvar, eps)           # (K, B, J)
    outs, dec_cache = decoder_forward(params, z.reshape(K * B, J), cfg)  # each (K*B, D)
    x_k = np.broadcast_to(x, (K,) + x.shape).reshape(K * B, -1)      # (K*B, D), x per sample
    rec = likelihood.nll(x_k, outs, cfg.sigma).reshape(K, B)         # (K, B), -log p(x|z_k)
    log_q = log_standard_normal(eps) - 0.5 * logvar.sum(axis=-1)     # (K, B), no z in it
    log_w = -rec + log_standard_normal(z) - log_q                    # (K, B)
    iw_bound, s = log_mean_exp_and_softmax(log_w)                    # (B,), (K, B)
    loss = reduce_batch(-iw_bound, reduction)

    # backward: d loss / d log w_kb = -dper_b * s_kb, then each term of log w in reverse
    grads = {}
    dper = reduction_weights(B, reduction, mu.dtype)                 # (B,) d loss / d(-L_b)
    dlog_w = -dper * s                                               # (K, B)
    douts = likelihood.nll_backward(-dlog_w.reshape(K * B), x_k, outs, cfg.sigma)
    dz = decoder_backward(douts, dec_cache, cfg, grads).reshape(K, B, J)
    dz = dz - dlog_w[..., None] * z                                  # d log p(z)/dz = -z
    dmu, dlogvar = reparameterize_backward(dz, rep_cache)            # (K, B, J) each
    dlogvar_q = 0.5 * dlog_w.sum(axis=0)[:, None]                    # d(-log q)/dlogvar = 1/2
    encoder_backward(dmu.sum(axis=0), dlogvar.sum(axis=0) + dlogvar_q, enc_cache, cfg, grads)

    terms = {"iw_bound": iw_bound, "log_weights": log_w, "rec": rec.mean(axis=0),
             "kl": kl_standard_normal(mu, logvar), "mu": mu, "logvar": logvar}
    return loss, {k: grads[k] for k in params}, terms


def iwae_loss_and_grads(params, x, eps, cfg, reduction="mean"):
    r"""The negative importance-weighted bound of a batch and its gradient for every parameter.

    ``loss = reduce_b(-L_K(x_b))`` with ``L_K(x) = logsumexp_k(log w_k) - log K``,
    ``log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)``, ``z_k = mu + exp(logvar / 2) * eps_k``
    (Burda et al. 2016, eq. 8), reduce = mean over the batch (default) or sum.
    ``E[L_1] = ELBO <= E[L_K] <= E[L_{K+1}] <= log p(x)``.

    Gradient: ``d L_K = sum_k s_k * d log w_k`` with ``s = softmax_k(log w)`` (the normalized
    importance weights), each ``d log w_k`` backpropagated by hand through the decoder (run
    once on all K*B samples), the prior term (``d log p(z)/dz = -z``) and the reparameterization
    ``z = mu + std * eps`` to the encoder, as in :func:`vae_numpy.model.loss_and_grads`.

    What changes for ``log q(z_k|x)`` under the reparameterization: at ``z = mu + std * eps``,
    ``(z - mu) / std = eps``, so

        log q(z_k|x) = log N(z_k; mu, diag(exp(logvar))) = log N(eps_k; 0, I) - 0.5 sum_j logvar_j.

    As a function of (mu, logvar) at fixed eps it depends on logvar directly and on eps only:
    there is no path through z (its derivative w.r.t. mu is 0, w.r.t. logvar_j it is -1/2).
    This is the same function of the parameters as the density evaluated at z, so its
    gradient is the same total derivative, computed without the cancellation in ``z - mu``.
    The -log q term thus contributes ``+1/2 * sum_k s_k = 1/2`` to d L_K / d logvar_j per
    example, and the decoder and prior terms reach mu and logvar through z.

    beta, free bits and rec_weight do not apply: the bound is trained as it is. A config with
    ``beta != 1`` or ``rec_weight != 1`` is refused (ValueError) rather than silently ignored.

    Parameters
    ----------
    params : dict name -> array, as from :func:`vae_numpy.init_params`.
    x : (B, D) data, same dtype as params.
    eps : (K, B, J) standard normal noise, the sample axis first, same dtype as params.
    cfg : VAEConfig (any likelihood and activation), beta = rec_weight = 1.
    reduction : "mean" or "sum" over the batch.

    Returns
    -------
    loss : scalar of the params' dtype, ``reduce_b(-iw_bound_b)``.
    grads : dict with exactly the keys of params, d loss / d param.
    terms : dict with per-example ``iw_bound`` (B,) (= L_K), ``log_weights`` (K, B),
        ``rec`` (B,) (``-mean_k log p(x|z_k)``, for reporting), the analytic ``kl`` (B,)
        (for reporting: not part of the loss), and ``mu``, ``logvar`` (B, J).
    """
    x, eps = check_iwae_inputs(params, x, eps, cfg)
    return _iwae_step(params, x, eps, cfg, reduction)


def check_iwae_inputs(params, x, eps, cfg):
    r"""Check params against cfg, x (B, D) and eps (K, B, J) in the params' dtype, and that
    cfg has beta = rec_weight = 1; return x, eps as arrays (no copy, no cast)."""
    if cfg.beta != 1 or cfg.rec_weight != 1:
        raise ValueError(f"the IWAE bound takes no KL weight: cfg.beta is {cfg.beta!r} and "
                         f"cfg.rec_weight is {cfg.rec_weight!r}, both must be 1 (build the "
                         "config with the defaults, e.g. dataclasses.replace(cfg, beta=1.0, "
                         "rec_weight=1.0))")
    dtype = params_dtype(params, cfg)
    x = check_batch("x", x, dtype, cfg.input_dim, likelihood=cfg.likelihood)
    if len(x) == 0:
        raise ValueError(f"x has shape {x.shape}: an empty batch (B = 0) has no loss; "
                         "pass at least one example")
    eps = np.asarray(eps)
    want = (x.shape[0], cfg.latent_dim)
    if eps.ndim != 3 or eps.shape[1:] != want or eps.shape[0] < 1:
        hint = (f"; for one sample per example use eps[None] of shape (1, {want[0]}, {want[1]})"
                if eps.shape == want else "")
        raise ValueError(f"eps has shape {eps.shape}, expected (K, {want[0]}, {want[1]}) with "
                         f"the sample axis first{hint}")
    if eps.dtype != dtype:
        raise TypeError(f"eps has dtype {eps.dtype} but the parameters are {dtype}; convert "
                        f"with eps.astype(np.{dtype}) (vae_numpy never changes dtype silently)")
    if not np.all(np.isfinite(eps)):
        raise ValueError(f"eps contains NaN or inf ({np.sum(~np.isfinite(eps))} entries)")
    return x, eps
