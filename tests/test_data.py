r"""Tests for vae_numpy.data: IDX/npz/npy loading, unit-interval conversion, binarization,
synthetic digits, minibatches. None of them needs the real MNIST files."""
import gzip
import struct

import numpy as np
import pytest

from vae_numpy import data

# Monte Carlo bound: a mean of Bernoulli draws is within this many standard errors of
# its expectation (two-sided failure probability ~6e-5 per check at a fixed seed).
N_STANDARD_ERRORS = 4

IDX_CASES = [  # (type code, dtype, example values)
    (0x08, np.uint8, [0, 1, 128, 255]),
    (0x09, np.int8, [-128, -1, 0, 127]),
    (0x0B, np.int16, [-32768, -1, 258, 32767]),
    (0x0C, np.int32, [-2**31, -1, 65536 + 3, 2**31 - 1]),
    (0x0D, np.float32, [-1.5, 0.0, 1e-30, 3.25e7]),
    (0x0E, np.float64, [-1e300, 0.0, np.pi, 1e-300]),
]


def idx_bytes(code, dims, payload):
    r"""An IDX file built by hand: 00 00, type code, ndim, big-endian uint32 dims, data."""
    return struct.pack(f">BBBB{len(dims)}I", 0, 0, code, len(dims), *dims) + payload


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("code, dtype, values", IDX_CASES)
def test_idx_round_trip_every_dtype(tmp_path, code, dtype, values, suffix):
    array = np.array(values * 6, dtype=dtype).reshape(2, 3, 4)
    path = data.write_idx(tmp_path / f"a.idx{suffix}", array)
    back = data.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    raw = path.read_bytes()
    raw = gzip.decompress(raw) if suffix else raw
    assert raw[:4] == bytes([0, 0, code, 3])


def test_read_idx_hand_built_header(tmp_path):
    values = [1000 * i - 5000 for i in range(2 * 3 * 4)]           # big-endian int16
    path = tmp_path / "hand.idx"
    path.write_bytes(idx_bytes(0x0B, (2, 3, 4), struct.pack(">24h", *values)))
    back = data.read_idx(path)
    assert back.shape == (2, 3, 4) and back.dtype == np.int16 and back.dtype.isnative
    assert back[1, 2, 3] == 23 * 1000 - 5000


def test_read_idx_detects_gzip_by_magic_bytes_not_suffix(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"          # no .gz suffix, gzip content
    path.write_bytes(gzip.compress(idx_bytes(0x08, (3,), bytes([7, 0, 9]))))
    np.testing.assert_array_equal(data.read_idx(path), [7, 0, 9])


@pytest.mark.parametrize("content, message", [
    (idx_bytes(0x08, (2, 3), bytes(5)), "truncated"),
    (idx_bytes(0x08, (2, 3), bytes(7)), "trailing bytes"),
    (idx_bytes(0x08, (2, 3), b"")[:9], "truncated IDX header"),
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad IDX magic"),
    (b"\x00\x00\x0A\x01" + struct.pack(">I", 1) + b"\x00", "bad IDX dtype code 0x0A"),
    (b"\x00\x00\x08\x05" + bytes(20) + b"\x00", "5 dimensions"),
    (b"\x1f\x8b\x08\x00garbage", "does not decompress"),
])
def test_read_idx_bad_files_name_the_problem_and_the_file(tmp_path, content, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        data.read_idx(path)
    assert "bad-idx3-ubyte" in str(info.value)


def test_write_idx_rejects_types_idx_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="int64.*cast it to one of"):
        data.write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.int64))


