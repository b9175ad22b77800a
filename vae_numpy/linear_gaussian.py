r"""The linear-Gaussian VAE: a model whose log p(x) and posterior p(z|x) are exact.

Shape letters: B batch, D data dimensions, J latent dimensions.

The generative model (a probabilistic PCA, Tipping & Bishop 1999) is

    p(z) = N(0, I_J),    p(x|z) = N(z @ W + b, sigma**2 I_D)

with ``W`` in the project's (in, out) layout, shape (J, D): the decoder computes
``z @ W + b``. In column-vector notation the decoder matrix is ``A = W.T`` (D, J) and the mean
is ``A z + b``; the formulas below are written with ``W`` (J, D) and row vectors.

Marginal (a linear map of a Gaussian plus independent Gaussian noise):

    p(x) = N(b, C),    C = W.T @ W + sigma**2 I_D                            (D, D)

Posterior (complete the square in z of log p(z) + log p(x|z)):

    log p(z|x) = -0.5 z M z^T + z . (W (x - b)) / sigma**2 + const
    M = I_J + W @ W.T / sigma**2                                   (J, J) precision
    p(z|x) = N(m(x), M^-1),    m(x) = (x - b) @ W.T @ M^-1 / sigma**2

The posterior covariance does not depend on x, and it is diagonal exactly when the rows of
``W`` are orthogonal (then ``W @ W.T`` is diagonal). A vae_numpy VAE with no hidden layers,
identity activation and the ``gaussian`` likelihood *is* this model, and its linear encoder can
represent m(x) exactly; its logvar head, with zero weights, outputs a constant diagonal. So
with orthogonal rows the encoder can equal the true posterior, and the ELBO, the
importance-weighted bound and log p(x) can all be compared with exact numbers.
"""
import numpy as np
import scipy.linalg

from . import evaluate
from .gaussian import LOG_2PI, kl_standard_normal
from .model import VAEConfig


def linear_gaussian_config(input_dim, latent_dim, sigma=1.0, dtype="float64"):
    r"""The :class:`VAEConfig` of a linear-Gaussian VAE: no hidden layers, identity, gaussian."""
    return VAEConfig(input_dim=input_dim, latent_dim=latent_dim, encoder_hidden=(),
                     decoder_hidden=(), activation="identity", likelihood="gaussian",
                     sigma=sigma, dtype=dtype)


def orthogonal_decoder(latent_dim, input_dim, scales, rng):
    r"""A decoder matrix W (J, D) with orthogonal rows of the given norms.

    ``W = diag(scales) @ Q.T`` with Q (D, J) having orthonormal columns (QR of a Gaussian
    matrix), so ``W @ W.T = diag(scales**2)`` and the posterior covariance is diagonal.

    Parameters
    ----------
    latent_dim, input_dim : J <= D
    scales : (J,) row norms
    rng : numpy.random.Generator

    Returns
    -------
    W : (J, D) float64
    """
    if latent_dim > input_dim:
        raise ValueError(f"orthogonal_decoder needs latent_dim <= input_dim to have orthogonal "
                         f"rows, got J = {latent_dim} > D = {input_dim}")
    scales = np.asarray(scales, dtype=np.float64)
    if scales.shape != (latent_dim,):
        raise ValueError(f"scales has shape {scales.shape}, expected ({latent_dim},)")
    q, _ = np.linalg.qr(rng.standard_normal((input_dim, latent_dim)))  # (D, J)
    return scales[:, None] * q.T


def marginal_covariance(W, sigma):
    r"""``C = W.T @ W + sigma**2 I_D``, the covariance of p(x). Returns (D, D)."""
    return W.T @ W + sigma**2 * np.eye(W.shape[1])


def _log_normal_full(r, cov):
    r"""``log N(r; 0, cov)`` per row of r (B, n), with a Cholesky factor L of cov (n, n).

    ``-0.5 * (n log(2 pi) + log det cov + r cov^-1 r^T)``, ``log det cov = 2 sum log diag(L)``.
    Returns (B,).
    """
    L = scipy.linalg.cholesky(cov, lower=True)
    v = scipy.linalg.solve_triangular(L, r.T, lower=True)  # (n, B), L v = r^T
    log_det = 2 * np.sum(np.log(np.diag(L)))
    return -0.5 * (r.shape[1] * LOG_2PI + log_det + np.sum(v * v, axis=0))


def log_marginal(x, W, b, sigma):
    r"""Exact ``log p(x) = log N(x; b, W.T @ W + sigma**2 I)`` per example.

    ``log p(x) = -0.5 * (D log(2 pi) + log det C + (x - b) C^-1 (x - b)^T)``, computed with a
    Cholesky factor of C.

    Parameters
    ----------
    x : (B, D) array
    W : (J, D) decoder matrix, b : (D,) decoder bias, sigma : float

    Returns
    -------
    (B,) array of log-densities in nats.
    """
    return _log_normal_full(x - b, marginal_covariance(W, sigma))


