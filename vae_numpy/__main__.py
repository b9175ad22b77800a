r"""Command line: ``python -m vae_numpy train|evaluate|fixture|compare ...`` (or ``vae-numpy``).

    python -m vae_numpy train --quick --out-dir runs/quick          # train, metrics, figures
    python -m vae_numpy evaluate runs/quick/checkpoint.npz --quick  # -log p(x) and diagnostics

    python -m vae_numpy fixture --out case.npz                       # a small float64 case
    python -m vae_numpy fixture --out case.npz --input-dim 784 --encoder-hidden 400 \
        --decoder-hidden 400 --latent 20 --batch 8 --reduction sum
    python -m vae_numpy compare case.npz mine.npz [--pytorch-layout]
    python -m vae_numpy fixture --out iwae.npz --objective iwae --k 5  # the IWAE bound, K = 5
    python -m vae_numpy compare iwae.npz mine.npz --estimator dreg      # an STL/DReG candidate

Exit codes of compare: 0 PASS, 1 FAIL, 3 INCOMPLETE (nothing compared disagrees, but the loss
or a gradient is missing or a key was not recognised), 2 a usage or file error. Output piped
into a reader that stops early (``| head``) ends the command quietly with its usual code.

Every command runs on one BLAS thread unless given ``--threads N`` or the thread variables
(vae_numpy.commands.threads), set before numpy is imported: this module imports the numpy side
of the package inside the functions that need it, after :func:`main` has set them.
"""
import argparse
import math
import os
import sys

from ._version import __version__
from .commands.flags import (NONNEGATIVE_INT, NONNEGATIVE_REAL, POSITIVE_INT, POSITIVE_REAL,
                             CommandParser, widths)
from .commands.preflight import check_memory, check_out_dir
from .commands.run import EXIT_INTERRUPTED, EXIT_USAGE, USER_ERRORS, CommandError, end_open_line
from .commands.threads import add_threads_flag, set_thread_default


# Commands with their own parser (vae_numpy/commands/<name>.py): everything after the name is
# theirs, flags and --help included.
SCRIPT_COMMANDS = {
    "train": "train a VAE on MNIST-like images, write metrics, checkpoint and figures",
    "evaluate": "evaluate a checkpoint: -log p(x) by importance sampling, -ELBO, diagnostics",
}


def run_script_command(name, argv):
    r"""Run ``vae_numpy.commands.<name>.main(argv)``; its dict of results is written to files
    and stdout, so the exit status is 0 (its errors exit 1 with one line, or 2 for usage)."""
    if name == "train":
        from .commands.train import main as command
    else:
        from .commands.evaluate import main as command
    command(argv)
    return 0


