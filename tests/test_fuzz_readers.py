"""Fuzzing every reader with hypothesis: mutated checkpoints, fixtures, candidate files, npz, npy
and IDX files. For each mutated file:

- only the documented exceptions escape (FileFormatError, a ValueError, and its subclass
  MissingArrayError; the file exists, so no OSError);
- nothing non-finite loads (a checkpoint's params and optimizer state, a fixture's arrays);
- the reader allocates no more than a small multiple of what the file really holds (tracemalloc),
  however large its headers claim the data is;
- nothing hangs (an alarm ends any one read after HANG_SECONDS; a guard, not a speed test).

Three kinds of mutation reach three layers: bytes of the file (zip, gzip, IDX structure), bytes
of one .npy member rewritten into a valid zip (the .npy header inside, past the zip's CRC), and
entries of vae_numpy's own formats (JSON text, NaN values, missing or reshaped arrays).

Examples per test: FUZZ_EXAMPLES of the hypothesis profile (tests/conftest.py).
"""
import contextlib
import gzip
import io
import os
import signal
import struct
import tempfile
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vae_numpy import VAEConfig, init_params
from vae_numpy.files.checkpoint import load_checkpoint, save_checkpoint
from vae_numpy.crosscheck import compare_files, make_fixture, read_fixture, write_fixture
from vae_numpy.data import load_npy, load_npz, read_idx
from vae_numpy.files.errors import FileFormatError
from vae_numpy.optim import Adam

PROFILE = os.environ.get("VAE_NUMPY_HYPOTHESIS_PROFILE", "dev")
# Per test and reader; a reader is fuzzed by up to three tests (file bytes, npy members, entries).
FUZZ_EXAMPLES = {"dev": 30, "ci": 120, "thorough": 1500}.get(PROFILE, 30)
FUZZ = settings(max_examples=FUZZ_EXAMPLES)
HANG_SECONDS = 20
# Peak allocation allowed per read: this many times the bytes the file really holds (after
# inflating what it holds), plus a fixed allowance for the interpreter's own objects.
ALLOCATION_FACTOR = 16
ALLOCATION_SLACK = 1 << 20

CFG = VAEConfig(input_dim=6, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,))
COUNTS = {}   # reader -> {"examples": n, "loaded": n, "FileFormatError": n}


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    for reader, c in sorted(COUNTS.items()):
        print(f"\nfuzz {reader}: {c['examples']} examples, {c['loaded']} loaded, "
              f"{c['FileFormatError']} FileFormatError, 0 unexpected")


# --- the originals ------------------------------------------------------------------------------