def posterior_precision(W, sigma):
    r"""``M = I_J + W @ W.T / sigma**2``, the precision of p(z|x) (the same for every x). (J, J)."""
    return np.eye(W.shape[0]) + W @ W.T / sigma**2


def posterior(x, W, b, sigma):
    r"""The exact posterior p(z|x) = N(mean, cov).

    ``cov = M^-1``, ``mean = (x - b) @ W.T @ M^-1 / sigma**2`` with
    ``M = I + W @ W.T / sigma**2`` (see the module docstring for the derivation).

    Returns
    -------
    mean : (B, J) array
    cov : (J, J) array, shared by all examples.
    """
    cov = np.linalg.inv(posterior_precision(W, sigma))
    cov = 0.5 * (cov + cov.T)  # exactly symmetric
    return (x - b) @ W.T @ cov / sigma**2, cov


def log_posterior(z, x, W, b, sigma):
    r"""``log p(z|x) = log N(z; mean(x), cov)`` for z (B, J) and x (B, D). Returns (B,)."""
    mean, cov = posterior(x, W, b, sigma)
    return _log_normal_full(z - mean, cov)


def kl_diag_to_full(mu, logvar, mean, cov):
    r"""``KL(N(mu, diag(exp(logvar))) || N(mean, cov))`` per example, in closed form.

    ``KL = 0.5 * (tr(cov^-1 S) + (mean - mu) cov^-1 (mean - mu)^T - J + log det cov
    - sum_j logvar_j)`` with ``S = diag(exp(logvar))``.

    Parameters
    ----------
    mu, logvar : (B, J) the diagonal Gaussian q
    mean : (B, J), cov : (J, J) the full-covariance Gaussian (the exact posterior here)

    Returns
    -------
    (B,) array, >= 0, zero only when q equals the second Gaussian.
    """
    L = scipy.linalg.cholesky(cov, lower=True)
    cov_inv = scipy.linalg.cho_solve((L, True), np.eye(cov.shape[0]))
    trace = np.exp(logvar) @ np.diag(cov_inv)  # tr(cov^-1 diag(s)) = sum_j (cov^-1)_jj s_j
    r = scipy.linalg.solve_triangular(L, (mean - mu).T, lower=True)  # (J, B)
    log_det = 2 * np.sum(np.log(np.diag(L)))
    J = mu.shape[1]
    return 0.5 * (trace + np.sum(r * r, axis=0) - J + log_det - np.sum(logvar, axis=1))


def expected_log_likelihood(x, mu, logvar, W, b, sigma):
    r"""``E_q[log p(x|z)]`` in closed form for q = N(mu, diag(exp(logvar))).

    With ``r = x - mu @ W - b``: ``E_q |x - z @ W - b|**2 = |r|**2 + sum_j exp(logvar_j) |W_j|**2``
    (W_j the j-th row), so
    ``E_q[log p(x|z)] = -D (log sigma + 0.5 log(2 pi))
    - (|r|**2 + sum_j var_j |W_j|**2) / (2 sigma**2)``.

    Returns
    -------
    (B,) array.
    """
    D = x.shape[1]
    r = x - mu @ W - b  # (B, D)
    spread = np.exp(logvar) @ np.sum(W * W, axis=1)  # (B,)
    return -D * (np.log(sigma) + 0.5 * LOG_2PI) - (np.sum(r * r, axis=1) + spread) / (2 * sigma**2)


def expected_log_likelihood_grad(x, mu, logvar, W, b, sigma):
    r"""Gradient of :func:`expected_log_likelihood` with respect to mu and logvar.

    ``d/dmu = (x - mu @ W - b) @ W.T / sigma**2``,
    ``d/dlogvar_j = -0.5 exp(logvar_j) |W_j|**2 / sigma**2``.

    Returns
    -------
    dmu, dlogvar : (B, J) arrays
    """
    r = x - mu @ W - b
    dmu = r @ W.T / sigma**2
    dlogvar = -0.5 * np.exp(logvar) * np.sum(W * W, axis=1) / sigma**2
    return dmu, dlogvar


def sample_data(n, W, b, sigma, rng):
    r"""Draw n examples from p(x): ``z ~ N(0, I)``, ``x = z @ W + b + sigma * noise``. (n, D)."""
    z = rng.standard_normal((n, W.shape[0]))  # (n, J)
    return z @ W + b + sigma * rng.standard_normal((n, W.shape[1]))


def vae_params(W, b, enc_W, enc_b, logvar_b, dtype="float64"):
    r"""vae_numpy params of a linear-Gaussian VAE (config from :func:`linear_gaussian_config`).

    Encoder ``mu = x @ enc_W + enc_b``, ``logvar = x @ 0 + logvar_b`` (a constant diagonal: the
    logvar head's weights are zero); decoder ``mean = z @ W + b``.

    Parameters
    ----------
    W : (J, D), b : (D,) decoder
    enc_W : (D, J), enc_b : (J,) encoder mean head
    logvar_b : (J,) constant log-variance of q

    Returns
    -------
    dict with keys ``enc.mu.W, enc.mu.b, enc.logvar.W, enc.logvar.b, dec.out.W, dec.out.b``.
    """
    J, D = W.shape
    params = {"enc.mu.W": enc_W, "enc.mu.b": enc_b,
              "enc.logvar.W": np.zeros((D, J)), "enc.logvar.b": logvar_b,
              "dec.out.W": W, "dec.out.b": b}
    return {k: np.array(v, dtype=dtype) for k, v in params.items()}


