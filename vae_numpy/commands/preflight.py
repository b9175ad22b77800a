r"""Checks before the work: the out-dir can be written, the sizes fit in memory, matplotlib is
there for the figures, and a new run never replaces an earlier one without ``--overwrite``.

Each raises :class:`vae_numpy.commands.run.CommandError` with one sentence that names the
flag, what is wrong and what to type instead; the command's own check function calls them
after parsing (vae_numpy.commands.flags) and before any work.
"""
import os
import shlex
import sys
import tempfile
from pathlib import Path

from .flags import command_text
from .run import CommandError


def check_out_dir(path, flag="--out-dir"):
    r"""Raise CommandError unless ``path`` is a writable directory or one that can be made.

    Creates nothing that stays: writability is probed with a temporary file (named with this
    process's id) in ``path`` or, if it does not exist yet, in its nearest existing parent,
    removed at once (permission bits alone do not tell, e.g. for root or a read-only mount).
    """
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.is_symlink() or existing.parent == existing:
            break
        existing = existing.parent
    where = "" if existing == path else f" (it would be made inside {existing})"
    if not existing.is_dir():
        raise CommandError(f"{flag} {path} cannot be a directory: {existing} is a file or "
                           "a dangling link; pass another directory")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=f".vae_numpy-probe-{os.getpid()}-")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise CommandError(f"{flag} {path}: cannot write into {existing}{where} "
                           f"({err.strerror or err}); pass a directory you can write to") from None


