r"""Getting MNIST-like arrays in: datasets, file formats, binarization, synthetic digits.

    datasets   load_dataset, Dataset, the conversion to [0, 1], minibatches
    idx        the IDX format of MNIST: read_idx, write_idx
    npfiles    the .npz / .npy readers the package uses for every file it reads
    binarize   static, dynamic, threshold and the fixed-seed test-set binarization
    synthetic  the seeded MNIST-like digit renderer (no download)

The public names of all of them are importable from ``vae_numpy.data``.
"""
from .binarize import (bernoulli_draw, binarize_dynamic, binarize_static, binarize_test_set,
                       binarize_threshold, check_probabilities)
from .datasets import (KERAS_KEYS, MNIST_IDX_NAMES, MNIST_SOURCES, Dataset, load_dataset,
                       load_npy, load_npz, make_dataset, minibatches, synthetic_dataset,
                       to_unit_interval)
from .idx import read_idx, write_idx
from .synthetic import (BILINEAR_STD, BLUR_SIGMAS, BOX_FRACTION, DIGIT_TEMPLATES,  # noqa: F401
                        JITTER, SPLINE_STEPS, synthetic_digits)

__all__ = [
    "Dataset", "make_dataset", "read_idx", "write_idx", "load_npz", "load_npy", "load_dataset",
    "to_unit_interval", "binarize_static", "binarize_dynamic", "binarize_threshold",
    "binarize_test_set", "synthetic_digits", "synthetic_dataset", "minibatches",
    "check_probabilities", "bernoulli_draw", "KERAS_KEYS", "MNIST_SOURCES",
]
