r"""The analytic KL against its Monte Carlo estimate, and what the variance-as-std bug looks like.

KL(q || N(0, I)) for q = N(mu, diag(exp(logvar))) has the closed form
``0.5 * sum_j (mu_j**2 + exp(logvar_j) - 1 - logvar_j)`` (Kingma & Welling 2014, App. B). Its
Monte Carlo estimate, the mean of ``log q(z) - log p(z)`` over z ~ q, converges to it with
standard errors that shrink as 1/sqrt(S), if the sampler draws from q. A sampler that uses
the variance exp(logvar) as the standard deviation (a bug in a well-known NumPy VAE) draws
from another distribution, and its estimate converges, just as confidently, to a wrong value.

    python demos/kl_monte_carlo.py --out-dir runs/kl_monte_carlo
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
from vae_numpy.files.atomic import atomic_write  # noqa: E402
from vae_numpy.figures.diagnostic_plots import plot_kl_convergence  # noqa: E402
from vae_numpy.estimators import (kl_monte_carlo, running_mean_and_stderr,  # noqa: E402
                                  variance_as_std_sample)
from vae_numpy.gaussian import kl_standard_normal, reparameterize_forward  # noqa: E402

# --- hyperparameters ----------------------------------------------------------------------------
LATENT_DIM = 20
MU_SCALE = 1.0                   # mu_j ~ N(0, MU_SCALE**2)
LOGVAR_RANGE = (-4.0, 0.0)       # logvar_j ~ U(range): a trained encoder's posteriors are narrow
MAX_SAMPLES = 100_000
N_POINTS = 40                    # sample counts, log-spaced from 2 to MAX_SAMPLES
QUICK = dict(MAX_SAMPLES=2_000, N_POINTS=12)

PROG = "kl_monte_carlo.py"   # the demo's name in its error lines


def build_parser():
    parser = CommandParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="runs/kl_monte_carlo")
    parser.add_argument("--seed", type=NONNEGATIVE_INT, default=0)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    add_threads_flag(parser)
    return parser


def parse_args(argv):
    return build_parser().parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return run_command(PROG, lambda: run(args))


def run(args):
    r"""The demo, once its arguments are parsed: checks before the work, then the work."""
    figures = check_out_dir_and_figures(args.out_dir)
    hp = dict(MAX_SAMPLES=MAX_SAMPLES, N_POINTS=N_POINTS)
    if args.quick:
        hp.update(QUICK)
    os.makedirs(args.out_dir, exist_ok=True)
    print(describe(thread_choice()), file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    mu = MU_SCALE * rng.standard_normal((1, LATENT_DIM))  # (1, J)
    logvar = rng.uniform(*LOGVAR_RANGE, (1, LATENT_DIM))
    eps = rng.standard_normal((hp["MAX_SAMPLES"], 1, LATENT_DIM))  # (S, 1, J)
    counts = np.unique(np.geomspace(2, hp["MAX_SAMPLES"], hp["N_POINTS"]).astype(int))

    exact = float(kl_standard_normal(mu, logvar)[0])
    z_right, _ = reparameterize_forward(mu, logvar, eps)
    z_bug = variance_as_std_sample(mu, logvar, eps)
    curves = {
        "z = mu + exp(logvar / 2) * eps  (correct)":
            running_mean_and_stderr(kl_monte_carlo(z_right, mu, logvar)[:, 0], counts),
        "z = mu + exp(logvar) * eps  (variance used as std: the bug)":
            running_mean_and_stderr(kl_monte_carlo(z_bug, mu, logvar)[:, 0], counts),
    }
    print(f"analytic KL = {exact:.4f} nats (J = {LATENT_DIM})")
    print(f"{'samples':>8} {'correct':>18} {'variance as std':>18}")
    (m_right, se_right), (m_bug, se_bug) = curves.values()
    for i, n in enumerate(counts):
        print(f"{n:>8} {m_right[i]:>10.4f} +-{se_right[i]:<6.4f} "
              f"{m_bug[i]:>10.4f} +-{se_bug[i]:<6.4f}")
    result = {"threads": thread_choice(), "exact": exact, "counts": counts.tolist(),
              "correct": [m_right.tolist(), se_right.tolist()],
              "variance_as_std": [m_bug.tolist(), se_bug.tolist()]}
    with atomic_write(os.path.join(args.out_dir, "kl_monte_carlo.json"), "w") as f:
        json.dump(result, f, indent=1)
    if figures:
        plot_kl_convergence(counts, curves, exact,
                            os.path.join(args.out_dir, "kl_monte_carlo.png"))
    return result


if __name__ == "__main__":
    main()
