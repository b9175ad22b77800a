r"""Reading ``.npy`` and ``.npz`` files without trusting them.

``numpy.load`` is the right tool for files you wrote; a reader of files that come from
elsewhere (a download, another framework, a disk that filled up mid-write) needs three more
things, which this module adds on top of NumPy's own header parser
(``numpy.lib.format.read_array_header_*``):

- **no pickles**: object and structured dtypes are refused; arrays hold numbers, booleans or
  strings (the 0-d JSON strings of checkpoints and fixtures);
- **bounded sizes**: an array's size ``prod(shape) * itemsize`` comes from its header, and a
  header that claims more bytes than the file (or the zip member) holds is an error before
  anything of that size is allocated; the bytes are then read as they come, in chunks, so a
  member that inflates to less than its header says fails as "truncated" having held only what
  it really contained;
- **one error type**: everything wrong with the content is a
  :class:`~vae_numpy.files.errors.FileFormatError` naming the file (zip, zlib and header errors
  are translated); file-system errors are the ``OSError`` of ``open``. See
  :mod:`vae_numpy.files.errors`.
"""
import json
import math
import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..files.errors import FileFormatError, MissingArrayError

# Kinds of dtype an array may have: bool, signed/unsigned int, float, complex, bytes, str.
# Everything else (object = pickles, structured records, datetimes) is refused.
ALLOWED_KINDS = "biufcSU"
# Largest .npy header read (NumPy's own default limit for untrusted files).
MAX_HEADER_SIZE = 10000
# Bytes read at a time: memory grows with the data really present, never with a claim.
READ_CHUNK = 1 << 16

# What parsing a broken file can raise underneath (after open() has succeeded, an OSError is a
# bad offset or a bad gzip stream, i.e. content). MemoryError is deliberately absent: the
# bounds above exist so that it cannot happen.
# tokenize.TokenError: NumPy's header parser tokenizes the header's dict literal.
CONTENT_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, EOFError,
                  NotImplementedError, RuntimeError, SyntaxError, UnicodeError, OSError,
                  zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error,
                  tokenize.TokenError)


def read_at_most(stream, n):
    r"""Up to ``n`` bytes of ``stream`` as a bytearray, read in chunks of READ_CHUNK."""
    buf = bytearray()
    while len(buf) < n:
        part = stream.read(min(READ_CHUNK, n - len(buf)))
        if not part:
            break
        buf += part
    return buf


