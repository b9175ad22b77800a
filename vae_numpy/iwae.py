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
gradient. The decoder runs once on the (K*B, J) stack of every z, not K times; the
likelihood's elementwise passes run on blocks of it that fit in the cache (:func:`blocks`),
which changes no number (each row is computed on its own).

Three estimators of the encoder's gradient (``estimator="iwae" | "stl" | "dreg"``, derived in
:func:`iwae_loss_and_grads`): the exact gradient of L_K, sticking the landing (Roeder, Wu &
Duvenaud 2017) and doubly reparameterized (Tucker, Lawson, Gu & Maddison 2019). They differ in
what they do with the score term of log q, the derivative of the density with respect to q's
parameters at a fixed sample. Not to be confused with :mod:`vae_numpy.estimators`, which
compares the pathwise and score-function estimators of the gradient of an expectation
``E_q[f(z)]`` with a given f: the same two ideas (through the sample, through the density), used
there to estimate a different thing. The loss and the decoder's gradient are L_K's for all
three. The VAE objective with the analytic KL (:func:`vae_numpy.model.loss_and_grads`) has no
sticking-the-landing variant: its KL is a closed form with no sample, so there is no score term
to leave out.
"""
import math

import numpy as np

from .files.checks import check_logvar
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

    Derivation: the gradient of a log-mean-exp is the softmax. With ``a_k = log w_k``,

        L = log (1/K) sum_k exp(a_k)
        dL/da_k = (1/K) exp(a_k) / ((1/K) sum_k' exp(a_k')) = w_k / sum_k' w_k' = s_k,

    so by the chain rule ``d L / d theta = sum_k s_k * d log w_k / d theta``: the gradient of
    L_K is a weighted average of the K one-sample gradients ``d log w_k``, with weights
    ``s_k >= 0`` that sum to 1, each sample's share of the total importance weight. A sample
    that explains x well (large w_k) dominates; one that explains it badly contributes almost
    nothing. Equal weights, ``s_k = 1/K``, would give the gradient of the average of the K
    one-sample ELBOs (a VAE with K samples), which does not tighten with K. Shifting every
    ``a_k`` by m changes neither L (m is added back) nor s (``exp(-m)`` cancels in the ratio).

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


ESTIMATORS = ("iwae", "stl", "dreg")


def check_estimator(estimator):
    r"""Raise ValueError unless ``estimator`` is one of :data:`ESTIMATORS`."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS} (the IWAE gradient, sticking "
                         f"the landing, doubly reparameterized), got {estimator!r}")


def stopped_q_backward(dz, dlog_w, s, rep_cache, estimator):
    r"""STL and DReG: d loss / d (mu, logvar) (B, J) along the samples' paths only.

    ``log q`` is ``log N(z_k; stop(mu), stop(logvar))``, differentiated through
    ``z_k = mu + std * eps_k`` alone: ``d(-log q)/dz_k = (z_k - mu) / std**2 = eps_k / std``.
    Left out: the score term, ``d(-log q)/dmu = -eps_k / std`` and
    ``d(-log q)/dlogvar = -(eps_k**2 - 1) / 2`` at fixed z_k (the IWAE gradient keeps it).
    DReG weighs each sample's path by ``s_k**2`` instead of ``s_k``: one more factor ``s_k``.

    Parameters
    ----------
    dz : (K, B, J) d loss / d z_k through the decoder and the prior (weights s_k).
    dlog_w : (K, B) d loss / d log w_k; s : (K, B) softmax_k(log w).
    rep_cache : (std (B, J), eps (K, B, J)) from the reparameterization.
    """
    std, eps = rep_cache
    dz = dz + dlog_w[..., None] * (eps / std)            # d(-log q(z; stop(mu), stop(lv)))/dz
    if estimator == "dreg":
        dz = dz * s[..., None]                           # s_k * s_k: the weights squared
    dmu, dlogvar = reparameterize_backward(dz, rep_cache)  # (K, B, J) each
    return dmu.sum(axis=0), dlogvar.sum(axis=0)


