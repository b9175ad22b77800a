r"""Evaluating a trained VAE: log p(x) estimates, the ELBO, and posterior-collapse diagnostics.

Shape letters: N examples, B examples in a chunk, D data dimensions, J latent dimensions,
K importance samples per example, S samples in a chunk.

The ELBO is a lower bound on log p(x); the importance-weighted bound (Burda et al. 2016)

    IW_K(x) = log (1/K) sum_k w_k,   w_k = p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)

is a tighter one: E[IW_1] = ELBO <= E[IW_K] <= E[IW_{K+1}] <= log p(x), and IW_K -> log p(x)
as K -> infinity. ``-IW_K`` with a large K is the number papers report as the test NLL. It is
an upper bound on -log p(x) in expectation, with a bias that shrinks with K but is not 0 (on
the MNIST reference model -IW_1000 is 0.35 +- 0.04 nats above -IW_5000 on the same 500 images,
docs/math.md, section 10). Its standard error over examples says how the mean over these images
differs from the data distribution's, not how far it is above -log p(x): measure the bias on
the same images against a larger K (same rng seed: the samples are nested).

Diagnostics of how much the latent code is used:

- rate ``KL(q(z|x) || p(z))`` and distortion ``rec = -E_q[log p(x|z)]``, side by side
  (their sum is -ELBO); the KL split per latent dimension;
- active units (Burda et al. 2016): dimension j is active when ``Var_x(E_q[z_j | x]) > 0.01``;
- the mutual information I(x; z) under q (Hoffman & Johnson 2016).

Everything is in nats per example; :func:`bits_per_dim` converts.
"""
import math
import time

import numpy as np
from scipy.special import logsumexp

from . import gaussian
from .commands.progress import Progress
from .files.checks import check_number
from .gaussian import log_normal_diag, log_standard_normal, std_from_logvar
from .iwae import blocks
from .likelihoods import get_likelihood
from .model import check_batch, decoder_forward, encode, loss_terms, params_dtype

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016, Sec. 5.2
DEFAULT_BATCH_SIZE = 100      # examples per chunk
DEFAULT_CHUNK_SIZE = 50       # importance samples per chunk
# Floats per (B, N, J) temporary of mutual_information (8 MB in float64): at most this many
# rows i at a time, whatever N is (at N = 10,000, J = 20 the former 200 rows were 320 MB each).
MI_CHUNK_ENTRIES = 2**20
MI_PROGRESS_AFTER = 1.0  # s: a mutual information computed sooner shows no progress
# Seed of the noise eps of the held-out ELBO (evaluate_elbo, what train reports per epoch).
# Not 0, the seed of data.binarize_test_set, so the test images' Bernoulli draws and the noise
# never come from the same random stream.
EVAL_NOISE_SEED = 1
# Rows per forward pass of evaluate_elbo: bounds memory, does not change the numbers.
EVAL_CHUNK = 1000


def check_data(params, x, cfg, support=True):
    r"""The entry check of every evaluation function: params fit cfg, x is a non-empty (N, D)
    finite array of the params' dtype, in the likelihood's support (unless ``support=False``,
    for functions that only encode). Returns ``(dtype, x)``."""
    dtype = params_dtype(params, cfg)
    x = check_batch("x", x, dtype, cfg.input_dim,
                    likelihood=cfg.likelihood if support else None)
    if len(x) == 0:
        raise ValueError(f"x has shape {x.shape}: no examples to evaluate (N = 0)")
    return dtype, x


def bits_per_dim(nats, input_dim):
    r"""Convert nats per example to bits per data dimension: ``nats / (D ln 2)``.

    What the number means depends on the likelihood (:func:`bits_per_dim_note`): on binarized
    data it is bits per binary pixel, not comparable with the bits/dim of 8-bit images; for the
    Gaussian and continuous-Bernoulli likelihoods it is a density, which can be negative.
    """
    return nats / (input_dim * math.log(2))


