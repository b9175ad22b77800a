r"""Check a PyTorch VAE against vae_numpy, end to end (the worked example of docs/crosscheck.md).

    python demos/check_pytorch.py                        # the 784-400-20 VAE: PASS, exit code 0
    python demos/check_pytorch.py --plant-bug std        # sampler uses exp(logvar) as std: FAIL, 1
    python demos/check_pytorch.py --plant-bug kl_sign    # KL with the wrong sign: FAIL, 1
    python demos/check_pytorch.py --plant-bug bce_mean   # BCE averaged over pixels: FAIL, 1
    python demos/check_pytorch.py --dtype float32        # the model in float32: float32 tolerance
    python demos/check_pytorch.py --quick --out-dir runs/check   # small; saves report + fixture

The steps, which are the same for any framework:
    1. vae_numpy makes a fixture: parameters, a batch x, the noise eps, and its loss, per-example
       rec and kl, z, and every gradient.
    2. The parameters go into the PyTorch model: nn.Linear.weight = W.T, bias = b
       (vae_numpy.crosscheck.interop.load_torch).
    3. The model runs forward with the fixture's x and eps (not its own torch.randn_like), and
       backward.
    4. The loss, every gradient (interop.torch_grads maps them back to vae_numpy names) and the
       terms go to vae_numpy.crosscheck.compare, which prints a table, worst tensor first, and
       a verdict.
The exit code is 0 on PASS, 1 on FAIL, 3 on INCOMPLETE and 2 on a usage or file error (as
`python -m vae_numpy compare`).
"""
import argparse
import os
import sys

from vae_numpy.commands.threads import (add_threads_flag, describe,  # imports no numpy
                                        set_thread_default, thread_choice)

if __name__ == "__main__":  # as a script: the thread default, before numpy is imported
    set_thread_default(sys.argv[1:])

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from vae_numpy import VAEConfig  # noqa: E402
from vae_numpy.__main__ import EXIT_CODES, fixture_bytes  # noqa: E402
from vae_numpy.commands.flags import (NONNEGATIVE_INT, POSITIVE_INT,  # noqa: E402
                                      CommandParser, parse_with_quick)
from vae_numpy.commands.preflight import check_memory, check_out_dir  # noqa: E402
from vae_numpy.commands.run import EXIT_USAGE, run_command  # noqa: E402
from vae_numpy.crosscheck import compare, make_fixture, write_fixture, write_report  # noqa: E402
from vae_numpy.crosscheck.interop import load_torch, torch_grads  # noqa: E402

# --- hyperparameters (defaults of the flags) -------------------------------------------------
INPUT_DIM = 784      # 28 x 28 images, as pytorch/examples/vae
HIDDEN = 400
LATENT = 20
BATCH = 8
SEED = 0
REDUCTION = "sum"    # pytorch/examples sums the loss over the batch
DTYPE = "float64"    # float64 checks to 1e-10; float32 to the float32 tolerance
QUICK = dict(input_dim=64, hidden=32, latent=4, batch=4)
BUGS = ("none", "std", "kl_sign", "bce_mean")
PROG = "check_pytorch.py"   # the demo's name in its error lines

# Which vae_numpy layer each nn.Linear of the model is.
LAYER_NAMES = {"fc1": "enc.0", "fc21": "enc.mu", "fc22": "enc.logvar",
               "fc3": "dec.0", "fc4": "dec.out"}


# --- the PyTorch VAE being checked, written the usual way -----------------------------------

class VAE(nn.Module):
    r"""The pytorch/examples VAE, except that the decoder returns logits (pytorch/examples
    applies a sigmoid and then BCE; BCE-with-logits is the same loss, computed stably).

    ``plant_bug`` puts one of three well-known mistakes into the model, to show a failure.
    """

    def __init__(self, input_dim=784, hidden=400, latent=20, plant_bug="none"):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, input_dim)
        self.plant_bug = plant_bug

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar, eps):
        if self.plant_bug == "std":
            std = torch.exp(logvar)          # BUG: that is the variance
        else:
            std = torch.exp(0.5 * logvar)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return self.fc4(h3)                  # logits

    def forward(self, x, eps):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, eps)
        return self.decode(z), mu, logvar, z


