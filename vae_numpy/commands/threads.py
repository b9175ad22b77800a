r"""The thread count of a command: one BLAS thread unless the user says otherwise.

OpenBLAS (NumPy's BLAS) reads ``OPENBLAS_NUM_THREADS`` once, when numpy is first imported, and
by default starts one thread per core. On a machine that also runs other work those threads
wait on each other: ``python benchmarks/thread_default.py --load busy --quick --repeats 3``
(two CPU-bound processes beside the main demo's --quick run, 2 cores) measured 52 s with two
threads, OpenBLAS's default there, against 15.5 s with one (medians of 3), while on a quiet
machine a second thread saves at most ~15% at these sizes (README, "Speed"). So the commands (``python -m vae_numpy``, ``vae-numpy``, the
demos) start with one thread:

1. ``--threads N``: N threads;
2. else, if the user set any of :data:`THREAD_VARIABLES`, those are kept and the unset ones
   take the first set one's value (``OPENBLAS_NUM_THREADS=2`` means 2 everywhere);
3. else ``DEFAULT_THREADS`` = 1.

:func:`set_thread_default` writes the choice into the environment, which works only before
numpy is imported: the package imports it lazily for that reason, and the commands call this
first. A library user sets the variables before starting Python (``OPENBLAS_NUM_THREADS=1
python script.py``) or before the first ``import numpy``.

This module imports nothing that imports numpy.
"""
import argparse
import os
import sys

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_THREADS = 1
FLAG_HELP = (f"threads for NumPy's BLAS (default "
             f"{DEFAULT_THREADS}, or what {THREAD_VARIABLES[0]} says; one is fastest on a busy "
             "machine and within ~15%% of two on a quiet one)")

_choice = None  # what set_thread_default decided, for the run header and metrics.json


def threads_flag(argv):
    r"""N of ``--threads N`` or ``--threads=N`` in argv, or None (absent or not a positive
    integer: the command's parser then reports it)."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        text = None
        if arg == "--threads" and i + 1 < len(argv):
            text = argv[i + 1]
        elif arg.startswith("--threads="):
            text = arg.split("=", 1)[1]
        if text is not None:
            return int(text) if text.isdigit() and int(text) > 0 else None
    return None


def set_thread_default(argv, environ=None):
    r"""Set the thread variables for this process from ``argv`` and the environment (see the
    module docstring) and return the choice, ``{"threads", "source", "variables"}``.

    After numpy has been imported (a command run in-process from Python), setting them would
    change nothing for the BLAS: the environment is left alone and the choice says so."""
    global _choice
    environ = os.environ if environ is None else environ
    given = {k: environ[k] for k in THREAD_VARIABLES if environ.get(k)}
    n = threads_flag(argv)
    if "numpy" in sys.modules:
        source = "numpy was imported before the command could set the thread count"
        if n is not None:
            source = f"--threads {n} ignored: " + source
        _choice = {"threads": _threads_of(given), "source": source, "variables": given}
        return _choice
    if n is not None:
        values, source = {k: str(n) for k in THREAD_VARIABLES}, "--threads"
    elif given:
        first = next(iter(given))
        values = {k: given.get(k, given[first]) for k in THREAD_VARIABLES}
        source = f"the environment ({first}={given[first]})"
    else:
        values, source = {k: str(DEFAULT_THREADS) for k in THREAD_VARIABLES}, "default"
    environ.update(values)
    _choice = {"threads": _threads_of(values), "source": source, "variables": values}
    return _choice


def thread_choice():
    r"""The choice of :func:`set_thread_default`, or what the environment says when it was not
    called (a command's main run from Python)."""
    if _choice is not None:
        return dict(_choice)
    given = {k: os.environ[k] for k in THREAD_VARIABLES if os.environ.get(k)}
    return {"threads": _threads_of(given), "source": "the environment, not set by the command",
            "variables": given}


def describe(choice):
    r"""One header line: ``threads: 1 (default; --threads N to change)``."""
    n = "the BLAS's default" if choice["threads"] is None else choice["threads"]
    return f"threads: {n} ({choice['source']}; --threads N to change)"


def add_threads_flag(parser):
    r"""``--threads N`` on a command's parser (read before numpy by set_thread_default; the
    parser checks it and lists it in --help)."""
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help=FLAG_HELP)
    return parser


def _threads_of(values):
    for k in THREAD_VARIABLES[:3]:  # the BLAS's own variables, in OpenBLAS's order
        if k in values and str(values[k]).isdigit():
            return int(values[k])
    return None


def _positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--threads takes a positive integer, got {text!r}")
    return int(text)


# the rule, as vae_numpy.commands.flags.integer states it (tests/test_command_battery.py)
_positive_int.kind, _positive_int.low, _positive_int.high, _positive_int.low_open = \
    "integer", 1, None, False