def posterior_encoder(W, b, sigma):
    r"""The linear encoder whose mean is the exact posterior mean, with the best diagonal variance.

    ``mean(x) = (x - b) @ E`` with ``E = W.T @ M^-1 / sigma**2`` (D, J), so ``enc_W = E`` and
    ``enc_b = -b @ E``. The variance is ``1 / diag(M)``: the diagonal Gaussian closest to the
    posterior in KL(q || p) has the exact mean and precision ``diag(M)`` (Bishop 2006, Sec.
    10.1.2). When the rows of W are orthogonal, M is diagonal and q *is* the posterior.

    Returns
    -------
    enc_W : (D, J), enc_b : (J,), logvar_b : (J,)
    """
    M = posterior_precision(W, sigma)
    E = W.T @ np.linalg.inv(M) / sigma**2
    return E, -b @ E, -np.log(np.diag(M))


def compare_bounds(params, x, W, b, sigma, ks, rng, n_elbo_samples=100, progress=False):
    r"""log p(x), the ELBO, IW_K for several K, and KL(q || p(z|x)), per example.

    The evidence behind the ELBO's derivation: per example,
    ``log p(x) - ELBO = KL(q(z|x) || p(z|x))`` exactly, and ``ELBO <= E[IW_K] <= log p(x)``.
    The params must be a linear-Gaussian VAE with decoder (W, b) (see :func:`vae_params`).

    Parameters
    ----------
    params : vae_numpy params; x : (N, D); W, b, sigma : the decoder
    ks : sample counts K for the importance-weighted bound
    rng : numpy.random.Generator, used for the ELBO (first) then each IW_K in order of ks
    n_elbo_samples : z samples per example for the Monte Carlo ELBO

    Returns
    -------
    dict of (N,) arrays: ``log_px`` (exact), ``elbo`` (Monte Carlo), ``elbo_exact`` (closed
    form), ``kl_to_posterior`` (closed form), and ``iw`` = {K: (N,) IW_K estimates}.
    """
    cfg = linear_gaussian_config(x.shape[1], W.shape[0], sigma, dtype=str(x.dtype))
    mu, logvar = evaluate.encode_all(params, x, cfg)
    mean, cov = posterior(x, W, b, sigma)
    return {
        "log_px": log_marginal(x, W, b, sigma),
        "elbo": evaluate.elbo(params, x, cfg, rng, n_samples=n_elbo_samples),
        "elbo_exact": (expected_log_likelihood(x, mu, logvar, W, b, sigma)
                       - kl_standard_normal(mu, logvar)),
        "kl_to_posterior": kl_diag_to_full(mu, logvar, mean, cov),
        "iw": {int(k): evaluate.iw_log_likelihood(params, x, cfg, k, rng, progress=progress)
               for k in ks},
    }


def summarize_bounds(bounds):
    r"""Means over examples, with paired standard errors, of each bound minus log p(x).

    Parameters
    ----------
    bounds : the dict of :func:`compare_bounds`

    Returns
    -------
    dict of floats and lists: ``log_px`` (mean), ``elbo_gap`` / ``elbo_gap_se``
    (mean and SE of ``log p(x) - ELBO``), ``kl`` / ``kl_se`` (closed-form
    KL(q || p(z|x))), ``gap_minus_kl`` / ``gap_minus_kl_se`` (paired), ``elbo_exact_gap``,
    ``ks``, ``iw_gap`` / ``iw_gap_se`` (lists over K of
    ``log p(x) - IW_K``), ``iw`` (list of mean IW_K), ``elbo`` (mean ELBO).
    """
    log_px = bounds["log_px"]
    ks = sorted(bounds["iw"])
    out = {"log_px": float(log_px.mean()), "elbo": float(bounds["elbo"].mean()), "ks": ks,
           "iw": [float(bounds["iw"][k].mean()) for k in ks]}
    out["elbo_gap"], out["elbo_gap_se"] = evaluate.mean_and_stderr(log_px - bounds["elbo"])
    out["elbo_exact_gap"] = float(np.mean(log_px - bounds["elbo_exact"]))
    out["kl"], out["kl_se"] = evaluate.mean_and_stderr(bounds["kl_to_posterior"])
    out["gap_minus_kl"], out["gap_minus_kl_se"] = evaluate.mean_and_stderr(
        log_px - bounds["elbo"] - bounds["kl_to_posterior"])
    gaps = [evaluate.mean_and_stderr(log_px - bounds["iw"][k]) for k in ks]
    out["iw_gap"], out["iw_gap_se"] = [g[0] for g in gaps], [g[1] for g in gaps]
    return out
