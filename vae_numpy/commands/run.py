r"""Running a command: the one way it fails, and what Ctrl-C says.

:func:`run_command` runs the work of a command after its arguments were parsed and checked.
A :class:`CommandError`, or an error of the library a user can act on (a missing or corrupt
file, data out of range, a diverged model: USER_ERRORS), ends the command with one line
``prog: error: ...`` on stderr and exit status 1, after ending a progress line that was still
open. Ctrl-C prints what the command says about where its work is saved (the checkpoint and
the command that resumes it) and exits with 130. ``VAE_NUMPY_TRACEBACK=1`` in the environment
shows the library error's traceback instead of the line.
"""
import os
import sys

# Library errors a user can act on (files, values, a diverged model): one line, not a traceback.
USER_ERRORS = (OSError, ValueError, TypeError, ArithmeticError, MemoryError)
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130   # 130 = 128 + SIGINT, as shells report
TRACEBACK_VARIABLE = "VAE_NUMPY_TRACEBACK"


class CommandError(Exception):
    r"""A problem the user can fix; :func:`run_command` prints it as ``prog: error: message``."""


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


def run_command(prog, work, interrupted=None, error_status=EXIT_ERROR):
    r"""Run ``work()`` and return its result; a failure ends the command with one line.

    Parameters
    ----------
    prog : the command's name in messages (``"train_mnist.py"``).
    work : a function of no arguments: the command after its arguments were parsed.
    interrupted : a function of no arguments returning what to print on Ctrl-C (where the
        work is saved, the command that resumes it), or None.
    error_status : the exit status of an error (a command whose status 1 means something
        else, like FAIL for a comparison, passes 2).

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
        line = f"{prog}: error: {' '.join(message.split())}"
        if error_status == EXIT_ERROR:
            raise SystemExit(line) from None   # Python prints it, tests can match it
        print(line, file=sys.stderr, flush=True)
        raise SystemExit(error_status) from None
    except BaseException:
        end_open_line()
        raise
    finally:
        sys.stderr = outer