def build_parser():
    from .crosscheck import LOGVAR_HEADS, OBJECTIVES
    from .iwae import ESTIMATORS
    from .layers import ACTIVATIONS
    from .likelihoods import LIKELIHOODS
    from .model import DTYPES, REDUCTIONS
    parser = CommandParser(prog="python -m vae_numpy", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vae_numpy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in SCRIPT_COMMANDS.items():   # listed here; main() hands them their argv
        commands.add_parser(name, help=text + f" (see `{parser.prog} {name} --help`)",
                            add_help=False)

    fx = commands.add_parser("fixture", help="write a test case (.npz) for another framework")
    fx.add_argument("--out", required=True, help="path of the .npz to write")
    fx.add_argument("--input-dim", type=POSITIVE_INT, default=12, help="D (default 12)")
    fx.add_argument("--encoder-hidden", type=widths, default=(8,),
                    help="comma-separated widths, '' for none (default 8)")
    fx.add_argument("--decoder-hidden", type=widths, default=(8,),
                    help="comma-separated widths, '' for none (default 8)")
    fx.add_argument("--latent", type=POSITIVE_INT, default=3, help="J (default 3)")
    fx.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    fx.add_argument("--likelihood", choices=sorted(LIKELIHOODS), default="bernoulli")
    fx.add_argument("--sigma", type=POSITIVE_REAL, default=1.0, help="fixed std of 'gaussian'")
    fx.add_argument("--beta", type=NONNEGATIVE_REAL, default=1.0, help="KL weight (default 1)")
    fx.add_argument("--rec-weight", type=NONNEGATIVE_REAL, default=1.0,
                    help="reconstruction weight (default 1; 0 is the KL-only objective)")
    fx.add_argument("--reduction", choices=REDUCTIONS, default="mean",
                    help="over the batch (default mean; pytorch/examples uses sum)")
    fx.add_argument("--batch", type=POSITIVE_INT, default=4, help="B (default 4)")
    fx.add_argument("--seed", type=NONNEGATIVE_INT, default=0)
    fx.add_argument("--dtype", choices=DTYPES, default="float64")
    fx.add_argument("--objective", choices=OBJECTIVES, default="vae",
                    help="vae: the -ELBO (default); iwae: the importance-weighted bound -L_K, "
                         "with the encoder's gradient under the estimators iwae, stl and dreg")
    fx.add_argument("--k", type=POSITIVE_INT, default=None,
                    help=f"K, importance samples of an IWAE fixture (default {IWAE_K})")
    add_threads_flag(fx)

    cmp = commands.add_parser("compare", help="compare a candidate .npz with a fixture")
    cmp.add_argument("fixture", help="fixture .npz from `python -m vae_numpy fixture`")
    cmp.add_argument("candidate", help=".npz with loss [, rec, kl, z, grad/<name>]")
    cmp.add_argument("--pytorch-layout", action="store_true",
                     help="the grad/*.W arrays are (out, in) as nn.Linear.weight.grad")
    cmp.add_argument("--dtype", choices=DTYPES, default=None,
                     help="tolerance to apply (default: the less precise side's dtype)")
    cmp.add_argument("--logvar-head", choices=LOGVAR_HEADS, default="logvar",
                     help="log_sigma: the encoder's second head outputs log sigma (loaded "
                          "with 0.5 W, 0.5 b); its gradients are halved before comparing")
    cmp.add_argument("--require-all", action="store_true",
                     help="no effect since 0.2 (kept for scripts): the loss and every "
                          "gradient are always required, a missing one gives INCOMPLETE")
    cmp.add_argument("--estimator", choices=ESTIMATORS, default=None,
                     help="IWAE fixtures: the estimator of the encoder's gradient the candidate "
                          "implements (default iwae, the exact gradient of L_K)")
    add_threads_flag(cmp)
    return parser


EXIT_CODES = {"PASS": 0, "FAIL": 1, "INCOMPLETE": 3}  # crosscheck's PASS, FAIL, INCOMPLETE
IWAE_K = 5     # the importance samples of an IWAE fixture unless --k says otherwise


def fixture_bytes(cfg, batch):
    r"""About the memory make_fixture takes: the parameters and their gradients (and a copy of
    each in the file being written, 4 in all), and about 10 arrays of (B, width) per layer."""
    import numpy as np
    from .model import param_shapes
    n_params = sum(math.prod(shape) for shape in param_shapes(cfg).values())
    widths = 2 * cfg.input_dim + sum(cfg.encoder_hidden) + sum(cfg.decoder_hidden) \
        + 3 * cfg.latent_dim
    return np.dtype(cfg.dtype).itemsize * (4 * n_params + 10 * batch * widths)


def run_fixture(args):
    from .crosscheck import make_fixture, write_fixture
    from .model import VAEConfig
    cfg = VAEConfig(input_dim=args.input_dim, latent_dim=args.latent,
                    encoder_hidden=args.encoder_hidden, decoder_hidden=args.decoder_hidden,
                    activation=args.activation, likelihood=args.likelihood, beta=args.beta,
                    sigma=args.sigma, rec_weight=args.rec_weight, dtype=args.dtype)
    if args.k is not None and args.objective != "iwae":
        raise ValueError(f"--k {args.k} is the number of importance samples of an IWAE "
                         "fixture: add --objective iwae (a VAE fixture has one sample)")
    k = args.k if args.k is not None or args.objective == "vae" else IWAE_K
    check_out_dir(os.path.dirname(os.path.abspath(args.out)), "--out's directory")
    samples = args.batch * (k or 1)   # the decoder's rows: B, or K * B for the IWAE bound
    check_memory(fixture_bytes(cfg, samples), f"a fixture with D = {cfg.input_dim}, hidden "
                 f"widths {cfg.encoder_hidden} and {cfg.decoder_hidden}, J = {cfg.latent_dim}, "
                 f"B = {args.batch}" + (f", K = {k}" if k else ""),
                 "lower --input-dim, the hidden widths, --latent, --batch or --k")
    fixture = make_fixture(cfg, args.batch, args.seed, reduction=args.reduction,
                           objective=args.objective, k=k)
    path = write_fixture(args.out, fixture)
    what = f", objective='iwae', k={k}" if args.objective == "iwae" else ""
    print(f"wrote {path}: {cfg}, reduction={args.reduction!r}, batch={args.batch}, "
          f"seed={args.seed}{what}")
    print(f"  loss = {float(fixture['loss']):.17g}")
    for key, value in fixture.items():
        if key != "config":
            print(f"  {key:<24} {str(value.shape):<12} {value.dtype}")
    return 0


def run_compare(args):
    from .crosscheck import compare_files
    report = compare_files(args.fixture, args.candidate, pytorch_layout=args.pytorch_layout,
                           dtype=args.dtype, logvar_head=args.logvar_head,
                           estimator=args.estimator)
    args.exit_code = EXIT_CODES[report.status]  # known before printing, kept if the pipe closes
    print(report)
    return args.exit_code


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    set_thread_default(argv)  # before anything imports numpy
    if argv and argv[0] in SCRIPT_COMMANDS:
        return run_script_command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    args.exit_code = 0  # what a command that has done its work returns if its reader leaves
    try:
        code = {"fixture": run_fixture, "compare": run_compare}[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return code
    except BrokenPipeError:
        # The reader (e.g. `| head`) stopped reading: the work is done, only output is lost.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return args.exit_code
    except KeyboardInterrupt:
        end_open_line()
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CommandError, *USER_ERRORS) as err:   # files, values: one line, the usage status
        end_open_line()
        message = " ".join((str(err) or type(err).__name__).split())
        print(f"python -m vae_numpy {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
