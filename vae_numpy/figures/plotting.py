r"""Figures of a trained VAE: reconstructions, samples, loss curves, latent space, 2-D manifold.

Every ``plot_*`` function takes arrays and an output path and writes one PNG atomically
(temporary file in the same directory, then ``os.replace``); nothing here trains or samples.
matplotlib is imported inside the functions (its Agg backend, through
``matplotlib.figure.Figure``, without touching pyplot's global state), so ``import vae_numpy``
works without matplotlib.

Shape letters: N images, D = H * W pixels, J latent dimensions.
"""
import io

import numpy as np

from ..files.atomic import atomic_write

# Dots per inch of the saved PNGs: sharp enough to see strokes, small files (< 200 KB).
DPI = 100
# Width in pixels of the border between tiles of an image grid (drawn at the background 0.5).
GRID_PAD = 1


# --- building blocks (public: diagnostic_plots draws with them too) --------------------------

def new_figure(figsize):
    r"""A matplotlib Figure of ``figsize`` inches bound to the Agg canvas (lazy import)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("vae_numpy.figures.plotting needs matplotlib: pip install matplotlib "
                          "(or pip install vae_numpy[demos])") from err
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, grayscale=False):
    r"""Write ``fig`` as a PNG to ``path`` atomically; returns the path.

    ``grayscale=True`` stores one 8-bit channel instead of RGBA (for the image grids, which
    have no color): the same picture in about a third of the bytes.
    """
    with atomic_write(path) as f:
        if grayscale:
            from PIL import Image   # a dependency of matplotlib
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
            buf.seek(0)
            Image.open(buf).convert("L").save(f, format="png", optimize=True)
        else:
            fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight")
    return path


def show_grid(ax, grid, title):
    r"""Draw an image grid (from :func:`image_grid`) on ``ax`` in gray, values 0..1, no ticks."""
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


# --- arrays for the figures -------------------------------------------------------------------

def image_grid(images, image_shape, n_cols, pad=GRID_PAD, fill=0.5):
    r"""Tile images (N, D) into one (rows * (H + pad) - pad, n_cols * (W + pad) - pad) array.

    Row-major: image k goes to row k // n_cols, column k % n_cols; empty cells are ``fill``.
    """
    images = np.asarray(images, dtype=np.float64)
    h, w = image_shape
    if images.ndim != 2 or images.shape[1] != h * w:
        raise ValueError(f"images has shape {images.shape}, expected (N, {h * w}) for "
                         f"image_shape {tuple(image_shape)}")
    n_rows = max(1, -(-len(images) // n_cols))
    grid = np.full((n_rows * (h + pad) - pad, n_cols * (w + pad) - pad), fill)
    for k, img in enumerate(images):
        r, c = divmod(k, n_cols)
        grid[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = img.reshape(h, w)
    return grid


def principal_components(a, k=2):
    r"""Project rows of a (N, J) onto their first k principal components.

    ``a_c = a - mean(a)``, ``a_c = U S V^T`` (SVD), projection ``a_c @ V[:, :k]`` (N, k), and
    the explained-variance ratios ``S_i**2 / sum(S**2)`` of those k components (k,). Each
    component's sign is fixed so its largest-magnitude loading is positive (deterministic).
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < k or a.shape[0] < 2:
        raise ValueError(f"principal_components needs a (N >= 2, J >= {k}) array, got {a.shape}")
    centred = a - a.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:k] * np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(axis=1)])[:, None]
    total = np.sum(s**2)
    ratio = s[:k]**2 / total if total > 0 else np.zeros(k)
    return centred @ vt.T, ratio


def manifold_latents(n):
    r"""The (n * n, 2) grid of z for a decoded 2-D manifold (Kingma & Welling 2014, fig. 4).

    Equally spaced probabilities ``p_i = (i + 0.5) / n`` on the unit square, mapped through the
    standard normal's inverse CDF ``z_i = Phi^-1(p_i)`` (scipy.stats.norm.ppf), so each cell
    covers the same prior mass. Row r (top to bottom) has z_2 = z[n - 1 - r] (z_2 grows upward),
    column c has z_1 = z[c]: ready for :func:`plot_manifold`.
    """
    from scipy.stats import norm
    if n < 1:
        raise ValueError(f"manifold_latents needs n >= 1, got {n}")
    z = norm.ppf((np.arange(n) + 0.5) / n)                                # (n,)
    z1, z2 = np.meshgrid(z, z[::-1])
    return np.stack([z1.ravel(), z2.ravel()], axis=1)                     # (n * n, 2)


# --- figures ----------------------------------------------------------------------------------

def _grid_axes(grid, scale):
    r"""A figure whose one axes draws each grid pixel as ``scale`` x ``scale`` PNG pixels.

    The axes fill the figure; titles, ticks and labels fall outside it and are kept by
    ``bbox_inches="tight"`` when saving.
    """
    h, w = grid.shape
    fig = new_figure((scale * w / DPI, scale * h / DPI))
    return fig, fig.add_axes([0, 0, 1, 1])


def plot_reconstructions(x, x_rec, image_shape, path, n_cols=10, title=None):
    r"""Originals above their reconstructions: pairs of rows, n_cols images each.

    Parameters
    ----------
    x, x_rec : (N, D) originals and reconstructions (e.g. decode of the posterior mean), [0, 1].
    image_shape : (H, W)
    path : output PNG.
    """
    x, x_rec = np.asarray(x), np.asarray(x_rec)
    if x.shape != x_rec.shape:
        raise ValueError(f"x has shape {x.shape} but x_rec has shape {x_rec.shape}")
    pairs = []
    for start in range(0, len(x), n_cols):
        block = [x[start:start + n_cols], x_rec[start:start + n_cols]]
        pairs.extend(np.concatenate([b, np.full((n_cols - len(b), b.shape[1]), 0.5)])
                     for b in block)
    grid = image_grid(np.concatenate(pairs), image_shape, n_cols)
    fig, ax = _grid_axes(grid, 2)
    show_grid(ax, grid, title or "each pair of rows: originals (top), reconstructions (bottom)")
    return save_figure(fig, path, grayscale=True)


