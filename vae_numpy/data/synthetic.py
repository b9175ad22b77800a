r"""Synthetic MNIST-like handwritten digits, rendered from stroke templates (no download).

Shape letters: n digits, S x S pixels (S = 28 like MNIST).

    images, labels = synthetic_digits(n, seed=0)     # (n, S, S) float64 in [0, 1], (n,) int64

How a digit is drawn (:func:`synthetic_digits`): its class's template (control points and
strokes) is jittered and given a random width, slant and rotation; the strokes are sampled
along Catmull-Rom splines, scaled so the longest side is 16-20 px of 28 and centred by their
centre of mass as in MNIST, splatted bilinearly onto the pixel grid, then blurred with a pen
width and scaled by a pen pressure, on an exactly-0 background. Same seed, same digits.

:func:`vae_numpy.data.synthetic_dataset` turns these into a train/test :class:`Dataset`;
``vae_numpy.data.synthetic_digits`` is this function, re-exported.
"""
import numpy as np
from scipy import ndimage


# ----------------------------------------------------------------------------- templates
#
# Each digit class has one or more templates: control points on a grid of 10 units of
# height (x right, y down) and strokes, each a list of point indices. A stroke is a
# Catmull-Rom spline through its points; corners are where one stroke ends and the next
# starts at the same point (shared index, so jitter keeps them connected). A stroke whose
# index list ends with its first index is closed (0, 8).