def available_memory():
    r"""Bytes of memory available to a new process (``MemAvailable`` of /proc/meminfo), or
    None where /proc/meminfo does not exist or does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024   # the file counts in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _size(nbytes):
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes / 1e3:.3g} kB"


def check_memory(nbytes, what, fix):
    r"""Raise CommandError if ``nbytes`` (an estimate of what ``what`` needs) is more than
    the memory available now; ``fix`` says which flag to lower. No check where the available
    memory is unknown."""
    available = available_memory()
    if available is not None and nbytes > available:
        raise CommandError(f"{what} needs about {_size(nbytes)} of memory, more than the "
                           f"{_size(available)} available (MemAvailable in /proc/meminfo); {fix}")


def have_matplotlib():
    r"""True if matplotlib can be imported (the figures need it; it is the demos extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


NO_MATPLOTLIB = ("matplotlib is not installed: no figures this time (pip install matplotlib, "
                 "or pip install vae_numpy[demos])")


def check_out_dir_and_figures(out_dir):
    r"""A demo's checks before its work: ``out_dir`` can be written (:func:`check_out_dir`),
    and whether figures can be drawn (one line on stderr when not). Returns that bool."""
    check_out_dir(out_dir)
    figures = have_matplotlib()
    if not figures:
        print(NO_MATPLOTLIB, file=sys.stderr)
    return figures


# --- out-dirs that hold an earlier run -------------------------------------------------------

def numbered_dir(path, holds):
    r"""``path`` if it holds none of a run's files (``holds(p)`` is False), else the first of
    ``path-2``, ``path-3``, ... that does not: where a new run goes, as experiment trackers do."""
    path, n = Path(path), 2
    candidate = path
    while holds(candidate):
        candidate = path.with_name(f"{path.name}-{n}")
        n += 1
    return candidate


def run_files(out_dir, outputs):
    r"""The files of ``outputs`` (names) that exist in ``out_dir``."""
    return [name for name in outputs if (Path(out_dir) / name).exists()]


def claim_out_dir(out_dir, outputs, *, overwrite, default, prefix, argv, resume_argv, log):
    r"""Where a new run writes, so that nothing a user had is replaced without ``--overwrite``.

    ``out_dir`` holds none of ``outputs``: it is used. It holds some and
    - ``overwrite``: they are removed now (before the work, so no old file is left beside the
      new run's), and the log says which;
    - ``default`` (the user did not choose the directory): the run goes to the first free
      numbered directory ``out_dir-2``, ``-3``, ..., and the log says so;
    - otherwise: CommandError with the exact commands that continue the earlier run
      (``resume_argv``, or None if the command cannot resume), start this one elsewhere, or
      replace it; ``prefix`` is the command's words (vae_numpy.commands.flags.invocation).

    Returns the directory to write to (a str).
    """
    existing = run_files(out_dir, outputs)
    if not existing:
        return str(out_dir)
    if overwrite:
        for name in existing:
            os.remove(Path(out_dir) / name)
        log(f"--overwrite: removed {', '.join(existing)} from {out_dir}")
        return str(out_dir)
    elsewhere = numbered_dir(out_dir, lambda p: bool(run_files(p, outputs)))
    if default:
        log(f"{out_dir} holds an earlier run ({', '.join(existing)}); this run goes to "
            f"{elsewhere} (pass --out-dir to choose, --overwrite to replace)")
        return str(elsewhere)
    options = []
    if resume_argv is not None:
        options.append(f"continue it: {command_text(prefix, resume_argv)}")
    options.append("start this run elsewhere: "
                   + command_text(prefix, argv, set_flags={"--out-dir": elsewhere}))
    options.append("replace it: " + command_text(prefix, argv, drop=("--overwrite",),
                                                 add=("--overwrite",)))
    raise CommandError(f"{out_dir} holds an earlier run ({', '.join(existing)}), which this "
                       f"run would replace; {'; '.join(options)}")


def claim_results(out_dir, results, *, overwrite, checkpoint, prefix, argv, log):
    r"""Before a command evaluates the checkpoint of a run again into the run's directory: the
    results there (``results``, names) are replaced only with ``overwrite`` (removed now, and
    said); otherwise CommandError with the commands that evaluate a copy of the checkpoint in
    a new directory under runs/ (shipped results stay as they are)."""
    existing = run_files(out_dir, results)
    if existing and overwrite:
        for name in existing:
            os.remove(os.path.join(out_dir, name))
        log(f"--overwrite: removed {', '.join(existing)} from {out_dir}")
    elif existing:
        name = os.path.basename(os.path.normpath(os.path.abspath(out_dir)))
        copy = str(numbered_dir(Path("runs", f"{name}-eval"), os.path.exists))
        raise CommandError(
            f"this evaluation would replace {', '.join(existing)} in {out_dir}. Evaluate a copy "
            f"instead: mkdir -p {shlex.quote(copy)} && cp {shlex.quote(str(checkpoint))} "
            f"{shlex.quote(copy)}/ && {command_text(prefix, argv, {'--out-dir': copy})}; or add "
            "--overwrite to replace them")


# --- checkpoints another command wrote -------------------------------------------------------

def recorded_command(extra):
    r"""The command that wrote a checkpoint, from the ``"command"`` list its ``extra`` records
    (``"vae-numpy train"``, ``"train_mnist.py"``, ``"reproduce_iwae_table.py"``), or None."""
    command = extra.get("command") if isinstance(extra, dict) else None
    if not isinstance(command, list) or not command:
        return None
    if command[0] == "vae-numpy" and len(command) > 1:
        return f"vae-numpy {command[1]}"
    return os.path.basename(str(command[0]))


def check_checkpoint_command(ckpt, names, prog, fix, earlier=None):
    r"""Raise CommandError unless the checkpoint ``ckpt`` was written by one of the commands
    ``names`` (see :func:`recorded_command`) and holds the run record (``extra["args"]``, a
    dict) that --resume needs.

    earlier : for checkpoints that record no command (written before commands were recorded),
        a function of ``extra`` saying whether it is one of this command's runs.
    fix : what to do instead, for the message.
    """
    extra = ckpt.extra
    by = recorded_command(extra)
    ours = by in names if by is not None else bool(earlier and earlier(extra))
    if ours and isinstance(extra.get("args"), dict):
        return
    written = (f"by {by}" if by is not None
               else "without a command's run record (by save_checkpoint directly, or another tool)")
    raise CommandError(f"{ckpt.path} was written {written}; {prog} continues its own runs only "
                       f"(their checkpoints record the run's flags and data); {fix}")
