r"""Progress output: one status line on stderr, the same rules for every command and library
function that reports progress (training, the importance-weighted evaluation, the mutual
information, the gradient check).

* On a terminal, the status line is rewritten in place (``\r``) at most every
  ``TTY_EVERY`` seconds; a permanent line (an epoch's summary) replaces it.
* Anywhere else (a file, a pipe, a CI log) there is no ``\r``: a status is written as a
  whole line at most every ``LOG_EVERY`` seconds, and permanent lines always.
* An exception leaving a ``with Progress(...)`` block ends an open status line first, so the
  error's message starts on a line of its own.

Results go to stdout, progress to stderr. This module imports nothing of the package, so the
library's train, evaluate and gradcheck use it as the commands do.
"""
import sys
import time

TTY_EVERY = 0.5  # s between rewrites of the status line on a terminal
LOG_EVERY = 10.0  # s between status lines written whole into a file or a pipe


def is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    r"""The status line on ``stream`` (default: sys.stderr at the time of the call).

    Parameters
    ----------
    stream : a text stream, or None for sys.stderr
    enabled : False writes nothing at all
    delay : seconds before the first status is shown (a short job stays silent)
    """

    def __init__(self, stream=None, enabled=True, delay=0.0):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.tty = is_terminal(self.stream)
        self.start = time.perf_counter()
        self.delay = delay
        self.last = -float("inf")
        self.open = False  # a status is on the terminal without its newline
        self.width = 0

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        self.end()
        return False

    def status(self, text, force=False):
        r"""A transient status. ``force``: on a terminal, now, whatever the time since the
        last one (a change of phase, e.g. "evaluating"); in a log it waits its turn as any."""
        now = time.perf_counter()
        if not self.enabled or now - self.start < self.delay:
            return
        if not (force and self.tty) and now - self.last < (TTY_EVERY if self.tty else LOG_EVERY):
            return
        self.last = now
        if self.tty:
            self._write("\r" + text.ljust(self.width))
            self.width, self.open = len(text), True
        else:
            self._write(text + "\n")

    def line(self, text):
        r"""A permanent line: it replaces an open status on a terminal."""
        if not self.enabled:
            return
        if self.open:
            self._write("\r" + text.ljust(self.width) + "\n")
        else:
            self._write(text + "\n")
        self.open, self.width = False, 0

    def end(self):
        r"""End an open status line (its text stays), e.g. before an error message."""
        if self.open:
            self._write("\n")
            self.open, self.width = False, 0

    @property
    def shown(self):
        r"""Whether any status has been written."""
        return self.last > -float("inf")

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()
