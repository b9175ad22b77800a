"""The reader contract (docs/files.md), reader by reader: OSError for the file system, a
FileFormatError (a ValueError naming the file) for the content, MissingArrayError (also a
KeyError) for a missing array, sizes bounded by what the file holds, nothing non-finite loaded."""
import gzip
import io
import json
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from vae_numpy import VAEConfig, init_params
from vae_numpy.files.checkpoint import load_checkpoint, save_checkpoint
from vae_numpy.crosscheck import (compare, compare_files, make_fixture, read_fixture,
                                  write_fixture)
from vae_numpy.data import load_npy, load_npz, read_idx, write_idx
from vae_numpy.files.errors import FileFormatError, MissingArrayError, NonFiniteError
from vae_numpy.optim import SGD, Adam

CFG = VAEConfig(input_dim=6, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,))
# A reader may hold the file, the arrays it returns and a copy while converting; a header that
# claims a terabyte must not make it hold more than this.
ALLOCATION_BOUND = 4 << 20


def npy_bytes(array):
    f = io.BytesIO()
    np.save(f, array)
    return f.getvalue()


def lying_npy(shape=(10**12,)):
    """An .npy whose header claims `shape` of float64 (8 TB for the default) over 16 bytes."""
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, header)
    return f.getvalue() + b"\0" * 16


def peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
    except FileFormatError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


# --- the file system ---------------------------------------------------------------------------

READERS = {
    "load_checkpoint": load_checkpoint,
    "read_fixture": read_fixture,
    "load_npz": load_npz,
    "load_npy": load_npy,
    "read_idx": read_idx,
}


@pytest.mark.parametrize("reader", list(READERS))
def test_a_missing_file_is_file_not_found(reader, tmp_path):
    with pytest.raises(FileNotFoundError):
        READERS[reader](tmp_path / "nothing.npz")


@pytest.mark.parametrize("reader", ["read_fixture", "load_npz", "load_npy", "read_idx"])
def test_a_directory_is_an_os_error_not_a_format_error(reader, tmp_path):
    with pytest.raises(OSError):
        READERS[reader](tmp_path)


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("content", [b"", b"hello world, not a numpy file",
                                     b"PK\x03\x04" + b"\0" * 40, b"\x1f\x8b\x08garbage"])
def test_garbage_is_a_format_error_naming_the_file(reader, content, tmp_path):
    path = tmp_path / "bad.file"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=r"bad\.file: ") as info:
        READERS[reader](path)
    assert isinstance(info.value, ValueError) and info.value.path == path


def test_compare_files_reads_the_candidate_under_the_contract(tmp_path):
    fixture = tmp_path / "f.npz"
    write_fixture(fixture, make_fixture(CFG, batch=3, seed=0))
    good = (tmp_path / "f.npz").read_bytes()
    (tmp_path / "cand.npz").write_bytes(good[:len(good) // 2])   # a half-written candidate
    with pytest.raises(FileFormatError, match="cand.npz"):
        compare_files(fixture, tmp_path / "cand.npz")
    with pytest.raises(FileNotFoundError):
        compare_files(fixture, tmp_path / "none.npz")


# --- npz / npy ------------------------------------------------------------------------------------

def test_a_missing_array_is_both_a_key_error_and_a_format_error(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((2, 4), np.uint8))
    for cls in (KeyError, ValueError, FileFormatError, MissingArrayError):
        with pytest.raises(cls, match=r"d.npz: no array 'x_train'; the file has \['images'\]"):
            load_npz(path)


def test_an_object_array_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "o.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="has dtype object; vae_numpy files hold numbers"):
        load_npy(path)


def test_an_npy_header_claiming_more_than_the_file_is_refused_before_allocating(tmp_path):
    path = tmp_path / "big.npy"
    path.write_bytes(lying_npy())
    with pytest.raises(FileFormatError, match=r"truncated: its header says shape "
                                              r"\(1000000000000,\) .* but 16 bytes follow"):
        load_npy(path)
    assert peak_bytes(lambda: load_npy(path)) < ALLOCATION_BOUND


def test_an_npz_member_claiming_more_than_it_holds_is_refused_before_allocating(tmp_path):
    path = tmp_path / "big.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x_train.npy", lying_npy())
        z.writestr("x_test.npy", npy_bytes(np.zeros((2, 4))))
    with pytest.raises(FileFormatError, match=r"big.npz: array 'x_train' truncated"):
        load_npz(path)
    assert peak_bytes(lambda: load_npz(path)) < ALLOCATION_BOUND


def test_trailing_bytes_after_an_npy_array_are_refused(tmp_path):
    path = tmp_path / "t.npy"
    path.write_bytes(npy_bytes(np.arange(4.0)) + b"\0")
    with pytest.raises(FileFormatError, match="trailing bytes"):
        load_npy(path)


def test_fortran_order_and_big_endian_arrays_read_like_numpy(tmp_path):
    a = np.asfortranarray(np.arange(12, dtype=">f4").reshape(3, 4))
    np.save(tmp_path / "a.npy", a)
    b = load_npy(tmp_path / "a.npy")
    assert np.array_equal(b, a) and b.dtype == np.float32 and b.flags.writeable


# --- IDX ------------------------------------------------------------------------------------------

def idx_header(dims, code=0x08):
    return struct.pack(f">BBBB{len(dims)}I", 0, 0, code, len(dims), *dims)


def test_a_gzip_idx_that_inflates_past_its_header_is_read_only_that_far(tmp_path):
    """16 MB of zeros after a header that announces 4 bytes: a 16 KB .gz whose content would
    be held whole by gzip.decompress; the reader stops at 4 + 1 bytes."""
    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header((4,)) + bytes(16 << 20)))
    assert path.stat().st_size < 100_000
    with pytest.raises(FileFormatError, match="trailing bytes: .* found more than 4"):
        read_idx(path)
    assert peak_bytes(lambda: read_idx(path)) < ALLOCATION_BOUND