def _written(write):
    r"""The bytes a writer (given a path) puts in a file."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "file.npz")
        write(path)
        with open(path, "rb") as f:
            return f.read()


def checkpoint_bytes():
    params = init_params(CFG, np.random.default_rng(0))
    opt = Adam()
    return _written(lambda p: save_checkpoint(p, params, CFG, opt.init(params),
                                              np.random.default_rng(0),
                                              [{"epoch": 1, "steps": 2}],
                                              {"args": {"lr": 0.001}}, opt))


def fixture_bytes():
    return _written(lambda p: write_fixture(p, make_fixture(CFG, batch=2, seed=0)))


def npz_bytes(compressed=False):
    f = io.BytesIO()
    arrays = dict(x_train=np.arange(48, dtype=np.uint8).reshape(3, 4, 4),
                  y_train=np.array([1, 2, 3]), x_test=np.zeros((2, 16), np.float32),
                  y_test=np.array([0, 9]))
    (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return f.getvalue()


def npy_bytes(array=None):
    f = io.BytesIO()
    np.save(f, np.arange(30, dtype=np.float64).reshape(5, 6) if array is None else array)
    return f.getvalue()


def idx_bytes():
    data = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5)
    return struct.pack(">BBBB3I", 0, 0, 0x08, 3, *data.shape) + data.tobytes()


ORIGINALS = {
    "checkpoint": checkpoint_bytes(), "fixture": fixture_bytes(), "npz": npz_bytes(),
    "npz_compressed": npz_bytes(True), "npy": npy_bytes(), "idx": idx_bytes(),
    "idx_gz": gzip.compress(idx_bytes(), mtime=0),
}


# --- mutations ------------------------------------------------------------------------------------

MUTATION = st.tuples(st.sampled_from(["truncate", "set", "overwrite", "insert", "delete"]),
                     st.integers(0, 2**31), st.binary(min_size=1, max_size=12))
MUTATIONS = st.lists(MUTATION, min_size=1, max_size=4)


def mutate(data, mutations):
    r"""Apply (kind, position, payload) edits to bytes; positions wrap around the length."""
    data = bytearray(data)
    for kind, pos, payload in mutations:
        p = pos % (len(data) + 1)
        if kind == "truncate":
            data = data[:p]
        elif kind == "set" and p < len(data):
            data[p] = payload[0]
        elif kind == "overwrite":
            data[p:p + len(payload)] = payload
        elif kind == "insert":
            data[p:p] = payload
        elif kind == "delete":
            del data[p:p + len(payload)]
    return bytes(data)


def mutate_member(zip_data, index, mutations):
    r"""Rewrite the zip with member number ``index`` mutated (a valid zip: the CRC is new)."""
    src = zipfile.ZipFile(io.BytesIO(zip_data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        infos = src.infolist()
        target = index % len(infos)
        for i, info in enumerate(infos):
            member = src.read(info)
            dst.writestr(info.filename, mutate(member, mutations) if i == target else member)
    return out.getvalue()


# --- running one read under the contract ----------------------------------------------------------

@contextlib.contextmanager
def hang_guard(seconds=HANG_SECONDS):
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"a read took more than {seconds} s: a hang")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def content_size(data):
    r"""What the file holds once inflated: the bytes, or a zip's/gzip's declared content."""
    try:
        return max(len(data), len(gzip.decompress(data)))
    except Exception:   # not gzip, or broken: then its own length (a zip's members are stored)
        pass
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return max(len(data), sum(len(z.read(i)) for i in z.infolist()))
    except Exception:
        return len(data)


def run_reader(name, reader, data, tmp_dir, check_loaded=None, trace=True):
    r"""Write ``data``, read it; assert the contract; count the outcome.

    ``trace``: measure the peak allocation (tracemalloc slows a checkpoint read 4x, so the
    entry-level fuzzing, whose arrays are small and honest, goes without)."""
    path = os.path.join(tmp_dir, f"fuzz-{name}")
    with open(path, "wb") as f:
        f.write(data)
    counts = COUNTS.setdefault(name, {"examples": 0, "loaded": 0, "FileFormatError": 0})
    counts["examples"] += 1
    if trace:
        tracemalloc.start()
    try:
        with hang_guard():
            result = reader(path)
    except FileFormatError as err:
        assert str(err).startswith(path), f"the message does not name the file: {err}"
        counts["FileFormatError"] += 1
        result = None
    finally:
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        tracemalloc.stop()
    if trace:
        bound = ALLOCATION_FACTOR * content_size(data) + ALLOCATION_SLACK
        assert peak <= bound, f"{name}: the read allocated {peak} bytes, more than {bound}"
    if result is not None:
        counts["loaded"] += 1
        if check_loaded is not None:
            check_loaded(result)


def all_finite(arrays):
    return all(np.all(np.isfinite(a)) for a in arrays.values() if a.dtype.kind in "fc")


def check_checkpoint(ckpt):
    assert all_finite(ckpt.params), "a checkpoint with non-finite params loaded"
    assert ckpt.optimizer_state is None or all_finite(ckpt.optimizer_state)


def check_fixture(fixture):
    assert all_finite(fixture), "a fixture with non-finite values loaded"


@pytest.fixture(scope="module")
def tmp_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fuzz"))


READERS = {
    "checkpoint": (load_checkpoint, check_checkpoint),
    "fixture": (read_fixture, check_fixture),
    "npz": (load_npz, None),
    "npz_compressed": (load_npz, None),
    "npy": (load_npy, None),
    "idx": (read_idx, None),
    "idx_gz": (read_idx, None),
}


# --- the fuzz tests -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(READERS))
@FUZZ
@given(mutations=MUTATIONS)
def test_mutated_file_bytes(tmp_dir, kind, mutations):
    reader, check = READERS[kind]
    run_reader(kind, reader, mutate(ORIGINALS[kind], mutations), tmp_dir, check)


@pytest.mark.parametrize("kind", ["checkpoint", "fixture", "npz"])
@FUZZ
@given(index=st.integers(0, 100), mutations=MUTATIONS)
def test_mutated_npy_members_inside_a_valid_zip(tmp_dir, kind, index, mutations):
    reader, check = READERS[kind]
    data = mutate_member(ORIGINALS[kind], index, mutations)
    run_reader(f"{kind}_member", reader, data, tmp_dir, check)


def _load_arrays(data):
    with np.load(io.BytesIO(data)) as z:
        return dict(z)


ENTRY_EDITS = st.sampled_from(["json_text", "nan", "inf", "drop", "reshape", "retype"])


@pytest.mark.parametrize("kind", ["checkpoint", "fixture"])
@FUZZ
@given(index=st.integers(0, 100), edit=ENTRY_EDITS, mutations=MUTATIONS,
       position=st.integers(0, 10**6))
def test_mutated_entries_of_checkpoints_and_fixtures(tmp_dir, kind, index, edit, mutations,
                                                     position):
    arrays = _load_arrays(ORIGINALS[kind])
    key = sorted(arrays)[index % len(arrays)]
    a = arrays[key]
    if edit == "json_text" or a.dtype.kind == "U":
        text = str(a).encode()
        arrays[key] = np.array(mutate(text, mutations).decode("utf-8", errors="replace"))
    elif edit in ("nan", "inf") and a.size:
        a = a.astype(np.float64) if a.dtype.kind not in "fc" else a.copy()
        a.flat[position % a.size] = np.nan if edit == "nan" else -np.inf
        arrays[key] = a
    elif edit == "drop":
        del arrays[key]
    elif edit == "reshape":
        arrays[key] = np.zeros((position % 5,) * (position % 3))
    elif edit == "retype":
        arrays[key] = a.astype(np.int8) if a.dtype.kind == "f" else a.astype(np.float32)
    f = io.BytesIO()
    np.savez(f, **arrays)
    reader, check = READERS[kind]
    run_reader(f"{kind}_entries", reader, f.getvalue(), tmp_dir, check, trace=False)


@FUZZ
@given(mutations=MUTATIONS)
def test_mutated_candidate_files_of_compare_files(tmp_dir, mutations):
    fixture = os.path.join(tmp_dir, "the-fixture.npz")
    if not os.path.exists(fixture):
        with open(fixture, "wb") as f:
            f.write(ORIGINALS["fixture"])
    candidate = mutate(ORIGINALS["fixture"], mutations)   # a fixture is a valid candidate
    run_reader("compare_files_candidate", lambda p: compare_files(fixture, p), candidate,
               tmp_dir)
