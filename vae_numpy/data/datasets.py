r"""Getting MNIST-like arrays in: the datasets, their sources, and the conversion to [0, 1].

Shape letters: N examples, H x W pixels, D = H * W data dimensions, B batch.

Every loader ends in a :class:`Dataset` whose images are float arrays ``(N, D)`` in
[0, 1] and whose labels are int64 ``(N,)`` or None. Nothing here rescales silently:
uint8 is divided by 255, float input must already lie in [0, 1], anything else is an
error that says how to fix it (see :func:`to_unit_interval`).

Sources understood by :func:`load_dataset`:

- ``"synthetic"``: MNIST-like handwritten digits drawn by :func:`synthetic_digits`
  (no download, seeded);
- a directory with the four MNIST IDX files (``train-images-idx3-ubyte`` etc., raw or gz);
- an ``.npz`` in the Keras layout (``x_train, y_train, x_test, y_test``) or any key names;
- an ``.npy`` or a single IDX image file (test split = a held-out tail, no labels).

The IDX format is :mod:`vae_numpy.data.idx`, the npz/npy readers under it
:mod:`vae_numpy.data.npfiles`, binarization :mod:`vae_numpy.data.binarize`, the digit renderer
:mod:`vae_numpy.data.synthetic`; :mod:`vae_numpy.data` re-exports their public names.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from ..files.errors import MissingArrayError
from .idx import read_idx
from .npfiles import NpzFile, read_npy
from .synthetic import synthetic_digits

# ----------------------------------------------------------------------------- npz / npy

KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path, keys=None):
    r"""Read the four arrays of an ``.npz``, Keras layout by default; no conversion.

    Parameters
    ----------
    path : str or os.PathLike
    keys : dict, optional
        Maps any of ``"x_train", "y_train", "x_test", "y_test"`` to the name used in the
        file, e.g. ``{"x_train": "train_images", "x_test": "test_images"}``. Roles not
        given keep their Keras name. A role mapped to None is not read (returns None).

    Returns
    -------
    x_train, y_train, x_test, y_test : ndarray or None
        Raw arrays as stored. Labels (``y_*``) are None when their default key is absent.

    Raises
    ------
    OSError
        The file cannot be opened.
    vae_numpy.files.errors.MissingArrayError (a FileFormatError and a KeyError)
        When ``x_train``/``x_test``, or a label key given explicitly in ``keys``, is not in
        the file; the message lists the arrays the file has.
    vae_numpy.files.errors.FileFormatError (a ValueError)
        Anything else wrong with the content (not a zip, a truncated or object array, a
        header that claims more bytes than the member holds), naming the file.
    """
    keys = dict(keys or {})
    unknown = set(keys) - set(KERAS_KEYS)
    if unknown:
        raise ValueError(f"load_npz: unknown roles {sorted(unknown)} in keys; "
                         f"the roles are {list(KERAS_KEYS)}")
    with NpzFile(path) as npz:
        out = []
        for role in KERAS_KEYS:
            name = keys.get(role, role)
            optional = role.startswith("y_") and role not in keys
            if name is None or (optional and name not in npz):
                out.append(None)
            elif name not in npz:
                raise MissingArrayError(path, name, npz.names,
                                        f" (needed for {role}); pass keys={{{role!r}: <name>}} "
                                        "to map it")
            else:
                out.append(npz[name])
    return tuple(out)


def load_npy(path):
    r"""Read an ``.npy`` of images ``(N, H, W)`` or ``(N, D)`` as stored (no labels).

    Raises OSError when the file cannot be opened and
    :class:`vae_numpy.files.errors.FileFormatError` (a ValueError naming the file) for bad content:
    not .npy, an object array (no pickles), or a header claiming more bytes than the file has.
    """
    return read_npy(path)


# ----------------------------------------------------------------------------- conversion

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
UINT8_MAX = 255


def _check_float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype {dtype} is not supported; use np.float64 (reference) "
                         "or np.float32 (fast path)")
    return dtype


def to_unit_interval(x, dtype=np.float64, name="x"):
    r"""Return pixel intensities as floats in [0, 1].

    Rules (nothing is rescaled by guesswork):

    - uint8: ``x / 255`` (so 0 -> 0.0 and 255 -> 1.0 exactly);
    - other integer types: taken as 8-bit intensities stored in a wider type, so values
      must lie in 0..255 and are divided by 255; anything else is an error (16-bit images:
      divide by 65535 yourself). An integer array whose values are only 0 and 1 is
      ambiguous (binarized pixels or very dark 8-bit ones) and is an error too: pass
      ``x.astype(bool)`` for binary pixels;
    - bool: False -> 0.0, True -> 1.0;
    - float: must already lie in [0, 1]; it is only cast to ``dtype``.

    NaN and inf are rejected.

    Parameters
    ----------
    x : array_like, any shape
    dtype : {np.float64, np.float32}
    name : str
        Name of the array in error messages.

    Returns
    -------
    ndarray, shape of ``x``, dtype ``dtype``
    """
    dtype = _check_float_dtype(dtype)
    x = np.asarray(x)
    if x.dtype == np.bool_:
        return x.astype(dtype)
    if x.dtype == np.uint8:
        return x.astype(dtype) / dtype.type(UINT8_MAX)
    if np.issubdtype(x.dtype, np.integer):
        return _integer_to_unit(x, dtype, name)
    if np.issubdtype(x.dtype, np.floating):
        check_unit_float(x, name)
        return x.astype(dtype)
    raise TypeError(f"{name} has dtype {x.dtype}; expected uint8, another integer type, "
                    "bool or float pixel intensities")


def _integer_to_unit(x, dtype, name):
    lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
    if lo < 0 or hi > UINT8_MAX:
        raise ValueError(f"{name} has dtype {x.dtype} with values in [{lo}, {hi}]; integer "
                         "pixels must be 8-bit intensities in 0..255 (divide by your own "
                         "maximum and pass floats in [0, 1] otherwise)")
    if hi == 1:
        raise ValueError(f"{name} has dtype {x.dtype} with values only 0 and 1: ambiguous. "
                         "Pass x.astype(bool) if these are binarized pixels, or floats "
                         "in [0, 1]")
    return x.astype(dtype) / dtype.type(UINT8_MAX)


def check_unit_float(x, name):
    if x.size == 0:
        return
    if not np.all(np.isfinite(x)):
        n_bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name} contains {n_bad} NaN or inf values; pixel intensities "
                         "must be finite numbers in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} has float values in [{lo:g}, {hi:g}], outside [0, 1]; "
                         "divide 0..255 pixels by 255, or rescale to [0, 1]")


def _labels_to_int64(y, n, name):
    r"""Return labels as int64 ``(N,)``; integral floats are accepted, one-hot is not."""
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        hint = " (one-hot? pass y.argmax(axis=1))" if y.ndim == 2 else ""
        raise ValueError(f"{name} has shape {y.shape}; expected ({n},), one integer label "
                         f"per image{hint}")
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        if not (np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            raise ValueError(f"{name} has dtype {y.dtype} with non-integer values; "
                             "labels must be integer class indices")
    return y.astype(np.int64)


def _images_to_flat(x, image_shape, name):
    r"""Return ``(x (N, D), (H, W))`` from images ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, D)``."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 3:
        shape = x.shape[1:]
        if image_shape is not None and tuple(image_shape) != shape:
            raise ValueError(f"{name} has images of shape {shape} but image_shape="
                             f"{tuple(image_shape)} was given; drop the argument")
        return x.reshape(x.shape[0], -1), shape
    if x.ndim != 2:
        raise ValueError(f"{name} has shape {x.shape}; expected images (N, H, W), "
                         "(N, H, W, 1) or flattened (N, D)")
    return x, _infer_image_shape(x.shape[1], image_shape, name)


