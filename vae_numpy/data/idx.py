r"""The IDX file format of MNIST (LeCun et al.): reading (raw or gzip) and writing.

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions,
then each dimension as a 4-byte integer) followed by the array's entries in C order.
"""
import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..files.atomic import atomic_write
from ..files.errors import FileFormatError
from .npfiles import read_at_most

# IDX type code -> big-endian dtype (LeCun's format description).
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
IDX_MAX_DIMS = 4
GZIP_MAGIC = b"\x1f\x8b"


def _gzip_error(path, exc):
    return FileFormatError(path, f"starts with the gzip magic bytes 1f 8b but does not "
                                 f"decompress ({type(exc).__name__}: {exc}); the download is "
                                 "probably incomplete")


def _parse_idx_header(buf, path):
    r"""Return ``(dtype, dims, header_size)`` of the IDX content ``buf``."""
    if len(buf) < 4:
        raise FileFormatError(path, f"{len(buf)} bytes is too short for an IDX header (4 bytes "
                                    "of magic number); the file is truncated or not IDX")
    zero0, zero1, code, ndim = buf[0], buf[1], buf[2], buf[3]
    if zero0 != 0 or zero1 != 0:
        raise FileFormatError(path, f"bad IDX magic number {buf[:4].hex(' ')}: the first two "
                                    "bytes must be 00 00; this is not an (uncompressed or "
                                    "gzip) IDX file")
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({dt.name})" for c, dt in IDX_DTYPES.items())
        raise FileFormatError(path, f"bad IDX dtype code 0x{code:02X}; known codes: {known}")
    if not 1 <= ndim <= IDX_MAX_DIMS:
        raise FileFormatError(path, f"IDX header says {ndim} dimensions; expected "
                                    f"1..{IDX_MAX_DIMS}")
    header_size = 4 + 4 * ndim
    if len(buf) < header_size:
        raise FileFormatError(path, f"truncated IDX header: {ndim} dimensions need "
                                    f"{header_size} header bytes, the file has {len(buf)}")
    dims = struct.unpack(f">{ndim}I", buf[4:header_size])
    return IDX_DTYPES[code], dims, header_size


def read_idx(path):
    r"""Read an IDX file (raw or gzip) into a native-endian array.

    Parameters
    ----------
    path : str or os.PathLike
        IDX file. Gzip is recognised by its magic bytes ``1f 8b`` whatever the suffix.

    Returns
    -------
    ndarray, shape ``dims`` from the header
        dtype uint8, int8, int16, int32, float32 or float64 (type codes 0x08, 0x09,
        0x0B, 0x0C, 0x0D, 0x0E), native byte order.

    Raises
    ------
    OSError
        The file cannot be opened (FileNotFoundError, IsADirectoryError, ...).
    vae_numpy.errors.FileFormatError (a ValueError)
        Naming the file: bad magic number, unknown dtype code, number of dimensions not
        in 1..4, a gzip stream that does not inflate, or a size that is not
        header + prod(dims) * itemsize (truncated file or trailing bytes). A gzip file is
        inflated only up to the size its header implies plus one byte.
    """
    path = Path(path)
    with open(path, "rb") as f:   # OSError: the file system
        if f.read(2) != GZIP_MAGIC:
            f.seek(0)
            return _read_idx_stream(f, path, os.fstat(f.fileno()).st_size)
        f.seek(0)
        try:
            with gzip.GzipFile(fileobj=f) as g:
                return _read_idx_stream(g, path, None)
        except FileFormatError:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            raise _gzip_error(path, exc) from exc


def _read_idx_stream(f, path, size):
    r"""Read the IDX content of stream ``f``; ``size`` is its length in bytes, or None (gzip).

    The header is the only source of the size, and is checked before it is used: a raw file's
    length must equal header + data before the data is read; a gzip stream is inflated up to
    the header-implied size plus one byte (the byte that tells trailing data), never further.
    """
    head = bytes(read_at_most(f, 4))
    n_dims = head[3] if len(head) == 4 and 1 <= head[3] <= IDX_MAX_DIMS else 0
    dtype, dims, header_size = _parse_idx_header(head + bytes(read_at_most(f, 4 * n_dims)), path)
    expected = math.prod(dims) * dtype.itemsize
    if size is not None and size - header_size != expected:
        raise _idx_size_error(path, dims, dtype, header_size, size - header_size)
    data = read_at_most(f, expected + 1)
    if len(data) != expected:
        raise _idx_size_error(path, dims, dtype, header_size, len(data),
                              at_least=size is None and len(data) > expected)
    array = np.frombuffer(data, dtype=dtype).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _idx_size_error(path, dims, dtype, header_size, found, at_least=False):
    expected = math.prod(dims) * dtype.itemsize
    problem = "truncated" if found < expected else "trailing bytes"
    return FileFormatError(path, f"{problem}: shape {dims} of {dtype.name} needs {expected} "
                                 f"data bytes after the {header_size}-byte header, found "
                                 f"{f'more than {expected}' if at_least else found}")


def write_idx(path, array):
    r"""Write ``array`` as an IDX file, gzip-compressed when ``path`` ends with ``.gz``.

    The write is atomic: the bytes go to a temporary file in the same directory, which
    then replaces ``path`` (``os.replace``), so a reader never sees a half-written file.

    Parameters
    ----------
    path : str or os.PathLike
    array : array_like, 1 to 4 dimensions
        dtype uint8, int8, int16, int32, float32 or float64 (IDX has no other types).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    array = np.asarray(array)
    code = IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        names = ", ".join(dt.name for dt in IDX_CODES)
        raise ValueError(f"write_idx: array has dtype {array.dtype}, which IDX cannot store; "
                         f"cast it to one of {names}")
    if not 1 <= array.ndim <= IDX_MAX_DIMS:
        raise ValueError(f"write_idx: array has {array.ndim} dimensions (shape "
                         f"{array.shape}); IDX files here hold 1..{IDX_MAX_DIMS}")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    payload = header + array.astype(IDX_DTYPES[code]).tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with atomic_write(path) as f:
        f.write(payload)
    return path