def _iwae_step(params, x, eps, cfg, reduction="mean", estimator="iwae"):
    r""":func:`iwae_loss_and_grads` without the input checks (train checks its data once).

    x (B, D) and eps (K, B, J) must already be arrays of the params' dtype; cfg.beta and
    cfg.rec_weight are not looked at (the public function rejects values other than 1). The
    encoder's logvar is checked (one max over (B, J)), as in every training step.
    """
    check_estimator(estimator)
    K, B, J = eps.shape
    likelihood = get_likelihood(cfg.likelihood)

    # forward: x -> (mu, logvar) -> z_k -> outs_k -> log p(x|z_k); log p(z_k); log q(z_k|x)
    (mu, logvar), enc_cache = encoder_forward(params, x, cfg)        # (B, J) each
    check_logvar(logvar)
    z, rep_cache = reparameterize_forward(mu, logvar, eps)           # (K, B, J)
    outs, dec_cache = decoder_forward(params, z.reshape(K * B, J), cfg)  # each (K*B, D)
    outs = tuple(out.reshape(K, B, -1) for out in outs)              # each (K, B, D)
    rec = nll_in_blocks(likelihood, x, outs, cfg.sigma)              # (K, B), -log p(x|z_k)
    log_q = log_standard_normal(eps) - 0.5 * logvar.sum(axis=-1)     # (K, B), no z in it
    log_w = -rec + log_standard_normal(z) - log_q                    # (K, B)
    iw_bound, s = log_mean_exp_and_softmax(log_w)                    # (B,), (K, B)
    loss = reduce_batch(-iw_bound, reduction)

    # backward: d loss / d log w_kb = -dper_b * s_kb, then each term of log w in reverse
    grads = {}
    dper = reduction_weights(B, reduction, mu.dtype)                 # (B,) d loss / d(-L_b)
    dlog_w = -dper * s                                               # (K, B)
    douts = nll_backward_in_blocks(likelihood, -dlog_w, x, outs, cfg.sigma)  # each (K, B, D)
    douts = tuple(dout.reshape(K * B, -1) for dout in douts)         # each (K*B, D)
    dz = decoder_backward(douts, dec_cache, cfg, grads).reshape(K, B, J)
    dz = dz - dlog_w[..., None] * z                                  # d log p(z)/dz = -z
    if estimator == "iwae":
        dmu, dlogvar = reparameterize_backward(dz, rep_cache)        # (K, B, J) each
        dlogvar_q = 0.5 * dlog_w.sum(axis=0)[:, None]                # d(-log q)/dlogvar = 1/2
        dmu, dlogvar = dmu.sum(axis=0), dlogvar.sum(axis=0) + dlogvar_q
    else:
        dmu, dlogvar = stopped_q_backward(dz, dlog_w, s, rep_cache, estimator)
    encoder_backward(dmu, dlogvar, enc_cache, cfg, grads)

    terms = {"iw_bound": iw_bound, "log_weights": log_w, "rec": rec.mean(axis=0),
             "kl": kl_standard_normal(mu, logvar), "mu": mu, "logvar": logvar}
    return loss, {k: grads[k] for k in params}, terms


