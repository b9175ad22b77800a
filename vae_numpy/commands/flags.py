r"""What the commands and scripts (demos/, benchmarks/) share about flags: each flag's check
as its ``type=``, one line per flag, so a bad value never reaches the work; the ``--quick``
idiom; which flags a user gave; the exact command to type next.

    p = CommandParser(prog="reproduce_iwae_table.py", ...)
    p.add_argument("--n-test", type=integer(low=1))          # 0, -3, 2.5, 'x' are refused
    p.add_argument("--lr", type=real(low=0, low_open=True))  # 0, -1, inf, nan are refused
    p.add_argument("--threads", type=POSITIVE_INT)

A bad value ends the command with one line, ``prog: error: argument --n-test: must be an
integer >= 1, got '0' (see prog --help)``, and exit status 2 (argparse's status for usage
errors). What depends on more than one flag (files, directories, memory, a checkpoint) is
checked next, before the work: vae_numpy.commands.preflight.
"""
import argparse
import math
import os
import shlex
import sys

from .run import EXIT_USAGE, end_open_line


def parse_with_quick(parser, argv, quick):
    r"""``parser.parse_args(argv)``; when it sets ``--quick``, parse again with the dict
    ``quick`` as the defaults, so that a smoke run is short and flags given explicitly still win.
    """
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


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
    ``ArgumentTypeError`` with the rule and the value given; its attributes ``kind``, ``low``,
    ``high`` say the rule to tests that attack every flag (tests/test_command_battery.py).
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
    parse.kind, parse.low, parse.high, parse.low_open = "integer", low, high, False
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
    parse.kind, parse.low, parse.high, parse.low_open = "real", low, high, low_open
    return parse


POSITIVE_INT = integer(low=1)               # sizes, counts of samples, epochs, threads
NONNEGATIVE_INT = integer(low=0)            # seeds
POSITIVE_REAL = real(low=0, low_open=True)  # learning rates, eps, minutes
NONNEGATIVE_REAL = real(low=0)              # weights, free bits, warm-up epochs
FINITE_REAL = real()


def add_gradient_flags(parser, estimators, steps):
    r"""``--estimator`` and ``--step``, the same for every command that trains.

    ``estimators`` and ``steps`` are vae_numpy.train's ESTIMATORS and STEPS (passed in: this
    module imports no numpy, so a command can set its thread count first).
    """
    parser.add_argument("--estimator", choices=estimators, default=None,
                        help="the IWAE objective's encoder gradient: iwae (the gradient of the "
                             "bound; the default), stl (sticking the landing) or dreg (doubly "
                             "reparameterized); kept in the checkpoint, --resume refuses another")
    parser.add_argument("--step", choices=steps, default="default",
                        help="readable: train with loss_and_grads (or vae_numpy.iwae's step) "
                             "itself; no faster copy remains, so default runs the same functions")


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


def widths(text):
    r"""A flag type: comma-separated layer widths, ``"8,6"`` -> (8, 6), each >= 1; ``""`` or
    ``"none"`` -> () (no hidden layer)."""
    text = str(text).strip()
    if text.lower() in ("", "none"):
        return ()
    try:
        values = tuple(int(w, 10) for w in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 1 like 400 or "
                                         f"512,256 (or '' for none), got {text!r}")
    return values


def widths_text(text):
    r"""A flag type: the text of :func:`widths` as given, once checked (commands that record
    their flags keep the text)."""
    widths(text)
    return text


widths.kind = widths_text.kind = "widths"   # what tests/test_command_battery.py attacks


def invocation(default):
    r"""The words that started this command, for messages that say what to type next:
    ``python demos/x.py`` when a script ran it, ``python -m vae_numpy <name>`` for
    ``python -m vae_numpy``, else ``default`` (e.g. ``["vae-numpy", "train"]``)."""
    script = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if script.endswith(".py") and os.path.basename(script) != "__main__.py":
        return ["python", script]
    if script.endswith(os.path.join("vae_numpy", "__main__.py")):
        return ["python", "-m", "vae_numpy"] + list(default[1:])
    return list(default)


def command_text(prefix, argv, set_flags=None, drop=(), add=()):
    r"""The shell command ``prefix argv...`` with ``set_flags`` {flag: value} replacing (or
    adding) flags that take a value, the flags in ``drop`` removed and ``add`` appended: for
    messages that tell the user the exact command to type next. ``prefix`` is a list of words
    (:func:`invocation`)."""
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
    return shlex.join(list(prefix) + out + list(add))
