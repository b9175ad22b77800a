r"""The Jensen step of the ELBO made visible, on a VAE whose log p(x) is exact.

The linear-Gaussian VAE p(z) = N(0, I), p(x|z) = N(z @ W + b, sigma**2 I) has
p(x) = N(b, W.T W + sigma**2 I) and a Gaussian posterior p(z|x), both in closed form
(vae_numpy.linear_gaussian). With an encoder q(z|x) that is not the posterior, this demo shows

    log p(x) - ELBO = KL(q(z|x) || p(z|x))         (closed form vs Monte Carlo)
    ELBO <= IW_K <= log p(x), IW_K -> log p(x)      (Burda et al. 2016)

and prints the numbers behind the figure ``elbo_gap.png``.

    python demos/elbo_gap.py --out-dir runs/elbo_gap
"""
import json
import os
import sys

from vae_numpy.commands.threads import (add_threads_flag, describe,  # imports no numpy
                                        set_thread_default, thread_choice)

if __name__ == "__main__":  # as a script: the thread default, before numpy is imported
    set_thread_default(sys.argv[1:])

import numpy as np  # noqa: E402

from vae_numpy.commands.flags import NONNEGATIVE_INT, CommandParser  # noqa: E402
from vae_numpy.commands.preflight import check_out_dir_and_figures  # noqa: E402
from vae_numpy.commands.run import run_command  # noqa: E402
from vae_numpy import linear_gaussian as lg  # noqa: E402
from vae_numpy.files.atomic import atomic_write  # noqa: E402
from vae_numpy.figures.diagnostic_plots import plot_bound_gaps  # noqa: E402

# --- hyperparameters ----------------------------------------------------------------------------
INPUT_DIM, LATENT_DIM, SIGMA = 12, 4, 0.5
ROW_NORMS = (2.0, 1.5, 1.0, 0.6)   # orthogonal decoder rows: the exact posterior is diagonal
# The encoder: the exact posterior, spoiled the way an imperfect amortized encoder is:
MEAN_SCALE = 0.8                   # its mean map shrunk by 20%,
MEAN_SHIFT = 0.2                   # shifted,
LOGVAR_SHIFT = -1.0                # and a variance e times too small (over-confident)
N_EXAMPLES = 500
KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
N_ELBO_SAMPLES = 200
QUICK = dict(N_EXAMPLES=60, KS=(1, 10, 100), N_ELBO_SAMPLES=20)

PROG = "elbo_gap.py"   # the demo's name in its error lines


def build_parser():
    parser = CommandParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="runs/elbo_gap")
    parser.add_argument("--seed", type=NONNEGATIVE_INT, default=0)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    add_threads_flag(parser)
    return parser


def parse_args(argv):
    return build_parser().parse_args(argv)


def build_model(rng):
    r"""Decoder (W, b), data from p(x), and vae_numpy params whose q is not the posterior."""
    W = lg.orthogonal_decoder(LATENT_DIM, INPUT_DIM, np.array(ROW_NORMS), rng)
    b = rng.standard_normal(INPUT_DIM)
    enc_W, enc_b, logvar_b = lg.posterior_encoder(W, b, SIGMA)
    params = lg.vae_params(W, b, MEAN_SCALE * enc_W, enc_b + MEAN_SHIFT, logvar_b + LOGVAR_SHIFT)
    return W, b, params


def print_table(s):
    print(f"mean over examples: log p(x) = {s['log_px']:.4f}, ELBO = {s['elbo']:.4f} nats")
    print(f"log p(x) - ELBO (Monte Carlo)       = {s['elbo_gap']:.4f} +- {s['elbo_gap_se']:.4f}")
    print(f"log p(x) - ELBO (closed form)       = {s['elbo_exact_gap']:.4f}")
    print(f"KL(q(z|x) || p(z|x)) (closed form)  = {s['kl']:.4f}")
    print(f"paired (gap - KL), should be 0      = {s['gap_minus_kl']:.4f} +- "
          f"{s['gap_minus_kl_se']:.4f}")
    print(f"{'K':>6} {'IW_K':>10} {'log p(x) - IW_K':>16} {'SE':>8}")
    for k, iw, gap, se in zip(s["ks"], s["iw"], s["iw_gap"], s["iw_gap_se"]):
        print(f"{k:>6} {iw:>10.4f} {gap:>16.4f} {se:>8.4f}")


def main(argv=None):
    args = parse_args(argv)
    return run_command(PROG, lambda: run(args))


def run(args):
    r"""The demo, once its arguments are parsed: checks before the work, then the work."""
    figures = check_out_dir_and_figures(args.out_dir)
    hp = dict(N_EXAMPLES=N_EXAMPLES, KS=KS, N_ELBO_SAMPLES=N_ELBO_SAMPLES)
    if args.quick:
        hp.update(QUICK)
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    W, b, params = build_model(rng)
    x = lg.sample_data(hp["N_EXAMPLES"], W, b, SIGMA, rng)
    print(describe(thread_choice()), file=sys.stderr)
    print(f"linear-Gaussian VAE, D = {INPUT_DIM}, J = {LATENT_DIM}, sigma = {SIGMA}, "
          f"{len(x)} examples", file=sys.stderr)
    bounds = lg.compare_bounds(params, x, W, b, SIGMA, hp["KS"], rng, hp["N_ELBO_SAMPLES"])
    summary = lg.summarize_bounds(bounds)
    print_table(summary)
    summary["threads"] = thread_choice()
    with atomic_write(os.path.join(args.out_dir, "elbo_gap.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if figures:
        plot_bound_gaps(summary, os.path.join(args.out_dir, "elbo_gap.png"))
    return summary


if __name__ == "__main__":
    main()
