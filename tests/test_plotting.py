"""Plotting: the arrays behind the figures are right, and every figure is written as a PNG."""
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import norm

from vae_numpy.figures.plotting import (image_grid, manifold_latents, plot_latent, plot_loss_curves,
                                plot_manifold, plot_reconstructions, plot_samples,
                                principal_components)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# float64 round-off of an SVD / a projection on O(1) data.
LINALG_TOL = 1e-10


def assert_png(path):
    data = open(path, "rb").read()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > 2000, f"{path} is suspiciously small ({len(data)} bytes)"


def history(n=4, test=True):
    records = []
    for e in range(1, n + 1):
        r = {"epoch": e, "train_rec": 100 / e, "train_kl": 10 + e}
        r["train_neg_elbo"] = r["train_objective"] = r["train_rec"] + r["train_kl"]
        if test:
            r.update(test_rec=90 / e, test_kl=11 + e, test_neg_elbo=90 / e + 11 + e)
        records.append(r)
    return records


def test_image_grid_places_each_image():
    images = np.arange(5)[:, None] * np.ones((5, 6)) / 10          # image k is all k / 10
    grid = image_grid(images, (2, 3), n_cols=3, pad=1, fill=0.5)
    assert grid.shape == (2 * 3 - 1, 3 * 4 - 1)
    assert np.all(grid[0:2, 4:7] == 0.1)      # row 0, column 1 holds image 1
    assert np.all(grid[3:5, 4:7] == 0.4)      # row 1, column 1 holds image 4
    assert np.all(grid[3:5, 8:11] == 0.5)     # empty cell
    assert np.all(grid[2, :] == 0.5)          # padding between rows
    with pytest.raises(ValueError, match="expected \\(N, 6\\)"):
        image_grid(images[:, :5], (2, 3), 3)


def test_principal_components_of_known_data():
    rng = np.random.default_rng(0)
    # Variance 9 along (1, 1, 0)/sqrt(2), 1 along (0, 0, 1), 0 elsewhere.
    a = (3 * rng.standard_normal((4000, 1)) * np.array([[1, 1, 0]]) / np.sqrt(2)
         + rng.standard_normal((4000, 1)) * np.array([[0, 0, 1]]) + 5)
    proj, ratio = principal_components(a, 2)
    evals, evecs = np.linalg.eigh(np.cov(a.T))             # ascending
    evals, evecs = evals[::-1], evecs[:, ::-1]
    np.testing.assert_allclose(ratio, evals[:2] / evals.sum(), rtol=LINALG_TOL)
    np.testing.assert_allclose(proj.var(axis=0, ddof=1), evals[:2], rtol=LINALG_TOL)
    v1 = evecs[:, 0] * np.sign(evecs[np.abs(evecs[:, 0]).argmax(), 0])   # + largest loading
    assert abs(v1 @ np.array([1, 1, 0]) / np.sqrt(2)) > 0.999           # the planted direction
    np.testing.assert_allclose(proj[:, 0], (a - a.mean(axis=0)) @ v1, atol=LINALG_TOL)
    assert abs(np.corrcoef(proj.T)[0, 1]) < LINALG_TOL


def test_manifold_latents_are_normal_quantiles_in_image_order():
    n = 6
    z = manifold_latents(n)
    assert z.shape == (n * n, 2)
    p = (np.arange(n) + 0.5) / n
    np.testing.assert_allclose(norm.cdf(z[:n, 0]), p, rtol=1e-12)         # first row: z_1 grows
    np.testing.assert_allclose(norm.cdf(z[::n, 1]), p[::-1], rtol=1e-12)   # first col: z_2 falls
    assert np.all(z[:n, 1] == z[0, 1])                                     # a row has one z_2
    np.testing.assert_allclose(z[:n, 0], -z[:n, 0][::-1], atol=1e-12)      # symmetric about 0


@pytest.mark.figures
def test_every_figure_is_written(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((12, 28 * 28))
    plot_reconstructions(x, 1 - x, (28, 28), tmp_path / "rec.png", n_cols=5)
    plot_samples(x, (28, 28), tmp_path / "samples.png", n_cols=4)
    plot_loss_curves(history(), tmp_path / "loss.png")
    plot_loss_curves(history(test=False), tmp_path / "loss_train_only.png")
    labels = np.arange(300) % 10
    plot_latent(rng.standard_normal((300, 5)), labels, tmp_path / "latent5.png")
    plot_latent(rng.standard_normal((300, 2)), labels, tmp_path / "latent2.png")
    plot_latent(rng.standard_normal((300, 1)), None, tmp_path / "latent1.png")
    plot_manifold(rng.random((16, 28 * 28)), (28, 28), tmp_path / "manifold.png", 4)
    names = ["rec", "samples", "loss", "loss_train_only", "latent5", "latent2", "latent1",
             "manifold"]
    for name in names:
        assert_png(tmp_path / f"{name}.png")
    assert sorted(os.listdir(tmp_path)) == sorted(f"{n}.png" for n in names)   # no temp files


def test_bad_figure_inputs(tmp_path):
    x = np.zeros((4, 784))
    with pytest.raises(ValueError, match="x_rec has shape"):
        plot_reconstructions(x, x[:3], (28, 28), tmp_path / "r.png")
    with pytest.raises(ValueError, match="non-empty history"):
        plot_loss_curves([], tmp_path / "l.png")
    with pytest.raises(ValueError, match="\\(n \\* n, D\\) = \\(9, D\\)"):
        plot_manifold(x, (28, 28), tmp_path / "m.png", 3)
    assert os.listdir(tmp_path) == []


def test_package_imports_without_matplotlib():
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import vae_numpy, vae_numpy.train, vae_numpy.files.checkpoint\n"
            "import vae_numpy.figures.plotting\n"
            "try:\n"
            "    vae_numpy.figures.plotting.plot_samples([[0.0]], (1, 1), 'x.png', 1)\n"
            "except ImportError as err:\n"
            "    assert 'pip install matplotlib' in str(err), err\n"
            "    print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
