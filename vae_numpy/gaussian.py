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