def test_write_idx_leaves_no_temporary_file_and_replaces(tmp_path):
    path = tmp_path / "a.idx"
    data.write_idx(path, np.zeros(3, dtype=np.uint8))
    data.write_idx(path, np.ones(5, dtype=np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.idx"]
    np.testing.assert_array_equal(data.read_idx(path), np.ones(5))


# ----------------------------------------------------------------------------- npz / npy


def small_raw(rng, n_train=12, n_test=6):
    r"""Raw uint8 MNIST-like arrays: x (N, 4, 4), y (N,)."""
    return (rng.integers(0, 256, (n_train, 4, 4), dtype=np.uint8),
            rng.integers(0, 10, n_train, dtype=np.uint8),
            rng.integers(0, 256, (n_test, 4, 4), dtype=np.uint8),
            rng.integers(0, 10, n_test, dtype=np.uint8))


def test_load_npz_keras_layout(tmp_path):
    raw = small_raw(np.random.default_rng(0))
    np.savez(tmp_path / "m.npz", **dict(zip(data.KERAS_KEYS, raw)))
    for got, want in zip(data.load_npz(tmp_path / "m.npz"), raw):
        np.testing.assert_array_equal(got, want)
    ds = data.load_dataset(tmp_path / "m.npz")
    assert ds.x_train.shape == (12, 16) and ds.x_test.shape == (6, 16)
    assert ds.image_shape == (4, 4) and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train, raw[0].reshape(12, 16) / 255)
    np.testing.assert_array_equal(ds.y_test, raw[3])


def test_load_npz_custom_keys_and_missing_labels(tmp_path):
    x_train, _, x_test, _ = small_raw(np.random.default_rng(1))
    np.savez(tmp_path / "c.npz", train_images=x_train, test_images=x_test)
    keys = {"x_train": "train_images", "x_test": "test_images"}
    got = data.load_npz(tmp_path / "c.npz", keys=keys)
    np.testing.assert_array_equal(got[0], x_train)
    np.testing.assert_array_equal(got[2], x_test)
    assert got[1] is None and got[3] is None
    ds = data.load_dataset(tmp_path / "c.npz", keys=keys)
    assert ds.y_train is None and ds.x_test.shape == (6, 16)


def test_load_npz_missing_key_lists_available_keys(tmp_path):
    np.savez(tmp_path / "m.npz", images=np.zeros((2, 4)), labels=np.zeros(2))
    with pytest.raises(KeyError, match=r"x_train.*\['images', 'labels'\]"):
        data.load_npz(tmp_path / "m.npz")
    with pytest.raises(KeyError, match="'lab'.*y_train"):
        data.load_npz(tmp_path / "m.npz", keys={"x_train": "images", "x_test": "images",
                                                "y_train": "lab"})


def test_load_dataset_mnist_directory_raw_and_gz(tmp_path):
    raw = small_raw(np.random.default_rng(2))
    for (role, name), array, suffix in zip(data.MNIST_IDX_NAMES.items(), raw,
                                           ["", ".gz", "", ".gz"]):
        data.write_idx(tmp_path / (name + suffix), array)
    ds = data.load_dataset(tmp_path)
    np.testing.assert_array_equal(ds.x_test, raw[2].reshape(6, 16) / 255)
    np.testing.assert_array_equal(ds.y_train, raw[1])


def test_load_dataset_directory_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        data.load_dataset(tmp_path)


@pytest.mark.parametrize("kind", ["npy", "idx"])
def test_load_dataset_single_file_holds_out_the_tail(tmp_path, kind):
    x = np.random.default_rng(3).integers(0, 256, (12, 3, 3), dtype=np.uint8)
    path = tmp_path / f"x.{kind}"
    np.save(path, x) if kind == "npy" else data.write_idx(path, x)
    ds = data.load_dataset(path, test_fraction=0.25)
    np.testing.assert_array_equal(ds.x_train, x[:9].reshape(9, 9) / 255)
    np.testing.assert_array_equal(ds.x_test, x[9:].reshape(3, 9) / 255)
    assert ds.y_train is None and ds.y_test is None and ds.image_shape == (3, 3)
    assert data.load_dataset(path).x_test.shape == (2, 9)   # default 1/6


def test_flat_and_image_inputs_agree(tmp_path):
    x = np.random.default_rng(4).random((12, 4, 4))
    np.save(tmp_path / "img.npy", x)
    np.save(tmp_path / "flat.npy", x.reshape(12, 16))
    a, b = data.load_dataset(tmp_path / "img.npy"), data.load_dataset(tmp_path / "flat.npy")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.image_shape == b.image_shape == (4, 4)


def test_flat_image_shape_non_square_and_override(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((12, 6)))
    assert data.load_dataset(tmp_path / "flat.npy").image_shape == (1, 6)
    assert data.load_dataset(tmp_path / "flat.npy", image_shape=(2, 3)).image_shape == (2, 3)
    with pytest.raises(ValueError, match="D = 6 .*holds 4"):
        data.load_dataset(tmp_path / "flat.npy", image_shape=(2, 2))


@pytest.mark.parametrize("x_test", [np.zeros((3, 3, 3)), np.zeros((3, 9))])
def test_train_and_test_image_shapes_must_agree(x_test):
    with pytest.raises(ValueError, match=r"x_train images are \(4, 4\).*x_test images are"):
        data.make_dataset(np.zeros((4, 4, 4)), None, x_test, None)


def test_load_dataset_float32_and_unknown_path():
    ds = data.load_dataset("synthetic", n_train=20, n_test=10, dtype=np.float32)
    assert ds.x_train.dtype == np.float32 and ds.x_train.shape == (20, 784)
    with pytest.raises(FileNotFoundError, match="synthetic"):
        data.load_dataset("/nonexistent/mnist.npz")


# ----------------------------------------------------------------------------- to_unit_interval


def test_uint8_scaling_exact():
    x = np.array([0, 1, 128, 255], dtype=np.uint8)
    out = data.to_unit_interval(x)
    assert out.dtype == np.float64 and out[0] == 0.0 and out[-1] == 1.0
    np.testing.assert_array_equal(out, np.array([0, 1, 128, 255]) / 255.0)
    assert data.to_unit_interval(x, np.float32)[-1] == np.float32(1.0)


def test_float_out_of_range_rejected_with_min_max_and_fix():
    with pytest.raises(ValueError, match=r"x_train has float values in \[0, 255\].*by 255"):
        data.to_unit_interval(np.array([0.0, 255.0]), name="x_train")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_rejected(bad):
    with pytest.raises(ValueError, match="1 NaN or inf"):
        data.to_unit_interval(np.array([0.5, bad]))


def test_other_integer_types():
    np.testing.assert_array_equal(data.to_unit_interval(np.array([0, 51, 255])), [0, 0.2, 1])
    with pytest.raises(ValueError, match=r"values in \[0, 1000\]"):
        data.to_unit_interval(np.array([0, 1000], dtype=np.int16))
    with pytest.raises(ValueError, match="ambiguous.*astype\\(bool\\)"):
        data.to_unit_interval(np.array([0, 1, 1]))
    np.testing.assert_array_equal(data.to_unit_interval(np.array([True, False])), [1.0, 0.0])


# ----------------------------------------------------------------------------- binarization


def test_static_binarization_mean_matches_x_within_standard_errors():
    # 1e6 draws per level: 4 SE is at most 0.002, so P(1) = 1.01 * x fails at x >= 0.3.
    levels = np.array([0.05, 0.3, 0.5, 0.9])
    x = np.repeat(levels, 1_000_000).reshape(4, -1)               # (4, 1000000)
    b = data.binarize_static(x, np.random.default_rng(0))
    assert b.dtype == x.dtype and set(np.unique(b)) <= {0.0, 1.0}
    se = np.sqrt(levels * (1 - levels) / x.shape[1])              # (4,)
    err = np.abs(b.mean(axis=1) - levels)
    assert np.all(err < N_STANDARD_ERRORS * se), \
        f"errors {err} vs {N_STANDARD_ERRORS} SE {N_STANDARD_ERRORS * se}"


def test_static_binarization_deterministic_per_seed_and_keeps_dtype():
    x = np.random.default_rng(5).random((50, 20)).astype(np.float32)
    a = data.binarize_static(x, np.random.default_rng(1))
    b = data.binarize_static(x, np.random.default_rng(1))
    c = data.binarize_static(x, np.random.default_rng(2))
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


def test_binarization_rejects_integers_and_out_of_range():
    with pytest.raises(TypeError, match="to_unit_interval"):
        data.binarize_static(np.array([0, 255], np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="outside"):
        data.binarize_threshold(np.array([0.5, 2.0]))


def test_dynamic_binarization_fresh_draw_each_call():
    x = np.full((64, 100), 0.5)
    rng = np.random.default_rng(0)
    first, second = data.binarize_dynamic(x, rng), data.binarize_dynamic(x, rng)
    assert np.mean(first != second) > 0.4                     # expected 0.5


def test_test_set_binarization_identical_across_calls_and_prefix_stable():
    x = np.random.default_rng(6).random((30, 16))
    a, b = data.binarize_test_set(x), data.binarize_test_set(x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(data.binarize_test_set(x[:10]), a[:10])
    assert np.any(data.binarize_test_set(x, seed=1) != a)


def test_threshold_binarization():
    x = np.array([0.0, 0.5, 0.5001, 1.0], dtype=np.float32)
    out = data.binarize_threshold(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0, 0, 1, 1])


# ----------------------------------------------------------------------------- synthetic digits


@pytest.fixture(scope="module")
def digits():
    return data.synthetic_digits(2000, seed=0)


def test_synthetic_shape_range_labels(digits):
    images, labels = digits
    assert images.shape == (2000, 28, 28) and images.dtype == np.float64
    assert labels.shape == (2000,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 200))
    # Like MNIST: background exactly 0 (about 80% of pixels), every digit has ink.
    assert 0.6 < np.mean(images == 0) < 0.95
    assert np.all(images.reshape(2000, -1).max(axis=1) > 0.9)


def test_synthetic_deterministic_per_seed():
    images, labels = data.synthetic_digits(50, seed=0)
    again, labels_again = data.synthetic_digits(50, seed=0)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, labels_again)
    assert np.any(data.synthetic_digits(50, seed=1)[0] != images)


