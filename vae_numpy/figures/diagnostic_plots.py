r"""Figures of the evaluation and the explanatory demos: bounds, KL estimates, gradient variance,
KL per latent dimension, the rate-distortion trade-off.

Like :mod:`vae_numpy.figures.plotting` (whose figure and grid helpers these reuse), every function
takes already computed numbers and an output path, and writes one PNG atomically; matplotlib
is imported lazily.
"""
import numpy as np

from .plotting import image_grid, new_figure, save_figure, show_grid

BAND_ALPHA = 0.25   # opacity of the +-2 standard error bands
N_SE = 2            # bands are mean +- N_SE standard errors (about a 95% interval)


def _band(ax, x, mean, se, label, color, marker="o"):
    mean, se = np.asarray(mean, dtype=float), np.asarray(se, dtype=float)
    ax.plot(x, mean, marker=marker, ms=3, color=color, label=label)
    ax.fill_between(x, mean - N_SE * se, mean + N_SE * se, color=color, alpha=BAND_ALPHA, lw=0)


def plot_bound_gaps(summary, path, title=None):
    r"""How far below log p(x) the ELBO and IW_K lie, against K, with the closed-form KL.

    Parameters
    ----------
    summary : dict of :func:`vae_numpy.linear_gaussian.summarize_bounds`
    path : output PNG
    """
    ks = summary["ks"]
    fig = new_figure((7, 4.5))
    ax = fig.add_subplot()
    ax.axhline(0, color="k", lw=1, label="log p(x) (exact)")
    _band(ax, ks, -np.asarray(summary["iw_gap"]), summary["iw_gap_se"],
          "IW_K - log p(x)  (Monte Carlo)", "C0")
    elbo_gap, se = summary["elbo_gap"], summary["elbo_gap_se"]
    ax.axhline(-elbo_gap, color="C3", lw=1.5, label="ELBO - log p(x)  (Monte Carlo)")
    ax.axhspan(-elbo_gap - N_SE * se, -elbo_gap + N_SE * se, color="C3", alpha=BAND_ALPHA, lw=0)
    ax.axhline(-summary["kl"], color="k", ls="--", lw=1.2,
               label="-KL(q(z|x) || p(z|x))  (closed form)")
    ax.set_xscale("log")
    ax.set_xlabel("K, importance samples per example")
    ax.set_ylabel("nats per example, relative to log p(x)")
    ax.set_title(title or "log p(x) - ELBO = KL(q || posterior); IW_K closes the gap as K grows",
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_kl_convergence(counts, curves, exact, path, title=None):
    r"""Running Monte Carlo estimates of a KL against the analytic value.

    Parameters
    ----------
    counts : sample counts (x axis, log scale)
    curves : dict label -> (means, standard errors), each of len(counts)
    exact : the analytic KL
    path : output PNG
    """
    fig = new_figure((7, 4.5))
    ax = fig.add_subplot()
    ax.axhline(exact, color="k", lw=1.2, ls="--", label=f"analytic KL = {exact:.3f} nats")
    for i, (label, (means, ses)) in enumerate(curves.items()):
        _band(ax, counts, means, np.nan_to_num(ses), label, f"C{i}", marker=None)
    ax.set_xscale("log")
    ax.set_xlabel("Monte Carlo samples")
    ax.set_ylabel("estimate of KL(q || N(0, I)), nats")
    ax.set_title(title or f"Monte Carlo KL with +-{N_SE} standard-error bands", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


ESTIMATOR_LABELS = {"pathwise": "pathwise (reparameterization)",
                    "score": "score function (REINFORCE)",
                    "score_baseline": "score function, constant baseline"}


def plot_gradient_variance(study, exact_mu, exact_logvar, path, title=None):
    r"""Means of the gradient estimators against the exact gradient, and their variances.

    Parameters
    ----------
    study : dict of :func:`vae_numpy.estimators.gradient_variance_study`
    exact_mu, exact_logvar : (J,) exact gradients
    path : output PNG
    """
    fig = new_figure((13, 4.2))
    axes = fig.subplots(1, 3)
    J = len(exact_mu)
    positions = np.arange(2 * J)
    exact = np.concatenate([exact_mu, exact_logvar])
    ax = axes[0]
    ax.scatter(positions, exact, marker="_", s=300, color="k", label="exact", zorder=3)
    for i, name in enumerate(ESTIMATOR_LABELS):
        mean = np.concatenate([study[name]["mean_mu"], study[name]["mean_logvar"]])
        se = np.concatenate([study[name]["se_mu"], study[name]["se_logvar"]])
        ax.errorbar(positions + 0.2 * (i - 1), mean, yerr=N_SE * se, fmt="o", ms=3,
                    color=f"C{i}", label=ESTIMATOR_LABELS[name])
    ax.set_xticks(positions)
    ax.set_xticklabels([f"mu{j}" for j in range(J)] + [f"lv{j}" for j in range(J)], fontsize=8)
    ax.set_ylabel("gradient")
    ax.set_title(f"same mean (+-{N_SE} SE, all samples)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    counts = study["sample_counts"]
    for ax, label in ((axes[1], "mu"), (axes[2], "logvar")):
        for i, name in enumerate(ESTIMATOR_LABELS):
            ax.plot(counts, study[name]["var_" + label], marker="o", ms=3, color=f"C{i}",
                    label=ESTIMATOR_LABELS[name])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("samples per estimate S")
        ax.set_ylabel(f"variance of the S-sample estimate (sum over {J})")
        ax.set_title(f"d/d{label}: variance against S", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_kl_per_dimension(kl_per_dim, variances, threshold, path, title=None):
    r"""Bar chart of the mean KL of each latent dimension, active units in color.

    Parameters
    ----------
    kl_per_dim : (J,) mean KL per dimension (nats)
    variances : (J,) Var_x of the posterior mean per dimension
    threshold : the active-unit threshold on the variances
    path : output PNG
    """
    kl_per_dim, variances = np.asarray(kl_per_dim), np.asarray(variances)
    active = variances > threshold
    J = len(kl_per_dim)
    fig = new_figure((max(6, 0.35 * J + 2), 4))
    ax = fig.add_subplot()
    ax.bar(np.arange(J)[active], kl_per_dim[active], color="C0",
           label=f"active ({active.sum()}): Var_x(mu_j) > {threshold}")
    if not active.all():
        ax.bar(np.arange(J)[~active], kl_per_dim[~active], color="0.6",
               label=f"inactive ({(~active).sum()})")
    ax.set_xticks(np.arange(J))
    ax.set_xlabel("latent dimension j")
    ax.set_ylabel("mean KL(q(z_j|x) || N(0, 1)), nats")
    ax.set_title(title or f"KL per latent dimension (total {kl_per_dim.sum():.2f} nats)",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def plot_rate_distortion(labels, rates, distortions, path, title=None):
    r"""Distortion (rec) against rate (KL), one labelled point per training setting.

    Parameters
    ----------
    labels : names of the settings (e.g. "beta=0.5")
    rates, distortions : mean KL and mean rec per setting, nats per example
    path : output PNG
    """
    fig = new_figure((6.5, 4.5))
    ax = fig.add_subplot()
    ax.plot(rates, distortions, "o-", color="C0", ms=5)
    for label, r, d in zip(labels, rates, distortions):
        ax.annotate(label, (r, d), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xscale("symlog", linthresh=1.0)  # rates from 0 (KL only) to hundreds (beta = 0)
    ax.set_xlabel("rate: KL(q(z|x) || p(z)), nats per example (linear below 1, log above)")
    ax.set_ylabel("distortion: rec = -E_q[log p(x|z)], nats per example")
    ax.set_title(title or "rate-distortion: each beta picks a point on the trade-off",
                 fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_setting_rows(rows, image_shape, path, title=None):
    r"""For each setting, a row of reconstructions and a row of prior samples.

    Parameters
    ----------
    rows : list of (label, reconstructions (n, D), samples (n, D)); the first entry may be
        ("data", originals, None) to show the originals once on top
    image_shape : (H, W)
    path : output PNG
    """
    n_cols = max(len(r[1]) for r in rows)
    fig = new_figure((0.55 * 2 * n_cols + 1.5, 0.62 * len(rows) + 0.6))
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (label, rec, samples), (ax_rec, ax_samp) in zip(rows, axes):
        show_grid(ax_rec, image_grid(rec, image_shape, n_cols), "")
        ax_rec.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        if samples is None:
            ax_samp.axis("off")
        else:
            show_grid(ax_samp, image_grid(samples, image_shape, n_cols), "")
    axes[0, 0].set_title("reconstructions (decoded posterior mean)", fontsize=10)
    axes[0, 1].set_title("samples: decode(z), z ~ N(0, I)", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(wspace=0.05, hspace=0.08)
    return save_figure(fig, path)