DIGIT_TEMPLATES = {
    0: [
        ([(3.5, 0), (6, 1.5), (6.5, 5), (5.5, 8.8), (3, 10), (0.8, 8.5), (0.3, 5), (1.2, 1.5)],
         [[0, 1, 2, 3, 4, 5, 6, 7, 0]]),
        ([(4, 0.2), (5.6, 2), (5.5, 6), (4, 9.5), (2.2, 10), (0.8, 7.5), (1, 3.5), (2.5, 0.5),
          (4.6, 0.8)],
         [[0, 1, 2, 3, 4, 5, 6, 7, 8]]),
    ],
    1: [
        ([(3.5, 0), (3.3, 5), (3.1, 10)], [[0, 1, 2]]),
        ([(1.6, 2), (3.5, 0), (3.3, 5), (3.1, 10)], [[0, 1], [1, 2, 3]]),
        ([(1.6, 2), (3.5, 0), (3.3, 5), (3.1, 10), (1.3, 10), (4.9, 10)],
         [[0, 1], [1, 2, 3], [4, 3, 5]]),
    ],
    2: [
        ([(0.8, 2.5), (2.5, 0.3), (5, 0.3), (6, 2.5), (4.5, 5.5), (2, 8), (0.3, 10), (3.5, 9.8),
          (6.5, 10)],
         [[0, 1, 2, 3, 4, 5, 6], [6, 7, 8]]),
        ([(0.5, 2), (3, 0), (5.8, 1.2), (5.5, 4), (2.5, 7.5), (0.5, 9.8), (1.8, 8.6), (2.5, 9.8),
          (4.5, 9.9), (6.8, 9.6)],
         [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]),
    ],
    3: [
        ([(0.8, 1.2), (3, 0), (5.5, 0.6), (5.8, 2.8), (3.8, 4.6), (2.4, 4.8), (5, 5.2),
          (6.3, 7.5), (4.8, 9.6), (2, 10), (0.3, 8.8)],
         [[0, 1, 2, 3, 4, 5], [5, 6, 7, 8, 9, 10]]),
        ([(0.8, 0.3), (3.3, 0.2), (5.8, 0.3), (2.8, 4.2), (5.5, 5), (6.3, 7.5), (4.8, 9.6),
          (2, 10), (0.3, 8.8)],
         [[0, 1, 2], [2, 3], [3, 4, 5, 6, 7, 8]]),
    ],
    4: [
        ([(4.3, 0), (2.2, 3.5), (0.2, 6.5), (3.5, 6.5), (6.8, 6.3), (5, 2.5), (4.9, 6.5),
          (4.8, 10)],
         [[0, 1, 2], [2, 3, 4], [5, 6, 7]]),
        ([(1, 0), (0.7, 3.2), (0.8, 6), (3.5, 6.1), (6.5, 5.8), (5.2, 0), (5.1, 5), (5, 10)],
         [[0, 1, 2], [2, 3, 4], [5, 6, 7]]),
    ],
    5: [
        ([(6, 0.2), (3.8, 0.1), (1.5, 0), (1.2, 2.2), (1, 4.3), (3.5, 3.7), (6, 5), (6.5, 7.5),
          (5, 9.6), (2.5, 10), (0.3, 9)],
         [[2, 1, 0], [2, 3, 4], [4, 5, 6, 7, 8, 9, 10]]),
        ([(5.5, 0), (3.5, 0.2), (1.5, 0.3), (1.2, 4.5), (4, 4.2), (6, 6), (5.5, 8.8), (3, 10),
          (0.5, 9.2)],
         [[0, 1, 2], [2, 3], [3, 4, 5, 6, 7, 8]]),
    ],
    6: [
        ([(5.5, 0), (3, 1.8), (1, 5), (0.6, 8), (2.5, 10), (5, 9.6), (6.2, 7.5), (5, 5.5),
          (2.8, 5.3), (0.9, 6.8)],
         [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]),
        ([(4.5, 0), (2.5, 3), (1.2, 6.5), (2, 9.5), (4.5, 9.8), (5.5, 7.5), (4, 5.8), (1.8, 7)],
         [[0, 1, 2, 3, 4, 5, 6, 7]]),
    ],
    7: [
        ([(0.3, 0.5), (3.5, 0.3), (6.5, 0.2), (4.5, 4), (3.2, 7), (2.5, 10)],
         [[0, 1, 2], [2, 3, 4, 5]]),
        ([(0.3, 0.5), (3.5, 0.3), (6.5, 0.2), (4.5, 4), (3.2, 7), (2.5, 10), (2.2, 5.2),
          (4, 5.1), (5.8, 4.9)],
         [[0, 1, 2], [2, 3, 4, 5], [6, 7, 8]]),
        ([(0.2, 1.8), (0.3, 0.5), (3.5, 0.3), (6.5, 0.2), (5.5, 4), (4.6, 7), (4.2, 10)],
         [[0, 1], [1, 2, 3], [3, 4, 5, 6]]),
    ],
    8: [
        ([(5.5, 1.2), (3.2, 0), (1, 1.3), (1.3, 3.5), (3.5, 5), (6, 6.8), (5.5, 9.3),
          (3.3, 10), (0.8, 9), (0.7, 6.8), (5.8, 3.3)],
         [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 4, 10, 0]]),
    ],
    9: [
        ([(6, 1.8), (4, 0), (1.3, 0.6), (0.5, 3), (2.2, 5), (4.8, 4.6), (6, 2.8), (6.1, 0.5),
          (5.8, 5), (5, 10)],
         [[0, 1, 2, 3, 4, 5, 6], [7, 8, 9]]),
        ([(6, 1.8), (4, 0), (1.3, 0.6), (0.5, 3), (2.2, 5), (4.8, 4.6), (6, 2.8), (6.1, 0.5),
          (6, 5), (5, 8.5), (3, 10)],
         [[0, 1, 2, 3, 4, 5, 6], [7, 8, 9, 10]]),
    ],
}

SPLINE_STEPS = 10          # samples per spline segment (<= ~1 px apart at 20 px height)
JITTER = 0.35              # std of control-point jitter, template units (10 = height)
BOX_FRACTION = 20 / 28     # MNIST: longest side of the digit fits a 20 x 20 box
BLUR_SIGMAS = (0.8, 1.0, 1.2)    # pen widths in pixels at 28 x 28 (one per digit)
BILINEAR_STD = 0.4               # blur added by the bilinear splat, pixels