def loss_function(x_logits, x, mu, logvar, plant_bug="none"):
    r"""Per-example BCE (summed over pixels) and KLD; the loss sums both over the batch."""
    bce = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")
    if plant_bug == "bce_mean":
        bce = bce.mean(dim=1)                # BUG: averaged over pixels
    else:
        bce = bce.sum(dim=1)
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    if plant_bug == "kl_sign":
        kld = -kld                           # BUG: the sign
    return bce, kld


# --- running the model on the fixture -----------------------------------------------------

def run_model(model, fixture, reduction):
    r"""Forward with the fixture's x and eps, backward; the candidate dict for compare().

    Gradients by vae_numpy names with W as (in, out): interop.torch_grads transposes
    nn.Linear's (out, in) weight gradients."""
    dtype = model.fc1.weight.dtype
    x = torch.from_numpy(fixture["x"]).to(dtype)
    eps = torch.from_numpy(fixture["eps"]).to(dtype)
    x_logits, mu, logvar, z = model(x, eps)
    rec, kl = loss_function(x_logits, x, mu, logvar, model.plant_bug)
    loss = (rec + kl).sum() if reduction == "sum" else (rec + kl).mean()
    model.zero_grad()
    loss.backward()
    return {"loss": loss, "rec": rec, "kl": kl, "z": z, "mu": mu, "logvar": logvar,
            "grads": torch_grads(model, LAYER_NAMES)}


# --- the script ----------------------------------------------------------------------------

def build_parser():
    parser = CommandParser(prog=PROG, description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plant-bug", choices=BUGS, default="none",
                        help="put a known mistake into the PyTorch model (default none)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default=DTYPE,
                        help="precision of the PyTorch model (the fixture is float64)")
    parser.add_argument("--input-dim", type=POSITIVE_INT, default=INPUT_DIM)
    parser.add_argument("--hidden", type=POSITIVE_INT, default=HIDDEN)
    parser.add_argument("--latent", type=POSITIVE_INT, default=LATENT)
    parser.add_argument("--batch", type=POSITIVE_INT, default=BATCH)
    parser.add_argument("--reduction", choices=("sum", "mean"), default=REDUCTION)
    parser.add_argument("--seed", type=NONNEGATIVE_INT, default=SEED)
    parser.add_argument("--out-dir", default=None,
                        help="if given, write report.txt and fixture.npz there")
    parser.add_argument("--quick", action="store_true",
                        help=f"a small model for a smoke test: defaults {QUICK} unless given")
    return parser


def parse_args(argv):
    parser = add_threads_flag(build_parser())
    args = parse_with_quick(parser, argv, QUICK)
    return args


def main(argv=None):
    args = parse_args(argv)
    return run_command(PROG, lambda: run(args), error_status=EXIT_USAGE)


def run(args):
    cfg = VAEConfig(input_dim=args.input_dim, latent_dim=args.latent,
                    encoder_hidden=(args.hidden,), decoder_hidden=(args.hidden,),
                    activation="relu", likelihood="bernoulli")
    if args.out_dir:
        check_out_dir(args.out_dir)
    check_memory(2 * fixture_bytes(cfg, args.batch), f"the fixture and the PyTorch model "
                 f"({args.input_dim}-{args.hidden}-{args.latent}, batch {args.batch})",
                 "lower --input-dim, --hidden, --latent or --batch")

    print(describe(thread_choice()), file=sys.stderr)
    print(f"1. vae_numpy fixture: {args.input_dim}-{args.hidden}-{args.latent}, batch "
          f"{args.batch}, reduction {args.reduction!r}, seed {args.seed}", file=sys.stderr)
    fixture = make_fixture(cfg, args.batch, args.seed, reduction=args.reduction)

    print(f"2. load it into the PyTorch VAE ({args.dtype}, plant_bug={args.plant_bug!r})",
          file=sys.stderr)
    model = VAE(args.input_dim, args.hidden, args.latent, plant_bug=args.plant_bug)
    model.to(getattr(torch, args.dtype))
    load_torch(model, fixture, LAYER_NAMES)

    print("3. forward with the fixture's x and eps, backward", file=sys.stderr)
    candidate = run_model(model, fixture, args.reduction)

    print("4. compare\n", file=sys.stderr)
    report = compare(fixture, candidate)
    print(report)

    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        write_report(os.path.join(args.out_dir, "report.txt"), report)
        write_fixture(os.path.join(args.out_dir, "fixture.npz"), fixture)
        print(f"\nwrote {args.out_dir}/report.txt and fixture.npz", file=sys.stderr)
    return EXIT_CODES[report.status]


if __name__ == "__main__":
    sys.exit(main())
