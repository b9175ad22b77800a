r"""A command's arguments, checked before any work starts, and the one way a command fails.

Every command (the scripts in demos/, ``python -m vae_numpy ...``) follows the same pattern:

1. **Parse** with :class:`CommandParser`. Each flag's check is its ``type=``, one line per
   flag, so a bad value never reaches the work::

       p.add_argument("--n-test", type=integer(low=1))        # 0, -3, 2.5, 'x' are refused
       p.add_argument("--lr", type=real(low=0, low_open=True))  # 0, -1, inf, nan are refused
       p.add_argument("--threads", type=POSITIVE_INT)

   A bad argument ends the command with one line, ``prog: error: argument --n-test: must be
   an integer >= 1, got '0'``, and exit status 2 (argparse's status for usage errors).
2. **Check what depends on more than one flag** (files, directories, sizes against the memory
   there is, flags that contradict a checkpoint) in the command's own check function, before
   the work; it raises :class:`CommandError`. Helpers: :func:`check_out_dir`,
   :func:`check_memory`, :func:`claim_out_dir`.
3. **Run** the work inside :func:`run_command`, which turns a :class:`CommandError`, and the
   errors of the library a user can act on (a missing or corrupt file, data out of range, a
   diverged model), into one line ``prog: error: ...`` on stderr and exit status 1, after
   ending a progress line that was still open; Ctrl-C prints what the command says about
   where its work is saved (the checkpoint and the command that resumes it) and exits with
   130. ``VAE_NUMPY_TRACEBACK=1`` in the environment shows the traceback instead.
"""
import argparse
import math
import os
import shlex
import sys
import tempfile
from pathlib import Path

# Library errors a user can act on (files, values, a diverged model): one line, not a traceback.
USER_ERRORS = (OSError, ValueError, TypeError, ArithmeticError, MemoryError)
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130   # 130 = 128 + SIGINT, as shells report
TRACEBACK_VARIABLE = "VAE_NUMPY_TRACEBACK"


class CommandError(Exception):
    r"""A problem the user can fix; :func:`run_command` prints it as ``prog: error: message``."""


# --- parsing ---------------------------------------------------------------------------------

class CommandParser(argparse.ArgumentParser):
    r"""An ``ArgumentParser`` whose errors are one line on stderr (exit status 2).

    argparse prints the usage block before the error; here the error line says what is wrong
    with which flag and points at ``--help`` instead.
    """

    def error(self, message):
        end_open_line()
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _bounds(low, high, low_open):
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return " and ".join(parts)


def integer(low=None, high=None):
    r"""A flag type: an integer in ``[low, high]`` (either bound may be None).

    Returns a function for ``add_argument(type=...)`` that raises argparse's
    ``ArgumentTypeError`` with the rule and the value given.
    """
    rule = "an integer" + (f" {_bounds(low, high, False)}" if (low, high) != (None, None) else "")

    def parse(text):
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value

    parse.__name__ = rule
    return parse


def real(low=None, high=None, low_open=False):
    r"""A flag type: a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``).

    inf and nan are always refused: no flag of these commands means anything with them.
    """
    rule = "a finite number" + (f" {_bounds(low, high, low_open)}"
                                if (low, high) != (None, None) else "")

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}") from None
        below = low is not None and (value <= low if low_open else value < low)
        if not math.isfinite(value) or below or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value

    parse.__name__ = rule
    return parse


POSITIVE_INT = integer(low=1)               # sizes, counts of samples, epochs, threads
NONNEGATIVE_INT = integer(low=0)            # seeds
POSITIVE_REAL = real(low=0, low_open=True)  # learning rates, eps, minutes
NONNEGATIVE_REAL = real(low=0)              # weights, free bits, warm-up epochs
FINITE_REAL = real()


def given_flags(build_parser, argv):
    r"""The destinations of the flags given explicitly in ``argv`` (not left at a default).

    ``build_parser`` makes a fresh parser of the command; its defaults are suppressed, so a
    flag not given leaves no attribute at all (a flag given with its default value counts).
    """
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    parser._defaults.clear()
    return set(vars(parser.parse_args(argv)))