def bits_per_dim_note(likelihood):
    r"""One sentence saying what bits/dim means for a likelihood, to print beside the number."""
    if likelihood == "bernoulli":
        return ("bits per binary pixel of binarized data: not comparable with the bits/dim of "
                "models of 8-bit images")
    return ("a density on continuous pixels: it depends on the scale of x, can be negative, and "
            "is comparable with 8-bit bits/dim only after a 256-level discretization")


# --- importance-weighted log-likelihood ---------------------------------------------------

def _log_weights(params, x, mu, logvar, eps, cfg):
    r"""``log w = log p(x|z) + log p(z) - log q(z|x)`` for eps (S, B, J); returns (S, B).

    ``log q(z|x)`` is evaluated from eps as ``log N(eps; 0, I) - 0.5 * sum_j logvar_j``
    (= ``-0.5 * sum_j (log(2 pi) + logvar_j + eps_j**2)``), which is
    ``log N(z; mu, diag(exp(logvar)))`` at ``z = mu + std * eps`` because ``(z - mu) / std = eps``
    (exact, and free of the cancellation in ``z - mu`` when std is small).

    The decoder and the likelihood run on blocks of (samples, examples) whose outputs fit in
    the cache (:func:`vae_numpy.iwae.blocks`, about 0.6 MB each); each row is computed on its
    own, so the blocks do not change the numbers. Inputs are not checked (the callers did).
    """
    S, B, J = eps.shape
    D = cfg.input_dim
    likelihood = get_likelihood(cfg.likelihood)
    z = mu + std_from_logvar(logvar) * eps  # (S, B, J)
    log_px_z = np.empty((S, B), eps.dtype)  # (S, B)
    for ks, bs in blocks(S, B, D * eps.dtype.itemsize):
        z_block = z[ks, bs]  # (s, b, J)
        outs, _ = decoder_forward(params, z_block.reshape(-1, J), cfg)  # each (s*b, D)
        outs = tuple(out.reshape(z_block.shape[:2] + (D,)) for out in outs)  # each (s, b, D)
        log_px_z[ks, bs] = -likelihood.nll(x[bs], outs, cfg.sigma)
    log_q = log_standard_normal(eps) - 0.5 * np.sum(logvar, axis=-1)  # (S, B)
    return log_px_z + log_standard_normal(z) - log_q


def log_importance_weights(params, x, eps, cfg):
    r"""Log importance weights ``log p(x|z_k) + log p(z_k) - log q(z_k|x)`` for given noise.

    ``z_k = mu(x) + exp(logvar(x) / 2) * eps_k`` (the reparameterization of
    :func:`vae_numpy.gaussian.reparameterize_forward`).

    Parameters
    ----------
    params, cfg : the model
    x : (B, D) data
    eps : (K, B, J) standard normal noise, the params' dtype

    Returns
    -------
    (K, B) array of log-weights in nats; ``logsumexp(., axis=0) - log K`` is IW_K.
    """
    dtype, x = check_data(params, x, cfg)
    eps = np.asarray(eps)
    if eps.ndim != 3 or eps.shape[1:] != (x.shape[0], cfg.latent_dim) or eps.dtype != dtype:
        raise ValueError(f"eps has shape {eps.shape} and dtype {eps.dtype}; expected "
                         f"(K, {x.shape[0]}, {cfg.latent_dim}) of {dtype}")
    mu, logvar = encode(params, x, cfg)
    return _log_weights(params, x, mu, logvar, eps, cfg)


def _example_rng(seed, index):
    r"""The generator of example number ``index``'s importance-sampling noise."""
    return np.random.default_rng([seed, index])


def example_noise(seed, index, n_samples, latent_dim, dtype):
    r"""The importance-sampling noise of example number ``index``: (S, J) from its own stream.

    Example n draws its K x J noise from ``numpy.random.default_rng([seed, n])``, in sample
    order; a generator draws the same numbers whether it is asked for K rows at once or in
    chunks, so an example's estimate depends only on (seed, n, K), not on chunk sizes.
    :func:`iw_log_likelihood` draws from the same generators, chunk by chunk.
    """
    return _example_rng(seed, index).standard_normal((n_samples, latent_dim), dtype=dtype)


