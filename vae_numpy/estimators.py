r"""Monte Carlo estimators under q(z|x) = N(mu, diag(exp(logvar))): gradients and the KL.

Shape letters: S samples, B batch, J latent dimensions.

Two unbiased estimators of the gradient of ``E_q[f(z)]`` with respect to (mu, logvar), one per
sample ``z = mu + std * eps``, ``std = exp(logvar / 2)``, ``eps ~ N(0, I)``:

- pathwise (reparameterization, Kingma & Welling 2014): differentiate through the sample,

      d/dmu = f'(z),    d/dlogvar = f'(z) * dz/dlogvar = f'(z) * 0.5 * std * eps

- score function (REINFORCE, Williams 1992): differentiate the density instead,

      d/dtheta E_q[f] = E_q[f(z) * d log q(z) / d theta], with
      d log q / dmu = (z - mu) / std**2 = eps / std,
      d log q / dlogvar = 0.5 * ((z - mu)**2 / std**2 - 1) = 0.5 * (eps**2 - 1).

  It needs only f, not f', and pays for it in variance. Subtracting a constant ``baseline``
  from f keeps it unbiased (E_q[d log q / d theta] = 0) and can reduce the variance.

Each estimator returns the S single-sample estimates; their mean over S is the S-sample
estimate, and :func:`variance_of_mean` measures its variance from replicates.

Not to be confused with the ``estimator`` of :func:`vae_numpy.iwae.iwae_loss_and_grads`
("iwae", "stl", "dreg"): those are three estimators of the IWAE bound's encoder gradient,
which differ in what they do with the score term of log q. They meet this module in one
place: DReG is unbiased because the score-function and the pathwise estimators here have the
same expectation.
"""
import numpy as np

from .evaluate import mean_and_stderr
from .gaussian import (log_normal_diag, log_standard_normal, reparameterize_backward,
                       reparameterize_forward, std_from_logvar)
from .likelihoods import get_likelihood
from .model import decoder_backward, decoder_forward, params_dtype


def pathwise_gradient(df, mu, logvar, eps):
    r"""Single-sample pathwise estimates of ``d E_q[f(z)] / d(mu, logvar)``.

    ``dmu = f'(z)``, ``dlogvar = f'(z) * 0.5 * std * eps``, ``z = mu + std * eps``: the
    backward pass of the reparameterization the model trains with
    (:func:`vae_numpy.gaussian.reparameterize_backward`), applied to dz = f'(z).

    Parameters
    ----------
    df : callable, z (S, B, J) -> f'(z) (S, B, J), the gradient of f at each sample
    mu, logvar : (B, J)
    eps : (S, B, J) standard normal noise

    Returns
    -------
    dmu, dlogvar : (S, B, J) arrays, one estimate per sample.
    """
    z, cache = reparameterize_forward(mu, logvar, eps)  # (S, B, J)
    return reparameterize_backward(df(z), cache)


def score_function_gradient(f, mu, logvar, eps, baseline=0.0):
    r"""Single-sample score-function (REINFORCE) estimates of ``d E_q[f(z)] / d(mu, logvar)``.

    ``dmu = (f(z) - baseline) * eps / std``,
    ``dlogvar = (f(z) - baseline) * 0.5 * (eps**2 - 1)``, ``z = mu + std * eps``.

    Parameters
    ----------
    f : callable, z (S, B, J) -> f(z) (S, B)
    mu, logvar : (B, J)
    eps : (S, B, J) standard normal noise
    baseline : float or (B,) array, a constant subtracted from f (0: plain REINFORCE)

    Returns
    -------
    dmu, dlogvar : (S, B, J) arrays, one estimate per sample.
    """
    std = std_from_logvar(logvar)
    weight = (f(mu + std * eps) - baseline)[..., None]  # (S, B, 1)
    return weight * eps / std, weight * 0.5 * (eps * eps - 1)


def reconstruction_integrand(params, x, cfg):
    r"""``f(z) = log p(x|z)`` of a vae_numpy model and its gradient f'(z), for the estimators.

    The ELBO is ``E_q[log p(x|z)] - KL``; the KL and its gradient are analytic, so the
    variance of an ELBO gradient estimate is the variance of the estimate of the gradient of
    ``E_q[log p(x|z)]``.

    Parameters
    ----------
    params, cfg : the model
    x : (B, D) data in the params' dtype

    Returns
    -------
    f : z (S, B, J) -> (S, B)
    df : z (S, B, J) -> (S, B, J), through the decoder's backward pass.
    """
    params_dtype(params, cfg)
    likelihood = get_likelihood(cfg.likelihood)

    def forward(z):
        S, B, J = z.shape
        x_rep = np.broadcast_to(x, (S, B, x.shape[1])).reshape(S * B, -1)  # (S*B, D)
        outs, cache = decoder_forward(params, z.reshape(S * B, J), cfg)
        return x_rep, outs, cache

    def f(z):
        x_rep, outs, _ = forward(z)
        return -likelihood.nll(x_rep, outs, cfg.sigma).reshape(z.shape[:2])

    def df(z):
        x_rep, outs, cache = forward(z)
        dnll = np.full(len(x_rep), -1.0, dtype=z.dtype)  # d f / d rec = -1
        douts = likelihood.nll_backward(dnll, x_rep, outs, cfg.sigma)
        return decoder_backward(douts, cache, cfg, {}).reshape(z.shape)

    return f, df