def plot_samples(x_samples, image_shape, path, n_cols=10, title=None):
    r"""A grid of generated images (N, D), e.g. decode(z) for z ~ N(0, I)."""
    grid = image_grid(x_samples, image_shape, n_cols)
    fig, ax = _grid_axes(grid, 2)
    show_grid(ax, grid, title or "samples: mean of p(x|z), z ~ N(0, I)")
    return save_figure(fig, path, grayscale=True)


def plot_loss_curves(history, path, title=None):
    r"""Loss curves per epoch: rec, KL and -ELBO, train and test, in three panels.

    Parameters
    ----------
    history : list of per-epoch dicts as returned by :func:`vae_numpy.train.train` (keys
        ``epoch``, ``train_rec``, ``train_kl``, ``train_neg_elbo``, ``train_objective``, and
        optionally ``test_rec``, ``test_kl``, ``test_neg_elbo``). The objective is drawn
        dashed in the -ELBO panel when it differs from the -ELBO.
    path : output PNG.
    """
    if not history:
        raise ValueError("plot_loss_curves needs a non-empty history")
    epochs = [r["epoch"] for r in history]
    fig = new_figure((12, 3.6))
    panels = [("rec", "reconstruction  -E_q log p(x|z)"), ("kl", "KL(q(z|x) || p(z))"),
              ("neg_elbo", "-ELBO = rec + KL")]
    for i, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        marker = "o" if len(epochs) <= 30 else None
        ax.plot(epochs, [r[f"train_{key}"] for r in history], marker=marker, ms=3, label="train")
        if f"test_{key}" in history[0]:
            ax.plot(epochs, [r[f"test_{key}"] for r in history], marker=marker, ms=3,
                    label="test")
        if key == "neg_elbo" and any(abs(r["train_objective"] - r["train_neg_elbo"]) > 1e-6
                                     for r in history):
            ax.plot(epochs, [r["train_objective"] for r in history], ls="--", color="gray",
                    label="train objective")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per example")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_latent(mu, labels, path, title=None, max_points=3000):
    r"""Posterior means colored by label; the first two principal components when J > 2.

    Parameters
    ----------
    mu : (N, J) posterior means (vae_numpy.encode(params, x, cfg)[0]).
    labels : (N,) integer labels or None.
    path : output PNG.
    max_points : plot at most this many points (the first ones) to keep the figure light.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"mu has shape {mu.shape}, expected (N, J)")
    labels = None if labels is None else np.asarray(labels)[:max_points]
    mu = mu[:max_points]
    j = mu.shape[1]
    if j > 2:
        points, ratio = principal_components(mu, 2)
        xlabel = f"PC 1 ({100 * ratio[0]:.1f}% of variance)"
        ylabel = f"PC 2 ({100 * ratio[1]:.1f}% of variance)"
        default_title = f"posterior means, first 2 principal components of J = {j}"
    elif j == 2:
        points, xlabel, ylabel = mu, "mu_1", "mu_2"
        default_title = "posterior means (J = 2)"
    else:
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(mu))
        y = (labels if labels is not None else np.zeros(len(mu))) + jitter
        points, xlabel, ylabel = np.stack([mu[:, 0], y], axis=1), "mu_1", "label (jittered)"
        default_title = "posterior means (J = 1)"
    fig = new_figure((6.4, 5.6))
    ax = fig.add_subplot()
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.6)
    else:
        cmap = "tab10" if labels.max() < 10 else "viridis"
        sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap=cmap, s=3, alpha=0.7,
                        vmin=-0.5, vmax=max(9, labels.max()) + 0.5)
        fig.colorbar(sc, ax=ax, ticks=np.unique(labels), label="label")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or default_title, fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_manifold(images, image_shape, path, n, title=None):
    r"""The decoded 2-D latent manifold: images (n * n, D) decoded from manifold_latents(n).

    Row r, column c shows decode(z) for the z of :func:`manifold_latents` at r * n + c
    (z_1 grows to the right, z_2 upward).
    """
    images = np.asarray(images)
    if images.ndim != 2 or len(images) != n * n:
        raise ValueError(f"plot_manifold needs (n * n, D) = ({n * n}, D) images, got "
                         f"{images.shape}")
    grid = image_grid(images, image_shape, n, pad=0)
    h, w = image_shape
    fig, ax = _grid_axes(grid, max(1, 600 // grid.shape[1]))
    show_grid(ax, grid, title or "decoded manifold: z = norm.ppf of a grid on (0, 1)^2")
    z = manifold_latents(n)[:n, 0]                          # z_1 of the columns, increasing
    every = max(1, n // 5)
    cols = np.arange(0, n, every)
    ax.set_xticks(cols * w + (w - 1) / 2, [f"{z[c]:.2f}" for c in cols], fontsize=8)
    ax.set_yticks(cols * h + (h - 1) / 2, [f"{-z[c]:.2f}" for c in cols], fontsize=8)
    ax.set_xlabel("z_1")
    ax.set_ylabel("z_2")
    return save_figure(fig, path, grayscale=True)


# The names these had before diagnostic_plots used them (private then).
_figure = new_figure
_show_grid = show_grid