def iw_log_likelihood(params, x, cfg, k, rng, batch_size=DEFAULT_BATCH_SIZE,
                      chunk_size=DEFAULT_CHUNK_SIZE, progress=True):
    r"""Importance-weighted estimate of log p(x) per example (Burda et al. 2016, eq. 8).

    ``IW_K(x) = logsumexp_k(log w_k) - log K``, the log-mean-exp over the K samples of one
    example only, with ``log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)`` and
    ``z_k = mu + std * eps_k``. A lower bound on log p(x) in expectation, tighter as K grows.

    Derivation, a lower bound: with z ~ q(z|x), ``w = p(x, z) / q(z|x)`` has
    ``E_q[w] = int p(x, z) dz = p(x)``, so the mean of K weights, ``M_K = (1/K) sum_k w_k``, has
    mean p(x); the log is concave, and Jensen's inequality gives
    ``E[IW_K] = E[log M_K] <= log E[M_K] = log p(x)``.

    Rising with K: ``M_{K+1}`` is the average of the K + 1 means of K weights that leave one
    sample out, ``M_{K+1} = (1/(K+1)) sum_i M_K^(-i)``. By concavity
    ``log M_{K+1} >= (1/(K+1)) sum_i log M_K^(-i)``, and each ``log M_K^(-i)`` has expectation
    ``E[IW_K]`` (the samples are i.i.d.), so ``E[IW_{K+1}] >= E[IW_K]``, from
    ``E[IW_1] = ELBO`` (with a Monte Carlo KL) upwards (Burda et al. 2016, Theorem 1).

    The bias of the log of a mean: ``M_K`` has mean p(x) and variance ``Var_q(w) / K``.
    Expanding the log around p(x),

        log M_K = log p(x) + (M_K - p(x)) / p(x) - (M_K - p(x))**2 / (2 p(x)**2) + ...,

    and taking expectations (the linear term has mean 0),
    ``log p(x) - E[IW_K] = Var_q(w) / (2 K p(x)**2) + o(1/K)``: the bias falls like 1/K when
    Var_q(w) is finite (a rigorous o(1/K) remainder needs somewhat more than that; Nowozin 2018
    gives the expansion in the central moments of w), slower when the weights' tail is heavy.
    Convergence itself needs less: ``IW_K -> log p(x)`` almost surely needs only
    ``E_q[w] = p(x)`` (the strong law of large numbers), and ``E[IW_K] -> log p(x)`` holds, for
    example, when w is bounded (Burda et al. 2016, Theorem 1).

    Randomness: one integer ``seed = rng.integers(2**63)`` is drawn from ``rng``; example n
    (its row in x) then uses ``default_rng([seed, n])`` (see :func:`example_noise`), so the
    result does not depend on ``batch_size`` or ``chunk_size`` (up to float round-off in the
    matrix products).

    Memory: the decoder sees ``chunk_size * batch_size`` latent vectors at a time, so the
    peak is a few arrays of ``chunk_size x batch_size x max(D, H)`` floats (defaults 50 x 100 x
    784: 31 MB per float64 array) plus the ``K x batch_size`` float64 log-weights (K = 5000:
    4 MB), whatever N and K are.

    Parameters
    ----------
    params, cfg : the model
    x : (N, D) data in the params' dtype
    k : K >= 1, importance samples per example
    rng : numpy.random.Generator
    batch_size : examples per chunk
    chunk_size : importance samples per chunk
    progress : print a progress line on stderr

    Returns
    -------
    (N,) float64 array of log p(x) estimates in nats.
    """
    dtype, x = check_data(params, x, cfg)
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer number of samples, got {k!r}")
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"batch_size and chunk_size must be >= 1, got {batch_size}, "
                         f"{chunk_size}")
    k, N, J = int(k), x.shape[0], cfg.latent_dim
    seed = int(rng.integers(2**63))
    out = np.empty(N)
    start_time = time.perf_counter()
    with Progress(enabled=progress) as meter:  # an error ends its open line first
        for start in range(0, N, batch_size):
            xb = x[start:start + batch_size]  # (B, D)
            mu, logvar = encode(params, xb, cfg)
            generators = [_example_rng(seed, n) for n in range(start, start + len(xb))]
            log_w = np.empty((k, len(xb)))  # (K, B), float64 whatever the model's dtype
            for s in range(0, k, chunk_size):
                S = min(chunk_size, k - s)
                eps = np.stack([g.standard_normal((S, J), dtype=dtype) for g in generators],
                               axis=1)
                log_w[s:s + S] = _log_weights(params, xb, mu, logvar, eps, cfg)
            out[start:start + len(xb)] = logsumexp(log_w, axis=0) - math.log(k)
            done = start + len(xb)
            meter.status(f"IW log-likelihood, K = {k}: {done}/{N} examples, "
                         f"{time.perf_counter() - start_time:.1f} s, "
                         f"mean -log p(x) so far {-out[:done].mean():.3f} nats")
        meter.line(f"IW log-likelihood, K = {k}: {N} examples in "
                   f"{time.perf_counter() - start_time:.1f} s, mean -log p(x) "
                   f"{-out.mean():.3f} nats")
    return out


