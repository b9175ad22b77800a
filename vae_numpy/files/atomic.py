r"""Atomic file writes: readers see the old file or the complete new one, never a partial file.

Everything vae_numpy saves (checkpoints, fixtures, figures, metrics, IDX files) goes through
:func:`atomic_write`.
"""
import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    r"""Open a temporary file next to ``path`` for writing; on success rename it onto ``path``.

    ``os.replace`` is atomic on POSIX and Windows when both names are in the same directory,
    so readers see either the old file or the complete new one, never a partial file. If the
    body raises, the temporary file is removed and ``path`` is untouched.

    Yields the open file object (binary by default, ``mode="w"`` for text).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the directory {path.parent} does not "
                                "exist (create it first, e.g. with os.makedirs)")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file open()'s mode
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