def _catmull_rom_basis(n_points, closed):
    r"""Matrix ``(P, K)`` mapping K control points to P samples of a Catmull-Rom spline.

    Segment i from point i to i+1 at t in [0, 1):
    ``c(t) = 0.5 * [(-t + 2t**2 - t**3) P[i-1] + (2 - 5t**2 + 3t**3) P[i]
    + (t + 4t**2 - 3t**3) P[i+1] + (-t**2 + t**3) P[i+2]]``.
    Open ends use reflected ghost points ``P[-1] = 2 P[0] - P[1]``.
    """
    t = np.arange(SPLINE_STEPS) / SPLINE_STEPS
    w = 0.5 * np.stack([-t + 2 * t**2 - t**3, 2 - 5 * t**2 + 3 * t**3,
                        t + 4 * t**2 - 3 * t**3, -t**2 + t**3], axis=1)   # (S, 4)
    n_seg = n_points if closed else n_points - 1
    basis = np.zeros((n_seg * SPLINE_STEPS + 1, n_points))
    for i in range(n_seg):
        rows = slice(i * SPLINE_STEPS, (i + 1) * SPLINE_STEPS)
        for j, k in enumerate(range(i - 1, i + 3)):
            basis[rows] += _ghost_weights(k, n_points, closed)[None, :] * w[:, j:j + 1]
    basis[-1] = _ghost_weights(n_seg, n_points, closed)
    return basis


def _ghost_weights(k, n_points, closed):
    r"""Weights over the K control points that express point ``k`` (maybe a ghost)."""
    e = np.zeros(n_points)
    if closed:
        e[k % n_points] = 1
    elif k < 0:
        e[0], e[1] = 2, -1
    elif k >= n_points:
        e[-1], e[-2] = 2, -1
    else:
        e[k] = 1
    return e


def _template_basis(strokes, n_points):
    r"""Stacked spline bases ``(P, K)`` of all strokes and the stroke id of each sample."""
    bases, ids = [], []
    for s, stroke in enumerate(strokes):
        closed = len(stroke) > 2 and stroke[-1] == stroke[0]
        idx = stroke[:-1] if closed else stroke
        local = _catmull_rom_basis(len(idx), closed)
        full = np.zeros((local.shape[0], n_points))
        np.add.at(full.T, idx, local.T)
        bases.append(full)
        ids.append(np.full(local.shape[0], s))
    return np.concatenate(bases), np.concatenate(ids)


def _random_affine(rng, n):
    r"""Per-digit 2 x 2 matrices ``(n, 2, 2)``: width, slant (shear) and rotation."""
    width = rng.uniform(0.75, 1.25, n)
    shear = rng.normal(0.15, 0.2, n)           # x += shear * height above centre
    angle = np.deg2rad(rng.normal(0, 6, n))
    c, s = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    shear_m = np.zeros((n, 2, 2))
    shear_m[:, 0, 0], shear_m[:, 0, 1], shear_m[:, 1, 1] = width, -shear, 1
    return rot @ shear_m


def _digit_strokes(rng, template, n, image_size):
    r"""Sample points ``(n, P, 2)`` in pixel (x, y) coordinates and their ink weights ``(n, P)``.

    The longest side is scaled to 16-20 px of 28, and the ink's centre of mass is moved
    to the image centre plus a normal offset of std 0.5 px, as in MNIST.
    """
    points, strokes = template
    ctrl = np.asarray(points, dtype=float)                            # (K, 2)
    basis, stroke_id = _template_basis(strokes, len(ctrl))
    ctrl = ctrl + JITTER * rng.standard_normal((n,) + ctrl.shape)     # (n, K, 2)
    pts = np.einsum("pk,nkc->npc", basis, ctrl)                       # (n, P, 2)
    pts = (pts - 5.0) @ _random_affine(rng, n).transpose(0, 2, 1)
    extent = (pts.max(axis=1) - pts.min(axis=1)).max(axis=1)          # (n,)
    side = BOX_FRACTION * image_size * rng.uniform(0.8, 1.0, n)
    pts = pts * (side / np.maximum(extent, 1e-9))[:, None, None]      # pixels
    weight = _ink_weights(pts, stroke_id)
    com = (pts * weight[..., None]).sum(1) / weight.sum(1)[:, None]   # (n, 2)
    centre = (image_size - 1) / 2 + rng.normal(0, 0.5 * image_size / 28, (n, 2))
    return pts - com[:, None, :] + centre[:, None, :], weight