def _infer_image_shape(d, image_shape, name):
    r"""``(H, W)`` for ``D`` pixels: ``image_shape`` if given, else square, else ``(1, D)``."""
    if image_shape is not None:
        h, w = (int(s) for s in image_shape)
        if h * w != d:
            raise ValueError(f"{name} has D = {d} pixels per image but image_shape="
                             f"({h}, {w}) holds {h * w}")
        return (h, w)
    side = math.isqrt(d)
    return (side, side) if side * side == d else (1, d)


# ----------------------------------------------------------------------------- Dataset


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    r"""Train and test images in [0, 1] with optional labels.

    Attributes
    ----------
    x_train : ndarray, shape (N_train, D), float64 or float32, values in [0, 1]
    y_train : ndarray, shape (N_train,), int64, or None
    x_test : ndarray, shape (N_test, D), same dtype as ``x_train``
    y_test : ndarray, shape (N_test,), int64, or None
    image_shape : tuple (H, W) with H * W == D
    """

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    image_shape: tuple


def make_dataset(x_train, y_train, x_test, y_test, dtype=np.float64, image_shape=None):
    r"""Validate and convert raw arrays into a :class:`Dataset` (see :func:`to_unit_interval`)."""
    test_is_images = np.ndim(x_test) != 2     # else flat: only its D must match x_train's
    x_train, shape = _images_to_flat(x_train, image_shape, "x_train")
    x_test, test_shape = _images_to_flat(x_test, image_shape, "x_test")
    if x_test.shape[1] != x_train.shape[1] or (test_is_images and test_shape != shape):
        raise ValueError(f"x_train images are {shape} (D = {x_train.shape[1]}) but x_test "
                         f"images are {test_shape} (D = {x_test.shape[1]})")
    return Dataset(
        x_train=to_unit_interval(x_train, dtype, "x_train"),
        y_train=_labels_to_int64(y_train, x_train.shape[0], "y_train"),
        x_test=to_unit_interval(x_test, dtype, "x_test"),
        y_test=_labels_to_int64(y_test, x_test.shape[0], "y_test"),
        image_shape=tuple(int(s) for s in shape),
    )