def variance_of_mean(estimates, n_samples):
    r"""Variance of the n_samples-sample average, measured from replicates.

    The first ``R * n_samples`` single-sample estimates (R = len // n_samples) are split into
    R groups of n_samples; the variance over the R group means (ddof = 1) is returned.

    Parameters
    ----------
    estimates : (S_total, ...) array of single-sample estimates
    n_samples : samples per average; needs at least 2 groups

    Returns
    -------
    (...) array: the variance of each component of the averaged estimator.
    """
    R = len(estimates) // n_samples
    if R < 2:
        raise ValueError(f"variance_of_mean needs at least 2 groups of {n_samples} samples, "
                         f"got {len(estimates)} estimates")
    groups = estimates[:R * n_samples].reshape(R, n_samples, *estimates.shape[1:])
    return np.var(groups.mean(axis=1), axis=0, ddof=1)


# --- the KL as a Monte Carlo estimate -----------------------------------------------------

def kl_monte_carlo(z, mu, logvar):
    r"""Single-sample estimates ``log q(z) - log p(z)`` of KL(q || N(0, I)) at samples z.

    Their mean over samples z ~ q converges to the analytic
    ``KL = 0.5 * sum_j (mu_j**2 + exp(logvar_j) - 1 - logvar_j)``, but only if the samples
    really come from q = N(mu, diag(exp(logvar))).

    Parameters
    ----------
    z : (S, B, J) samples, mu, logvar : (B, J)

    Returns
    -------
    (S, B) array.
    """
    return log_normal_diag(z, mu, logvar) - log_standard_normal(z)


def variance_as_std_sample(mu, logvar, eps):
    r"""A BUGGY sampler, kept to show what the bug does: ``z = mu + exp(logvar) * eps``.

    It uses the variance ``exp(logvar)`` as the standard deviation, so z ~ N(mu, exp(2 logvar))
    instead of N(mu, exp(logvar)): right only where logvar = 0. A well-known NumPy VAE ships
    this bug. The correct sampler is :func:`vae_numpy.gaussian.reparameterize_forward`.
    """
    return mu + np.exp(logvar) * eps


def running_mean_and_stderr(samples, counts):
    r"""Mean and standard error of the first n samples, for each n in counts.

    ``mean_n = (1/n) sum_{s<n} samples_s``, ``se_n = std_n(ddof=1) / sqrt(n)`` (nan for n = 1):
    :func:`vae_numpy.evaluate.mean_and_stderr` of each prefix.

    Parameters
    ----------
    samples : (S,) array; counts : increasing ints <= S

    Returns
    -------
    means, ses : (len(counts),) float64 arrays
    """
    means, ses = np.array([mean_and_stderr(samples[:n]) for n in counts]).T
    return means, ses


def gradient_variance_study(f, df, mu, logvar, sample_counts, n_replicates, rng,
                            n_baseline_samples=100):
    r"""Pathwise against score-function estimates of ``d E_q[f(z)] / d(mu, logvar)``.

    Draws ``n_replicates * max(sample_counts)`` single-sample estimates of each estimator
    from the same noise, and reports their means (with standard errors) and the variance of
    the S-sample average for every S in sample_counts (:func:`variance_of_mean`, summed over
    the latent components). The third estimator is REINFORCE with the baseline
    ``b = mean f(z)`` over ``n_baseline_samples`` independent draws (drawn first from rng).

    Parameters
    ----------
    f, df : the integrand and its gradient (z (S, 1, J) -> (S, 1), (S, 1, J))
    mu, logvar : (1, J) the distribution q
    sample_counts : increasing sample counts S
    n_replicates : R, groups used to measure each variance
    rng : numpy.random.Generator

    Returns
    -------
    dict: ``sample_counts``; for each estimator name in ("pathwise", "score",
    "score_baseline"): ``{"mean_mu", "se_mu", "mean_logvar", "se_logvar"}`` ((J,) arrays) and
    ``{"var_mu", "var_logvar"}`` ((len(sample_counts),) arrays); and ``baseline``.
    """
    J = mu.shape[1]
    std = std_from_logvar(logvar)
    baseline = float(f(mu + std * rng.standard_normal((n_baseline_samples, 1, J))).mean())
    eps = rng.standard_normal((n_replicates * max(sample_counts), 1, J))  # (S, 1, J)
    estimates = {"pathwise": pathwise_gradient(df, mu, logvar, eps),
                 "score": score_function_gradient(f, mu, logvar, eps),
                 "score_baseline": score_function_gradient(f, mu, logvar, eps, baseline)}
    result = {"sample_counts": list(sample_counts), "baseline": baseline}
    for name, (dmu, dlogvar) in estimates.items():
        stats = {}
        for label, a in (("mu", dmu[:, 0]), ("logvar", dlogvar[:, 0])):
            stats["mean_" + label] = a.mean(axis=0)
            stats["se_" + label] = a.std(axis=0, ddof=1) / np.sqrt(len(a))
            stats["var_" + label] = np.array([variance_of_mean(a, n).sum() for n in sample_counts])
        result[name] = stats
    return result