def _ink_weights(pts, stroke_id):
    r"""Ink per sample ``(n, P)``: half the length of each adjacent segment, in pixels."""
    seg = np.linalg.norm(np.diff(pts, axis=1), axis=2)                # (n, P-1)
    seg *= stroke_id[1:] == stroke_id[:-1]                            # no ink between strokes
    weight = np.zeros(pts.shape[:2])
    weight[:, 1:] += seg / 2
    weight[:, :-1] += seg / 2
    return weight


def _splat(pts, weight, image_size):
    r"""Ink density ``(n, S, S)``: each point's weight spread bilinearly onto 4 pixels."""
    n, p, _ = pts.shape
    x0 = np.floor(pts).astype(np.int64)
    frac = pts - x0
    img = np.zeros(n * image_size * image_size)
    base = np.repeat(np.arange(n) * image_size * image_size, p)
    for dx in (0, 1):
        for dy in (0, 1):
            col, row = (x0[..., 0] + dx).ravel(), (x0[..., 1] + dy).ravel()
            w = (np.abs(1 - dx - frac[..., 0]) * np.abs(1 - dy - frac[..., 1]) * weight).ravel()
            inside = (col >= 0) & (col < image_size) & (row >= 0) & (row < image_size)
            flat = base[inside] + row[inside] * image_size + col[inside]
            img += np.bincount(flat, w[inside], minlength=img.size)
    return img.reshape(n, image_size, image_size)


def _ink_to_intensity(rng, density, image_size):
    r"""Blur with a per-digit pen width, then ``clip(gain * density - 0.5, 0, 1)``.

    A straight line of unit ink per pixel blurred by a Gaussian of std ``sigma`` (on top
    of the splat's ``BILINEAR_STD``) peaks at
    ``peak = 1 / (sqrt(2 pi) * sqrt(sigma**2 + BILINEAR_STD**2))``;
    ``gain = pressure / peak`` with pressure in
    [1.6, 2.8] saturates the stroke core for every pen width and leaves anti-aliased
    edges. The offset 0.5 makes the background exactly 0, like MNIST.
    """
    n = len(density)
    pen = rng.integers(len(BLUR_SIGMAS), size=n)
    pressure = rng.uniform(1.6, 2.8, n)
    out = np.empty_like(density)
    for k, sigma in enumerate(BLUR_SIGMAS):
        sel = pen == k
        sigma = sigma * image_size / 28
        blurred = ndimage.gaussian_filter(density[sel], (0, sigma, sigma), truncate=3.0)
        peak = 1 / (np.sqrt(2 * np.pi) * np.hypot(sigma, BILINEAR_STD))
        out[sel] = blurred * (pressure[sel] / peak)[:, None, None]
    return np.clip(out - 0.5, 0.0, 1.0)


def synthetic_digits(n, seed=0, image_size=28):
    r"""Seeded MNIST-like handwritten digits 0-9, no download needed.

    Each class has hand-designed stroke templates (splines through control points: 0 an
    oval, 1 a bar with optional flag and base, 4 open or closed, 7 with or without a bar,
    8 two loops, ...). Every digit gets jittered control points, a random width, slant
    and rotation, a pen width and pressure; it is then scaled so its longest side is
    16-20 px of 28 and centred by its centre of mass (offset std 0.5 px), as in MNIST, and the
    ink is rendered anti-aliased with an exactly-0 background.

    Parameters
    ----------
    n : int
        Number of digits. Labels are ``arange(n) % 10`` shuffled: counts differ by <= 1.
    seed : int or numpy.random.SeedSequence
        Same seed, same ``n``, same digits.
    image_size : int
        Side S of the square images (28 like MNIST).

    Returns
    -------
    images : ndarray, shape (n, S, S), float64 in [0, 1]
    labels : ndarray, shape (n,), int64 in 0..9
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)       # (n,)
    variant = rng.random(n)
    images = np.zeros((n, image_size, image_size))                      # (n, S, S)
    for digit, templates in DIGIT_TEMPLATES.items():
        which = np.minimum((variant * len(templates)).astype(int), len(templates) - 1)
        for v, template in enumerate(templates):
            sel = np.flatnonzero((labels == digit) & (which == v))
            if sel.size:
                pts, weight = _digit_strokes(rng, template, sel.size, image_size)
                images[sel] = _splat(pts, weight, image_size)
    return _ink_to_intensity(rng, images, image_size), labels