def class_means(images, labels):
    return np.stack([images[labels == c].reshape(-1, images[0].size).mean(0)
                     for c in range(10)])                          # (10, D)


def test_synthetic_classes_differ(digits):
    means = class_means(*digits)
    dist = np.linalg.norm(means[:, None] - means[None], axis=2)
    off_diagonal = dist[~np.eye(10, dtype=bool)]
    assert off_diagonal.min() > 2.0, f"closest class means only {off_diagonal.min():.2f} apart"


def test_synthetic_labels_mean_something_across_seeds(digits):
    means = class_means(*digits)                                    # trained on seed 0
    images, labels = data.synthetic_digits(1000, seed=1)
    flat = images.reshape(1000, -1)
    predicted = np.argmin(((flat[:, None] - means[None]) ** 2).sum(-1), axis=1)
    accuracy = np.mean(predicted == labels)
    assert accuracy > 0.6, f"nearest-class-mean accuracy {accuracy:.2f} (chance 0.10)"


def test_synthetic_dataset_splits_independent():
    ds = data.synthetic_dataset(n_train=30, n_test=20, seed=3)
    assert ds.x_train.shape == (30, 784) and ds.x_test.shape == (20, 784)
    assert ds.image_shape == (28, 28) and ds.y_test.dtype == np.int64
    other = data.synthetic_dataset(n_train=10, n_test=20, seed=3)
    np.testing.assert_array_equal(other.x_test, ds.x_test)          # test set fixed by seed


# ----------------------------------------------------------------------------- minibatches


@pytest.mark.parametrize("n, batch_size", [(10, 3), (12, 4), (5, 10), (0, 2)])
def test_minibatches_cover_each_index_once(n, batch_size):
    batches = list(data.minibatches(n, batch_size, np.random.default_rng(0)))
    assert len(batches) == -(-n // batch_size)
    assert all(len(b) == batch_size for b in batches[:-1])
    covered = np.concatenate(batches) if batches else np.array([], dtype=int)
    np.testing.assert_array_equal(np.sort(covered), np.arange(n))