def _split_tail(n, test_fraction):
    r"""Number of training examples when the last ``round(n * test_fraction)`` are held out."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction = {test_fraction}; expected a number in (0, 1)")
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n_test >= n:
        raise ValueError(f"test_fraction = {test_fraction} of {n} images leaves {n - n_test} "
                         f"train and {n_test} test images; both must be at least 1")
    return n - n_test


MNIST_IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# Where a user gets MNIST, for the errors that need it (this package downloads nothing).
MNIST_SOURCES = ("MNIST is not included: download the Keras-layout file "
                 "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz (11 MB), "
                 "or the four IDX files " + ", ".join(f"{n}.gz" for n in MNIST_IDX_NAMES.values())
                 + " into one directory; put it anywhere, e.g. data/mnist.npz, and pass that "
                 "path (or the directory) as --data")


def _find_mnist_files(directory):
    r"""Map each role to the existing file (raw name preferred over ``.gz``) in ``directory``."""
    found, missing = {}, []
    for role, name in MNIST_IDX_NAMES.items():
        candidates = [directory / name, directory / (name + ".gz")]
        existing = [p for p in candidates if p.is_file()]
        if existing:
            found[role] = existing[0]
        else:
            missing.append(name + "[.gz]")
    if missing:
        has = sorted(p.name for p in directory.iterdir())
        raise FileNotFoundError(f"{directory}: missing MNIST IDX files {missing}; the "
                                f"directory has {has}")
    return found


def load_dataset(path_or_name, *, dtype=np.float64, image_shape=None, keys=None,
                 test_fraction=1 / 6, n_train=10000, n_test=2000, seed=0):
    r"""Load images from a name, directory or file into a :class:`Dataset`.

    Parameters
    ----------
    path_or_name : str or os.PathLike
        ``"synthetic"`` (:func:`synthetic_dataset` with ``n_train``, ``n_test``, ``seed``);
        a directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each raw or ``.gz``);
        an ``.npz`` (:func:`load_npz`, with ``keys``); an ``.npy`` or a single IDX image
        file, whose last ``round(N * test_fraction)`` images become the test split
        (deterministic, no shuffling, no labels).
    dtype : {np.float64, np.float32}
    image_shape : tuple (H, W), optional
        For flattened ``(N, D)`` inputs; default square if D is a perfect square, else
        ``(1, D)``.
    keys : dict, optional
        npz key names, see :func:`load_npz`.
    test_fraction : float
        Held-out fraction for ``.npy`` and single IDX files.
    n_train, n_test, seed : int
        For ``"synthetic"`` only.

    Returns
    -------
    Dataset
        ``x_*`` of shape (N, D) in [0, 1] with dtype ``dtype``; ``y_*`` int64 or None.
    """
    dtype = _check_float_dtype(dtype)
    if isinstance(path_or_name, str) and path_or_name == "synthetic":
        return synthetic_dataset(n_train, n_test, seed=seed, dtype=dtype)
    path = Path(path_or_name)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory (pass \"synthetic\" for "
                                f"the built-in digits that need no download). {MNIST_SOURCES}")
    if path.is_dir():
        files = _find_mnist_files(path)
        raw = [read_idx(files[role]) for role in KERAS_KEYS]
        return make_dataset(*raw, dtype=dtype, image_shape=image_shape)
    if path.suffix == ".npz":
        return make_dataset(*load_npz(path, keys), dtype=dtype, image_shape=image_shape)
    x = load_npy(path) if path.suffix == ".npy" else read_idx(path)
    n_tr = _split_tail(len(x), test_fraction)
    return make_dataset(x[:n_tr], None, x[n_tr:], None, dtype=dtype, image_shape=image_shape)


# ----------------------------------------------------------------------------- minibatches


def minibatches(n, batch_size, rng):
    r"""Yield index arrays ``(B,)`` covering ``range(n)`` once, in ``rng.permutation(n)`` order.

    The last batch holds the remaining ``n % batch_size`` indices when that is not zero.
    """
    if n < 0 or batch_size < 1:
        raise ValueError(f"minibatches(n={n}, batch_size={batch_size}): need n >= 0 and "
                         "batch_size >= 1")
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


# ----------------------------------------------------------------------------- synthetic digits
#
# The renderer, synthetic_digits, lives in vae_numpy/data/synthetic.py (imported above, so
# vae_numpy.data.synthetic_digits still works); here it becomes a Dataset.

def synthetic_dataset(n_train=10000, n_test=2000, seed=0, dtype=np.float64):
    r"""A :class:`Dataset` of :func:`synthetic_digits` with independent train and test draws.

    Train and test come from the two children of ``SeedSequence(seed)``, so the test set
    does not depend on ``n_train``.
    """
    train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    x_train, y_train = synthetic_digits(n_train, seed=train_seed)
    x_test, y_test = synthetic_digits(n_test, seed=test_seed)
    return make_dataset(x_train, y_train, x_test, y_test, dtype=dtype)
