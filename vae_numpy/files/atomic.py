r"""Atomic file writes: readers see the old file or the complete new one, never a partial file.

Everything vae_numpy saves (checkpoints, fixtures, figures, metrics, IDX files) goes through
:func:`atomic_write`. The temporary file is ``.<name>.<pid>.<random>.tmp`` next to the target,
``<pid>`` the writer's process id: a writer killed mid-write (``kill -9``, a power cut) leaves
it behind, and :func:`remove_stale_temp_files` removes exactly those whose writer is gone,
never the file of a writer that is still running.
"""
import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path

# .<target name>.<pid>.<mkstemp's random part>.tmp
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.(?P<random>[A-Za-z0-9_]+)\.tmp$")
# the names of releases before the pid was in them: .<target name>.<random>.tmp
OLD_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<random>[A-Za-z0-9_]{8})\.tmp$")


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    r"""Open a temporary file next to ``path`` for writing; on success rename it onto ``path``.

    ``os.replace`` is atomic on POSIX and Windows when both names are in the same directory,
    so readers see either the old file or the complete new one, never a partial file. If the
    body raises, the temporary file is removed and ``path`` is untouched.

    Yields the open file object (binary by default, ``mode="w"`` for text).

    Raises
    ------
    FileNotFoundError if the directory does not exist; the OSError of creating the temporary
    file (e.g. PermissionError), with a message naming the directory that cannot be written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the directory {path.parent} does not "
                                "exist (create it first, e.g. with os.makedirs)")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=".tmp")
    except OSError as err:
        raise type(err)(err.errno, f"cannot write {path}: the directory {path.parent} does "
                                   f"not take new files ({err.strerror})") from None
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


def process_alive(pid):
    r"""True if a process with id ``pid`` exists on this machine (signal 0 tests, sends
    nothing). A process of another user counts as alive; so does a reused id (the safe side)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as err:   # EPERM: it exists, another user's
        return err.errno == errno.EPERM
    return True


def stale_temp_files(directory):
    r"""The temporary files of :func:`atomic_write` in ``directory`` whose writer is gone, and
    those of releases before the writer's pid was in the name (whose writer cannot be known).

    Returns
    -------
    (stale, unknown) : two sorted lists of pathlib.Path.
    """
    stale, unknown = [], []
    try:
        names = os.listdir(directory)
    except OSError:
        return stale, unknown
    for name in names:
        match = TEMP_NAME.match(name)
        if match and not process_alive(int(match["pid"])):
            stale.append(Path(directory, name))
        elif not match and OLD_TEMP_NAME.match(name):
            unknown.append(Path(directory, name))
    return sorted(stale), sorted(unknown)


def remove_stale_temp_files(directory, log=None):
    r"""Remove the temporary files in ``directory`` left by writers that are gone (killed
    mid-write); say so through ``log`` (a function of one string), and name the old-style ones
    it leaves. A running writer's file is never touched. Returns the paths removed."""
    stale, unknown = stale_temp_files(directory)
    removed = []
    for path in stale:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:   # its writer's finally, or another cleaner, was first
            continue
        removed.append((path, size))
    if log is not None and removed:
        total = sum(size for _, size in removed) / 1e6
        log(f"removed {len(removed)} temporary file(s) ({total:.1f} MB) that writers killed "
            f"mid-write left in {directory}: {', '.join(p.name for p, _ in removed)}")
    if log is not None and unknown:
        log(f"{len(unknown)} temporary file(s) in {directory} carry no writer's id (an older "
            f"vae_numpy wrote them): {', '.join(p.name for p in unknown)}; delete them if no "
            "run is writing there")
    return [p for p, _ in removed]