def _read_npy_header(f, path, where):
    r"""``(shape, fortran_order, dtype)`` from an open .npy stream, checked."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        header = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_HEADER_SIZE)
    elif version == (2, 0):
        header = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_HEADER_SIZE)
    else:
        raise FileFormatError(path, f"{where}has .npy format version {version}; this reader "
                                    "takes 1.0 and 2.0 (what numpy.save writes)")
    shape, fortran_order, dtype = header
    if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.itemsize == 0:
        raise FileFormatError(path, f"{where}has dtype {dtype}; vae_numpy files hold numbers, "
                                    "booleans or strings (no objects, records or pickles)")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise FileFormatError(path, f"{where}has the invalid shape {shape}")
    return shape, fortran_order, dtype


def read_npy_stream(f, path, available, where=""):
    r"""Read one array from the .npy stream ``f`` holding ``available`` bytes in all.

    The header's claim ``prod(shape) * itemsize`` must equal the bytes after the header
    exactly (checked before reading them); the array is built from the bytes read (writable,
    native byte order).
    """
    start = f.tell()
    shape, fortran_order, dtype = _read_npy_header(f, path, where)
    count = math.prod(shape)
    claimed, present = count * dtype.itemsize, available - (f.tell() - start)
    if claimed != present:
        problem = "truncated" if claimed > present else "trailing bytes"
        raise FileFormatError(path, f"{where}{problem}: its header says shape {shape} of "
                                    f"{dtype} ({claimed} bytes), but {present} bytes follow it")
    buf = read_at_most(f, claimed)
    if len(buf) != claimed:
        raise FileFormatError(path, f"{where}truncated: {len(buf)} of the {claimed} data bytes "
                                    "its header announces could be read")
    flat = np.frombuffer(buf, dtype=dtype, count=count)
    array = flat.reshape(shape[::-1]).transpose() if fortran_order else flat.reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)   # native byte order


def read_npy(path):
    r"""Read an ``.npy`` file under the reader contract (:mod:`vae_numpy.files.errors`)."""
    path = Path(path)
    with open(path, "rb") as f:   # OSError: the file system
        size = os.fstat(f.fileno()).st_size
        try:
            return read_npy_stream(f, path, size)
        except FileFormatError:
            raise
        except CONTENT_ERRORS as err:
            raise FileFormatError(path, f"not a readable .npy file ({type(err).__name__}: "
                                        f"{err})") from err


class NpzFile:
    r"""An ``.npz`` (a zip of ``<name>.npy`` members) opened for checked reading.

    Use as a context manager: ``with NpzFile(path) as z: z.names, z["x"], z.read_all()``.
    Members whose names do not end in ``.npy`` are not arrays and are not listed.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._file = open(self.path, "rb")   # OSError: the file system
        try:
            self._zip = zipfile.ZipFile(self._file)
            self._members = {info.filename[:-len(".npy")]: info
                             for info in self._zip.infolist() if info.filename.endswith(".npy")}
        except CONTENT_ERRORS as err:
            self._file.close()
            raise FileFormatError(self.path, f"not a readable .npz (zip) file "
                                             f"({type(err).__name__}: {err})") from err

    @property
    def names(self):
        r"""The array names, in the order of the archive."""
        return list(self._members)

    def __contains__(self, name):
        return name in self._members

    def __getitem__(self, name):
        if name not in self._members:
            raise MissingArrayError(self.path, name, self.names)
        info = self._members[name]
        where = f"array {name!r} "
        try:
            with self._zip.open(info) as f:
                return read_npy_stream(f, self.path, info.file_size, where)
        except FileFormatError:
            raise
        except CONTENT_ERRORS as err:
            raise FileFormatError(self.path, f"{where}cannot be read ({type(err).__name__}: "
                                             f"{err})") from err

    def read_all(self):
        r"""``{name: array}`` of every member."""
        return {name: self[name] for name in self._members}

    def close(self):
        self._zip.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_npz(path):
    r"""``{name: array}`` of every array in an ``.npz``, under the reader contract."""
    with NpzFile(path) as z:
        return z.read_all()


# --- entries of vae_numpy's own .npz formats -------------------------------------------------

def json_entry(arrays, key, path, types):
    r"""Parse the 0-d string entry ``arrays[key]`` as JSON of one of ``types``.

    Raises MissingArrayError (absent) or FileFormatError (not a 0-d string, bad JSON, wrong
    type), each naming the file and the entry.
    """
    if key not in arrays:
        raise MissingArrayError(path, key, sorted(arrays))
    a = arrays[key]
    if a.shape != () or a.dtype.kind != "U":
        raise FileFormatError(path, f"entry {key!r} must be a 0-d JSON string, found shape "
                                    f"{a.shape} of {a.dtype}")
    try:
        value = json.loads(str(a))
    except (ValueError, RecursionError) as err:
        raise FileFormatError(path, f"entry {key!r} is not valid JSON ({err})") from err
    if not isinstance(value, types):
        names = " or ".join("null" if t is type(None) else t.__name__
                            for t in (types if isinstance(types, tuple) else (types,)))
        raise FileFormatError(path, f"entry {key!r} must hold a JSON {names}, found "
                                    f"{type(value).__name__}")
    return value


DIVERGED_HINT = "a model that diverged was saved (use an earlier file, or retrain)"


def check_finite(arrays, path, what, hint=DIVERGED_HINT):
    r"""Raise FileFormatError naming the first array of ``{name: array}`` with NaN or inf."""
    for name, a in arrays.items():
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            n_bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise FileFormatError(path, f"{what} {name!r} has {n_bad} NaN or inf values of "
                                        f"{a.size}; {hint}")