# --- the ELBO -------------------------------------------------------------------------------
#
# One computation, elbo_terms (per-example rec and kl); the other three summarize it:
#   elbo              the per-example ELBO, -(rec + kl)                            (N,)
#   evaluate_elbo     the held-out -ELBO with a fixed-seed noise: mean rec, kl and neg_elbo
#                     (what train reports after every epoch)
#   rate_distortion   the same means from a caller's rng, named rate (kl) and distortion (rec)

def elbo_terms(params, x, cfg, rng, n_samples=1, batch_size=1000):
    r"""Per-example ``rec`` and ``kl`` of the ELBO, rec averaged over n_samples draws of z.

    ``rec_b = -(1/S) sum_s log p(x_b | z_bs)``, ``z_bs = mu_b + std_b * eps_bs``, and the
    analytic ``kl_b = KL(q(z|x_b) || N(0, I))``; ``ELBO = -(rec + kl)``. Sample s uses the
    noise ``rng.standard_normal((N, J))``, drawn in order s = 0, 1, ..., so the result does not
    depend on batch_size.

    Returns
    -------
    rec, kl : (N,) arrays in the params' dtype.
    """
    dtype, x = check_data(params, x, cfg)
    check_number("elbo_terms", "n_samples", n_samples, low=1, integer=True)
    check_number("elbo_terms", "batch_size", batch_size, low=1, integer=True)
    N = x.shape[0]
    rec = np.zeros(N, dtype=dtype)
    kl = np.empty(N, dtype=dtype)
    for s in range(n_samples):
        eps = rng.standard_normal((N, cfg.latent_dim), dtype=dtype)  # (N, J)
        for start in range(0, N, batch_size):
            sl = slice(start, start + batch_size)
            rec_b, kl[sl] = loss_terms(params, x[sl], eps[sl], cfg)
            rec[sl] += rec_b
    return rec / dtype.type(n_samples), kl


def _means(rec, kl):
    r"""``mean_n rec_n`` and ``mean_n kl_n``, accumulated in float64, as Python floats."""
    return float(np.mean(rec, dtype=np.float64)), float(np.mean(kl, dtype=np.float64))


def elbo(params, x, cfg, rng, n_samples=1, batch_size=1000):
    r"""Per-example ELBO ``E_q[log p(x|z)] - KL(q(z|x) || p(z))`` (see :func:`elbo_terms`). (N,)."""
    rec, kl = elbo_terms(params, x, cfg, rng, n_samples, batch_size)
    return -(rec + kl)


