r"""What the commands and scripts (demos/, benchmarks/) share: the ``--quick`` flag."""


def parse_with_quick(parser, argv, quick):
    r"""``parser.parse_args(argv)``; when it sets ``--quick``, parse again with the dict
    ``quick`` as the defaults, so that a smoke run is short and flags given explicitly still win.
    """
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args
