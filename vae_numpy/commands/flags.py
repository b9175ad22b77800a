r"""What the commands and scripts (demos/, benchmarks/) share: the ``--quick`` flag, widths."""
import argparse


def parse_with_quick(parser, argv, quick):
    r"""``parser.parse_args(argv)``; when it sets ``--quick``, parse again with the dict
    ``quick`` as the defaults, so that a smoke run is short and flags given explicitly still win.
    """
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def widths(text):
    r"""``"8,6"`` -> (8, 6); ``""`` or ``"none"`` -> () (no hidden layer)."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"hidden widths must be comma-separated integers like 8,6 (or '' for none), "
            f"got {text!r}") from None