def iwae_loss_and_grads(params, x, eps, cfg, reduction="mean", estimator="iwae"):
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

    **Estimators of the encoder's gradient.** Written as the density at the sample,
    ``log q(z_k; mu, logvar)`` changes with the encoder's output in two ways:

        path  (through z_k, q's parameters held):  d log q / dz_k = -(z_k - mu) / std**2
              = -eps_k / std, giving -eps_k / std to d/dmu and -eps_k**2 / 2 to d/dlogvar
        score (q's parameters, z_k held):  +eps_k / std to d/dmu, +(eps_k**2 - 1) / 2 to
              d/dlogvar

    Their sum is the eps form's 0 and -1/2. The score term has mean 0 under q, but not once it
    is multiplied by s_k, which depends on z_k. With ``log v_k = log p(x|z_k) + log p(z_k)
    - log N(z_k; stop(mu), stop(logvar))`` (the same value as log w_k; stop(.) is a constant
    copy) and ``path_k = d log v_k / dz_k * dz_k / d(mu, logvar)``:

    - ``"iwae"``: ``sum_k s_k (path_k - score_k)``, the exact gradient of L_K.
    - ``"stl"``, sticking the landing (Roeder, Wu & Duvenaud 2017): ``sum_k s_k path_k``, the
      score term left out. It is the exact gradient, for every parameter, of the surrogate
      ``F_STL = -reduce_b sum_k stop(s_kb) log v_kb``. At K = 1 it is the gradient of the
      one-sample Monte Carlo ELBO with the entropy's score term dropped, unbiased; for K > 1 it
      is biased by ``E[sum_k s_k score_k] != 0``. It is exactly 0 for every draw when q is the
      true posterior (log v_k = log p(x) for every z_k), where the IWAE gradient is 0 only in
      expectation.
    - ``"dreg"``, doubly reparameterized (Tucker, Lawson, Gu & Maddison 2019):
      ``sum_k s_k**2 path_k``. Unbiased for the IWAE gradient: the score-function identity
      ``E_q[f(z) d log q(z)/d phi] = E[df/dz * dz/d phi]`` (score function = pathwise in
      expectation, :mod:`vae_numpy.estimators`) with ``f = s_k`` and ``ds_k/d log w_k =
      s_k (1 - s_k)`` gives ``E[s_k score_k] = E[s_k (1 - s_k) path_k]``, so
      ``E[sum_k s_k (path_k - score_k)] = E[sum_k s_k**2 path_k]``. It is the exact gradient of
      ``F_DReG = -reduce_b sum_k [stop(s_kb**2) log v_kb(encoder; stop(decoder))
      + stop(s_kb) log w_kb(stop(encoder); decoder)]``: the first term reaches the encoder, the
      second the decoder. At K = 1 (s = 1) it equals STL bit for bit.

    For all three the loss value, the terms and the decoder's gradient are L_K's; only the
    encoder's gradient differs. The analytic-KL VAE objective has no STL variant (its KL has no
    sample, so no score term).

    beta, free bits and rec_weight do not apply: the bound is trained as it is. A config with
    ``beta != 1`` or ``rec_weight != 1`` is refused (ValueError) rather than silently ignored.

    Parameters
    ----------
    params : dict name -> array, as from :func:`vae_numpy.init_params`.
    x : (B, D) data, same dtype as params.
    eps : (K, B, J) standard normal noise, the sample axis first, same dtype as params.
    cfg : VAEConfig (any likelihood and activation), beta = rec_weight = 1.
    reduction : "mean" or "sum" over the batch.
    estimator : "iwae" (default), "stl" or "dreg": the encoder's gradient (see above).

    Returns
    -------
    loss : scalar of the params' dtype, ``reduce_b(-iw_bound_b)``.
    grads : dict with exactly the keys of params, d loss / d param (the encoder's entries
        from the chosen estimator).
    terms : dict with per-example ``iw_bound`` (B,) (= L_K), ``log_weights`` (K, B),
        ``rec`` (B,) (``-mean_k log p(x|z_k)``, for reporting), the analytic ``kl`` (B,)
        (for reporting: not part of the loss), and ``mu``, ``logvar`` (B, J).

    Raises
    ------
    FloatingPointError when the encoder's logvar exceeds
    :data:`vae_numpy.checks.LOGVAR_MAX` (a diverged encoder), as in ``loss_and_grads``.
    """
    check_estimator(estimator)
    x, eps = check_iwae_inputs(params, x, eps, cfg)
    return _iwae_step(params, x, eps, cfg, reduction, estimator)


# --- the likelihood on cache-sized blocks of the (K, B, D) stack ------------------------------

# Bytes of one block of the (K, B, D) decoder outputs: the likelihood's elementwise passes
# (softplus, the sigmoid, the products) run on a block while it is in a 2 MB L2 cache, instead
# of streaming the whole (K, B, D) stack through memory once per pass. 640 kB holds two
# samples of a 100-image batch of 784 float32 pixels. Measured on the IW log-likelihood of 100
# images at K = 1000 (784-200-200-50, float32, benchmarks/readable_vs_copy.py): 256 kB blocks
# were 18% slower than 512 kB (Python's overhead per block), 640 kB as fast or a few percent
# faster, 1 MB up to 47% slower (temporaries that large were mapped fresh from the system on
# every block unless the C library's allocator had grown its thresholds).
BLOCK_BYTES = 640 * 1024


def blocks(n_samples, batch, row_bytes):
    r"""Blocks of a (K, B, D) stack of rows of ``row_bytes`` bytes each: a list of
    (samples, examples) slice pairs of about BLOCK_BYTES (at least one row).

    Whole samples while a sample's B rows fit (several per block), else one sample split
    over the examples. Per-example results do not depend on the blocks: each row is
    computed on its own.
    """
    rows = max(1, BLOCK_BYTES // max(row_bytes, 1))
    if rows >= batch:
        step = rows // batch
        return [(slice(k, min(k + step, n_samples)), slice(0, batch))
                for k in range(0, n_samples, step)]
    return [(slice(k, k + 1), slice(b, min(b + rows, batch)))
            for k in range(n_samples) for b in range(0, batch, rows)]


def block(outs, ks, bs):
    r"""The samples ``ks`` and examples ``bs`` of each decoder output: (s, b, D) views."""
    return tuple(out[ks, bs] for out in outs)


def nll_in_blocks(likelihood, x, outs, sigma):
    r"""``rec_kb = -log p(x_b | z_kb)`` (K, B) for decoder outputs each (K, B, D), x (B, D),
    the likelihood's ``nll`` run on cache-sized :func:`blocks`."""
    K, B, D = outs[0].shape
    rec = np.empty((K, B), outs[0].dtype)
    for ks, bs in blocks(K, B, outs[0][0, 0].nbytes):
        rec[ks, bs] = likelihood.nll(x[bs], block(outs, ks, bs), sigma)
    return rec


def nll_backward_in_blocks(likelihood, dnll, x, outs, sigma):
    r"""d (sum_kb dnll_kb * rec_kb) / d outs: a tuple of (K, B, D) arrays, one per decoder
    output, the likelihood's ``nll_backward`` run on cache-sized :func:`blocks`."""
    K, B, D = outs[0].shape
    douts = tuple(np.empty_like(out) for out in outs)
    for ks, bs in blocks(K, B, outs[0][0, 0].nbytes):
        grads = likelihood.nll_backward(dnll[ks, bs], x[bs], block(outs, ks, bs), sigma)
        for dout, d in zip(douts, grads):
            dout[ks, bs] = d
    return douts


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