def evaluate_elbo(params, cfg, x, *, seed=EVAL_NOISE_SEED, chunk=EVAL_CHUNK):
    r"""Single-sample -ELBO of a data set with a fixed noise, in nats per example.

    ``rec = mean_n rec_n``, ``kl = mean_n kl_n``, ``neg_elbo = rec + kl`` (beta = 1, the true
    ELBO whatever cfg.beta), with ``eps`` (N, J) drawn once from ``default_rng(seed)`` in the
    params' dtype, so the result is the same for every ``chunk`` size and every call. This is
    :func:`elbo_terms` with one sample, averaged in float64. (Also importable as
    ``vae_numpy.train.evaluate_elbo``, its home before.)

    Parameters
    ----------
    params : dict; cfg : VAEConfig
    x : (N, D) data of the params' dtype (binarize a Bernoulli test set first, e.g. with
        :func:`vae_numpy.data.binarize_test_set`).
    seed : int, seed of the noise.
    chunk : rows per forward pass (memory only).

    Returns
    -------
    dict with float ``rec``, ``kl``, ``neg_elbo``.
    """
    if len(x) == 0:
        raise ValueError("evaluate_elbo got an empty data set x")
    rec, kl = _means(*elbo_terms(params, x, cfg, np.random.default_rng(seed), batch_size=chunk))
    return {"rec": rec, "kl": kl, "neg_elbo": rec + kl}


def rate_distortion(params, x, cfg, rng, n_samples=1, batch_size=1000):
    r"""Mean rate (KL) and distortion (rec) over the examples, in nats per example.

    Returns
    -------
    dict with ``rate`` = mean KL(q(z|x) || p(z)), ``distortion`` = mean rec, and
    ``neg_elbo = rate + distortion``.
    """
    distortion, rate = _means(*elbo_terms(params, x, cfg, rng, n_samples, batch_size))
    return {"rate": rate, "distortion": distortion, "neg_elbo": rate + distortion}


# --- posterior-collapse diagnostics -----------------------------------------------------------

