r"""The diagonal Gaussian posterior q(z|x) = N(mu, diag(exp(logvar))) and the prior N(0, I).

Shape letters: B batch, J latent dimensions.

The encoder outputs ``mu`` and ``logvar = log sigma**2``, never log sigma and never sigma.
The one place the standard deviation is computed is :func:`std_from_logvar`.
"""
import numpy as np

LOG_2PI = float(np.log(2 * np.pi))


def std_from_logvar(logvar):
    r"""Standard deviation ``std = exp(logvar / 2)`` from ``logvar = log std**2``."""
    return np.exp(0.5 * logvar)


def reparameterize_forward(mu, logvar, eps):
    r"""Draw ``z ~ N(mu, exp(logvar))`` as a differentiable function of (mu, logvar).

    ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` supplied by the caller
    (Kingma & Welling 2014, Sec. 2.4), so the same eps can be reused by backward and by a
    finite-difference check.

    Parameters
    ----------
    mu, logvar, eps : (B, J) arrays

    Returns
    -------
    z : (B, J) array
    cache : (std, eps)
    """
    std = std_from_logvar(logvar)
    z = mu + std * eps
    return z, (std, eps)


def reparameterize_backward(dz, cache):
    r"""Pathwise gradient through ``z = mu + exp(logvar / 2) * eps``.

    Local derivatives: dz/dmu = 1, dz/dlogvar = 0.5 * exp(logvar / 2) * eps.

    Derivation. Each z_bj depends only on mu_bj and logvar_bj (the map is elementwise), so the
    chain rule has one term per entry:

        dz/dmu     = 1
        dz/dlogvar = d/dlogvar exp(logvar / 2) * eps = 0.5 * exp(logvar / 2) * eps
                   = 0.5 * std * eps  (= 0.5 * (z - mu))
        dloss/dmu = dloss/dz * 1,   dloss/dlogvar = dloss/dz * 0.5 * std * eps

    Why this is the gradient of an expectation: eps ~ N(0, I) does not depend on (mu, logvar),
    so for a loss f(z) differentiable in z (with f' integrable under N(0, I), which lets the
    derivative pass inside the expectation)

        d/dtheta E_{z ~ q}[f(z)] = d/dtheta E_eps[f(mu + std * eps)]
                                 = E_eps[f'(z) * dz/dtheta],   theta = mu or logvar,

    and one draw of ``f'(z) * dz/dtheta`` is an unbiased estimate of it (Kingma & Welling 2014,
    Sec. 2.4). Sampling z directly from q(z|x) instead gives no derivative to follow: the
    randomness would sit between theta and z.

    Parameters
    ----------
    dz : (B, J) array, d loss / d z.

    Returns
    -------
    dmu, dlogvar : (B, J) arrays
    """
    std, eps = cache
    return dz, dz * 0.5 * std * eps


def kl_per_dimension(mu, logvar):
    r"""KL(N(mu_j, exp(logvar_j)) || N(0, 1)) for each latent dimension, in nats.

    ``kl_j = 0.5 * (mu_j**2 + exp(logvar_j) - 1 - logvar_j)``, with ``exp(logvar) - 1``
    computed as ``expm1(logvar)`` so that a tiny logvar does not cancel to a negative KL.

    Derivation (one dimension; q = N(mu, v) with v = exp(logvar), p = N(0, 1)):

        log q(z) = -0.5 * (log(2 pi) + logvar + (z - mu)**2 / v)
        log p(z) = -0.5 * (log(2 pi) + z**2)
        KL = E_q[log q(z) - log p(z)] = 0.5 * E_q[z**2 - (z - mu)**2 / v - logvar]
        E_q[(z - mu)**2] = v,   E_q[z**2] = mu**2 + v
        KL = 0.5 * (mu**2 + v - 1 - logvar)

    Both parts are >= 0: mu**2, and ``exp(logvar) - 1 - logvar`` (exp lies above its tangent at
    0), so the KL is 0 exactly at mu = 0, logvar = 0. A diagonal q and p = N(0, I) factorize over
    the J dimensions, so the KL of the vectors is the sum over j
    (:func:`kl_standard_normal`; Kingma & Welling 2014, App. B).

    Parameters
    ----------
    mu, logvar : (B, J) arrays

    Returns
    -------
    (B, J) array, >= 0.
    """
    return 0.5 * (mu * mu + (np.expm1(logvar) - logvar))


def kl_standard_normal(mu, logvar):
    r"""KL(N(mu, diag(exp(logvar))) || N(0, I)) per example, in nats.

    ``KL = 0.5 * sum_j (mu_j**2 + exp(logvar_j) - 1 - logvar_j)``
    (Kingma & Welling 2014, App. B). Summed over the latent axis J, not averaged.

    Parameters
    ----------
    mu, logvar : (B, J) arrays

    Returns
    -------
    kl : (B,) array, >= 0, zero only at mu = 0, logvar = 0.
    """
    return np.sum(kl_per_dimension(mu, logvar), axis=-1)


def kl_standard_normal_backward(dkl, mu, logvar):
    r"""Gradient of ``kl_standard_normal`` with respect to mu and logvar.

    Local derivatives: dKL/dmu = mu, dKL/dlogvar = 0.5 * (exp(logvar) - 1).

    Derivation: differentiate each term of ``kl_j = 0.5 * (mu_j**2 + exp(logvar_j) - 1 -
    logvar_j)`` (:func:`kl_per_dimension`); only kl_j depends on (mu_j, logvar_j), so

        d kl / d mu_j     = 0.5 * 2 mu_j = mu_j
        d kl / d logvar_j = 0.5 * (exp(logvar_j) - 1)     (computed as 0.5 * expm1(logvar_j))

    and with the upstream dkl_b = d loss / d kl_b, ``dmu_bj = dkl_b * mu_bj``,
    ``dlogvar_bj = dkl_b * 0.5 * expm1(logvar_bj)``. Both vanish exactly at the prior (mu = 0,
    logvar = 0), the KL's minimum; the mu gradient grows in proportion to mu, the logvar
    gradient like exp(logvar) above 0 and towards -0.5 as logvar -> -inf. These are the exact
    gradients of the expectation, not a sampled estimate: the KL is computed in closed form,
    not from z.

    Parameters
    ----------
    dkl : (B,) array, d loss / d kl_b for each example.
    mu, logvar : (B, J) arrays

    Returns
    -------
    dmu, dlogvar : (B, J) arrays
    """
    dkl = dkl[:, None]
    return dkl * mu, dkl * 0.5 * np.expm1(logvar)


def log_normal_diag(z, mu, logvar):
    r"""Log-density of a diagonal Gaussian, summed over the last axis.

    ``log N(z; mu, diag(exp(logvar))) = -0.5 * sum_j (log(2 pi) + logvar_j
    + (z_j - mu_j)**2 * exp(-logvar_j))``

    Parameters
    ----------
    z, mu, logvar : arrays broadcastable to (..., J)

    Returns
    -------
    (...) array of log-densities in nats.
    """
    return -0.5 * np.sum(LOG_2PI + logvar + (z - mu) ** 2 * np.exp(-logvar), axis=-1)


def log_standard_normal(z):
    r"""``log N(z; 0, I) = -0.5 * sum_j (log(2 pi) + z_j**2)`` over the last axis."""
    return -0.5 * np.sum(LOG_2PI + z * z, axis=-1)