# --- checks before the work ------------------------------------------------------------------

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


# --- out-dirs that hold an earlier run -------------------------------------------------------

def command_text(script, argv, set_flags=None, drop=(), add=()):
    r"""The shell command ``python script argv...`` with ``set_flags`` {flag: value} replacing
    (or adding) flags that take a value, the flags in ``drop`` removed and ``add`` appended:
    for messages that tell the user the exact command to type next."""
    set_flags, out, i = dict(set_flags or {}), [], 0
    argv = list(argv)
    while i < len(argv):
        word = argv[i]
        name = word.split("=", 1)[0]
        if name in set_flags or name in drop:
            takes_value = name in set_flags and "=" not in word
            i += 2 if takes_value else 1
            continue
        out.append(word)
        i += 1
    for flag, value in set_flags.items():
        out += [flag, str(value)]
    return shlex.join(["python", script] + out + list(add))


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


def claim_out_dir(out_dir, outputs, *, overwrite, default, script, argv, resume_argv, log):
    r"""Where a new run writes, so that nothing a user had is replaced without ``--overwrite``.

    ``out_dir`` holds none of ``outputs``: it is used. It holds some and
    - ``overwrite``: they are removed now (before the work, so no old file is left beside the
      new run's), and the log says which;
    - ``default`` (the user did not choose the directory): the run goes to the first free
      numbered directory ``out_dir-2``, ``-3``, ..., and the log says so;
    - otherwise: CommandError with the exact commands that continue the earlier run
      (``resume_argv``, or None if the command cannot resume), start this one elsewhere, or
      replace it.

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
        options.append(f"continue it: {command_text(script, resume_argv)}")
    options.append("start this run elsewhere: "
                   + command_text(script, argv, set_flags={"--out-dir": elsewhere}))
    options.append("replace it: " + command_text(script, argv, drop=("--overwrite",),
                                                 add=("--overwrite",)))
    raise CommandError(f"{out_dir} holds an earlier run ({', '.join(existing)}), which this "
                       f"run would replace; {'; '.join(options)}")


# --- running ---------------------------------------------------------------------------------

class _LineTracker:
    r"""Wraps a text stream and remembers whether its last write left a line open (a ``\r``
    progress line has no newline until the epoch ends)."""

    def __init__(self, stream):
        self.stream, self.open = stream, False

    def write(self, text):
        if text:
            self.open = not text.endswith("\n")
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def end_open_line():
    r"""End a progress line left open on stderr, so that the next message starts a line."""
    if isinstance(sys.stderr, _LineTracker) and sys.stderr.open:
        sys.stderr.write("\n")
        sys.stderr.flush()


def run_command(prog, work, interrupted=None):
    r"""Run ``work()`` and return its result; a failure ends the command with one line.

    Parameters
    ----------
    prog : the command's name in messages (``"train_mnist.py"``).
    work : a function of no arguments: the command after its arguments were parsed.
    interrupted : a function of no arguments returning what to print on Ctrl-C (where the
        work is saved, the command that resumes it), or None.

    Raises
    ------
    SystemExit : ``"prog: error: message"`` (printed by Python on stderr, exit status 1) for a
        :class:`CommandError` or one of USER_ERRORS; exit status 130 after Ctrl-C.
    """
    outer = sys.stderr
    sys.stderr = outer if isinstance(outer, _LineTracker) else _LineTracker(outer)
    try:
        return work()
    except KeyboardInterrupt:
        end_open_line()
        note = interrupted() if interrupted is not None else None
        print(f"{prog}: interrupted" + (f"; {note}" if note else ""), file=sys.stderr,
              flush=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except (CommandError, *USER_ERRORS) as err:
        end_open_line()
        if os.environ.get(TRACEBACK_VARIABLE) and not isinstance(err, CommandError):
            raise
        message = str(err) or type(err).__name__
        if isinstance(err, MemoryError):
            message = f"out of memory ({message}); lower the sizes given"
        raise SystemExit(f"{prog}: error: {' '.join(message.split())}") from None
    except BaseException:
        end_open_line()
        raise
    finally:
        sys.stderr = outer