def encode_all(params, x, cfg, batch_size=1000):
    r"""``mu``, ``logvar`` of q(z|x) for every example, in batches. Returns two (N, J) arrays."""
    _, x = check_data(params, x, cfg, support=False)
    check_number("encode_all", "batch_size", batch_size, low=1, integer=True)
    parts = [encode(params, x[i:i + batch_size], cfg) for i in range(0, len(x), batch_size)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def posterior_mean_variance(params, x, cfg, batch_size=1000):
    r"""``Var_x(E_q[z_j | x])`` per latent dimension: the variance over the data of mu_j. (J,).

    Computed in float64 with ddof = 0 (the population variance of the N means).
    """
    mu, _ = encode_all(params, x, cfg, batch_size)
    return np.var(mu.astype(np.float64), axis=0)


def active_units(params, x, cfg, threshold=ACTIVE_UNIT_THRESHOLD, batch_size=1000):
    r"""Number of active latent dimensions: ``Var_x(E_q[z_j | x]) > threshold`` (Burda et al.).

    A dimension whose posterior mean does not move with x carries no information about x,
    whatever its variance; 0.01 is the threshold of Burda et al. (2016), Sec. 5.2.
    """
    return int(np.sum(posterior_mean_variance(params, x, cfg, batch_size) > threshold))


def mean_kl_per_dimension(params, x, cfg, batch_size=1000):
    r"""KL(q(z_j|x) || N(0, 1)) per latent dimension, averaged over the data x. (J,) float64.

    ``kl_j = mean_n 0.5 * (mu_nj**2 + exp(logvar_nj) - 1 - logvar_nj)``: the (B, J) array of
    :func:`vae_numpy.gaussian.kl_per_dimension` (which takes mu, logvar, not a model) for the
    encoded x, then the mean over the N examples, in float64; the sum over j is the mean KL
    (the rate). The old name ``evaluate.kl_per_dimension`` still works.
    """
    mu, logvar = encode_all(params, x, cfg, batch_size)
    per_example = gaussian.kl_per_dimension(mu.astype(np.float64), logvar.astype(np.float64))
    return per_example.mean(axis=0)  # (N, J) -> (J,)


def mutual_information(params, x, cfg, rng, batch_size=200, progress=False):
    r"""Estimate of the mutual information I(x; z) under q, in nats.

    With the data distribution as the N examples in x and the aggregate posterior
    ``q(z) = (1/N) sum_n q(z|x_n)`` (Hoffman & Johnson 2016; the estimator of He et al. 2019):

        I = E_x E_q(z|x)[log q(z|x) - log q(z)]
          ~ (1/N) sum_i [log q(z_i|x_i) - log (1/N) sum_n q(z_i|x_n)],   z_i ~ q(z|x_i)

    one z_i per example (noise ``rng.standard_normal((N, J))``), evaluated in float64.

    Bias: the inner mean contains the term n = i, so ``log q(z_i) >= log q(z_i|x_i) - log N``
    and the estimate is at most ``log N`` (7.6 nats for N = 2000). It saturates there when the
    code tells the N examples apart, so compare it with log N; it is exactly 0 for an encoder
    that ignores x (all q(z|x_n) equal). As an estimate of the mutual information of the data
    distribution it is biased low (a contrastive bound with the true density ratio as critic,
    Poole et al. 2019), by an amount that shrinks with N: on a linear-Gaussian model with
    I = 1.40 nats, 0.17 nats at N = 20 and 0.02 at N = 1000 (tests/test_math.py).

    Memory: ``log q(z_i|x_n)`` is computed for B = ``batch_size`` values of i at a time, with
    B lowered so that the (B, N, J) temporaries hold at most MI_CHUNK_ENTRIES floats (8 MB)
    each; the result does not depend on B (each row is its own sum and logsumexp).
    ``progress``: a status line on stderr (N**2 log-densities: ~80 s at N = 10,000).

    Returns
    -------
    float
    """
    mu, logvar = encode_all(params, x, cfg)
    mu, logvar = mu.astype(np.float64), logvar.astype(np.float64)  # (N, J)
    N, J = mu.shape
    z = mu + std_from_logvar(logvar) * rng.standard_normal((N, J))  # (N, J)
    log_q_own = log_normal_diag(z, mu, logvar)  # (N,)
    log_q_agg = np.empty(N)
    rows = max(1, min(batch_size, MI_CHUNK_ENTRIES // (N * J)))
    start_time = time.perf_counter()
    with Progress(enabled=progress, delay=MI_PROGRESS_AFTER) as meter:
        for start in range(0, N, rows):
            zb = z[start:start + rows, None, :]  # (B, 1, J)
            log_q_all = log_normal_diag(zb, mu[None], logvar[None])  # (B, N): log q(z_i | x_n)
            log_q_agg[start:start + rows] = logsumexp(log_q_all, axis=1) - math.log(N)
            meter.status(f"mutual information: log q(z_i | x_n) for {min(start + rows, N)}/{N} "
                         f"examples i, {time.perf_counter() - start_time:.1f} s")
        if meter.shown:  # it took long enough to show: say when it is done
            meter.line(f"mutual information: {N} x {N} log-densities in "
                       f"{time.perf_counter() - start_time:.1f} s")
    return float(np.mean(log_q_own - log_q_agg))


# --- everything at once -------------------------------------------------------------------------

def mean_and_stderr(values):
    r"""Mean and standard error ``std(ddof=1) / sqrt(n)`` of a 1-D array, as floats."""
    values = np.asarray(values, dtype=np.float64)
    se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return float(np.mean(values)), se


def evaluate_model(params, x, cfg, k=1000, rng=None, n_elbo_samples=1, want_bits_per_dim=False,
                   batch_size=DEFAULT_BATCH_SIZE, chunk_size=DEFAULT_CHUNK_SIZE, progress=True,
                   return_log_px=False):
    r"""All the numbers of this module for one model and data set, as a JSON-ready dict.

    Parameters
    ----------
    params, cfg : the model
    x : (N, D) data in the params' dtype (binarized as the model was trained)
    k : importance samples per example for ``iw_nll``
    rng : numpy.random.Generator (default ``default_rng(0)``); used in this order: the IW
        estimate, the ELBO, the mutual information
    n_elbo_samples : samples of z per example for ``rec``
    want_bits_per_dim : also report ``iw_bits_per_dim`` and ``neg_elbo_bits_per_dim``
    return_log_px : also return the (N,) array of IW_K per example, as ``(result, log_px)``
        (for a paired comparison with another model on the same images)

    Returns
    -------
    dict with, in nats per example: ``iw_nll`` (= mean of -IW_K, the estimate of -log p(x)) and
    ``iw_nll_se`` (its standard error over examples), ``neg_elbo``, ``neg_elbo_se``, ``rec``,
    ``kl`` (rate and distortion: ``neg_elbo = rec + kl``); ``active_units`` (with
    ``active_unit_threshold``), ``posterior_mean_variance`` and ``kl_per_dimension`` (lists of
    J), ``mutual_information`` and its ceiling ``mutual_information_max = log N``; ``k``,
    ``n``, ``n_elbo_samples``, ``seconds``, ``seconds_iw``; with want_bits_per_dim,
    ``iw_bits_per_dim``, ``neg_elbo_bits_per_dim`` and ``bits_per_dim_note`` (what they mean,
    :func:`bits_per_dim_note`).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    t0 = time.perf_counter()
    log_px = iw_log_likelihood(params, x, cfg, k, rng, batch_size, chunk_size, progress)
    seconds_iw = time.perf_counter() - t0
    rec, kl = elbo_terms(params, x, cfg, rng, n_samples=n_elbo_samples)
    rec, kl = rec.astype(np.float64), kl.astype(np.float64)
    iw_nll, iw_nll_se = mean_and_stderr(-log_px)
    neg_elbo, neg_elbo_se = mean_and_stderr(rec + kl)
    variances = posterior_mean_variance(params, x, cfg)
    result = {
        "iw_nll": iw_nll, "iw_nll_se": iw_nll_se,
        "neg_elbo": neg_elbo, "neg_elbo_se": neg_elbo_se,
        "rec": float(rec.mean()), "kl": float(kl.mean()),
        "active_units": int(np.sum(variances > ACTIVE_UNIT_THRESHOLD)),
        "active_unit_threshold": ACTIVE_UNIT_THRESHOLD,
        "posterior_mean_variance": variances.tolist(),
        "kl_per_dimension": mean_kl_per_dimension(params, x, cfg).tolist(),
        "mutual_information": mutual_information(params, x, cfg, rng, progress=progress),
        "mutual_information_max": math.log(len(x)),
        "k": int(k), "n": int(len(x)), "n_elbo_samples": int(n_elbo_samples),
    }
    if want_bits_per_dim:
        result["iw_bits_per_dim"] = bits_per_dim(iw_nll, cfg.input_dim)
        result["neg_elbo_bits_per_dim"] = bits_per_dim(neg_elbo, cfg.input_dim)
        result["bits_per_dim_note"] = bits_per_dim_note(cfg.likelihood)
    result["seconds_iw"] = seconds_iw
    result["seconds"] = time.perf_counter() - t0
    return (result, log_px) if return_log_px else result


# --- old names ----------------------------------------------------------------------------------

# In 0.1 this was evaluate.kl_per_dimension, a (J,) mean over the data set, while
# gaussian.kl_per_dimension is the (B, J) per-example array; the old name still works.
kl_per_dimension = mean_kl_per_dimension