def test_an_idx_header_claiming_terabytes_is_refused_before_allocating(tmp_path):
    raw, gz = tmp_path / "huge-idx3-ubyte", tmp_path / "huge-idx3-ubyte.gz"
    content = idx_header((2**32 - 1, 2**32 - 1, 2**32 - 1)) + bytes(100)
    raw.write_bytes(content)
    gz.write_bytes(gzip.compress(content))
    for path in (raw, gz):
        with pytest.raises(FileFormatError, match="truncated: shape .* found 100"):
            read_idx(path)
        assert peak_bytes(lambda: read_idx(path)) < ALLOCATION_BOUND


def test_a_truncated_gzip_idx_is_a_format_error(tmp_path):
    path = tmp_path / "t-idx1-ubyte.gz"
    write_idx(path, np.arange(200, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(FileFormatError, match="gzip magic bytes 1f 8b but does not decompress"):
        read_idx(path)


# --- checkpoints: JSON entries, non-finite params, the optimizer state ----------------------------

def saved(tmp_path, optimizer=None, **arrays_over):
    """A checkpoint, with some of its arrays replaced by `arrays_over`."""
    params = init_params(CFG, np.random.default_rng(0))
    optimizer = optimizer or Adam()
    path = save_checkpoint(tmp_path / "c.npz", params, CFG, optimizer.init(params),
                           np.random.default_rng(0), [{"epoch": 1, "steps": 3}], {},
                           optimizer)
    if arrays_over:
        with np.load(path) as z:
            arrays = dict(z)
        arrays.update(arrays_over)
        arrays = {k: v for k, v in arrays.items() if v is not None}
        np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("key, value, message", [
    ("config_json", np.array("{not json"), "entry 'config_json' is not valid JSON"),
    ("config_json", np.array("[1, 2]"), "entry 'config_json' must hold a JSON dict, found list"),
    ("config_json", np.array('{"input_dim": -1}'), "entry 'config_json' is not a valid VAEConfig"),
    ("config_json", np.array('{"input_dim": "six"}'), "not a valid VAEConfig"),
    ("config_json", np.zeros(3), "entry 'config_json' must be a 0-d JSON string"),
    ("history_json", np.array("{}"), "entry 'history_json' must hold a JSON list"),
    ("history_json", np.array("[1]"), "must be a list of per-epoch objects"),
    ("extra_json", np.array("[" * 100000), "entry 'extra_json' is not valid JSON"),
    ("optimizer_json", np.array('{"name": "lbfgs"}'), "entry 'optimizer_json' must be"),
    ("optimizer_json", np.array('{"name": "adam", "hyperparameters": {"lr": Infinity}}'),
     r"optimizer hyperparameters \['lr'\] are not finite"),
    ("optimizer_json", np.array('{"name": "adam", "hyperparameters": {"gamma": 1}}'),
     "the saved adam optimizer cannot be rebuilt"),
    ("rng_json", np.array('{"bit_generator": "seed"}'), "names the bit generator 'seed'"),
    ("rng_json", np.array('{"bit_generator": "PCG64", "state": 3}'), "not a valid PCG64 state"),
    ("format_version", np.array("1"), "'format_version' must be a 0-d integer"),
    ("format_version", np.array(7), "has checkpoint format 7, newer than"),
    ("format", None, "is not a vae_numpy checkpoint"),
    ("config_json", None, "no array 'config_json'"),
    ("param/enc.0.W", np.zeros((6, 5)), "do not match the saved config"),
    ("param/enc.0.W", np.full((6, 4), np.nan), r"param 'enc.0.W' has 24 NaN or inf values"),
    ("param/dec.out.b", np.array([np.inf] * 6), r"param 'dec.out.b' has 6 NaN"),
    ("opt/m/enc.0.W", np.full((6, 4), np.nan), r"optimizer state 'm/enc.0.W' has 24 NaN"),
    ("opt/v/enc.0.W", None, r"missing \['v/enc.0.W'\]"),
    ("opt/m/enc.0.W", np.zeros((4, 6)), r"'opt/m/enc.0.W' has shape \(4, 6\)"),
    ("opt/step", np.array(-3), "needs 'opt/step', a 0-d integer >= 0"),
    ("opt/step", np.array(1.5), "needs 'opt/step', a 0-d integer >= 0"),
])
def test_a_broken_checkpoint_entry_is_a_clear_error_at_load(tmp_path, key, value, message):
    path = saved(tmp_path, **{key: value})
    with pytest.raises(FileFormatError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_an_sgd_state_without_its_momentum_buffers_fails_at_load_not_at_resume(tmp_path):
    """Before, such a file loaded and the resumed run died with KeyError: 'buf/enc.0.W'."""
    path = saved(tmp_path, SGD(lr=0.1, momentum=0.9), **{"opt/buf/enc.0.W": None})
    with pytest.raises(FileFormatError, match=r"does not fit the saved SGD and params: missing "
                                              r"\['buf/enc.0.W'\]"):
        load_checkpoint(path)


def test_save_checkpoint_refuses_a_diverged_model_and_keeps_the_good_file(tmp_path):
    path = saved(tmp_path)
    before = path.read_bytes()
    params = init_params(CFG, np.random.default_rng(0))
    params["enc.mu.W"][0, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"params\['enc.mu.W'\] has 1 NaN or inf values: "
                                             r"the model diverged.*left as it was"):
        save_checkpoint(path, params, CFG)
    state = Adam().init(init_params(CFG, np.random.default_rng(0)))
    state["v/dec.0.b"][:] = np.inf
    with pytest.raises(NonFiniteError, match=r"optimizer_state\['v/dec.0.b'\]"):
        save_checkpoint(path, init_params(CFG, np.random.default_rng(0)), CFG, state)
    assert path.read_bytes() == before
    assert isinstance(NonFiniteError("x"), ValueError)


# --- fixtures -------------------------------------------------------------------------------------

def fixture_file(tmp_path, **over):
    fixture = make_fixture(CFG, batch=3, seed=0)
    fixture.update(over)
    path = tmp_path / "fixture.npz"
    np.savez(path, **fixture)
    return path


@pytest.mark.parametrize("key, value, message", [
    ("param/enc.0.W", np.full((6, 4), np.nan), r"fixture entries \['param/enc.0.W'\] hold NaN"),
    ("loss", np.array(np.inf), r"fixture entries \['loss'\] hold NaN or inf"),
    ("config", np.array("{"), "entry 'config' is not valid JSON"),
    ("config", np.array('{"reduction": "max"}'), "reduction must be one of"),
    ("config", np.array('{"reduction": "mean", "input_dim": 0}'), "not a valid fixture"),
    ("x", np.zeros(()), "not a valid fixture"),
    ("z", np.zeros((3, 5)), r"not a valid fixture: fixture entry 'z' has shape"),
])
def test_a_broken_fixture_is_a_clear_error(tmp_path, key, value, message):
    with pytest.raises(FileFormatError, match=message):
        read_fixture(fixture_file(tmp_path, **{key: value}))


def test_a_valid_fixture_and_checkpoint_still_load(tmp_path):
    assert read_fixture(fixture_file(tmp_path))["x"].shape == (3, 6)
    ckpt = load_checkpoint(saved(tmp_path))
    assert ckpt.history == [{"epoch": 1, "steps": 3}]
    assert json.loads(ckpt.config.to_json()) == CFG.to_dict()
    assert all(v.flags.writeable for v in ckpt.params.values())   # a resumed run updates them


def test_an_in_memory_fixture_with_nan_params_does_not_compare_as_pass():
    """Its loss and gradients are finite, so a candidate handing them back agreed with it."""
    fixture = make_fixture(CFG, batch=2, seed=0)
    fixture["param/enc.0.W"] = np.full((6, 4), np.nan)
    candidate = {"loss": fixture["loss"]}
    with pytest.raises(ValueError, match=r"fixture entries \['param/enc.0.W'\] hold NaN"):
        compare(fixture, candidate)
