r"""Why the reparameterization trick: same gradient as REINFORCE, far less variance.

The ELBO's gradient with respect to the encoder outputs (mu, logvar) needs the gradient of
E_q[log p(x|z)] (the KL term's is analytic). Two unbiased estimators, from the same samples
z = mu + exp(logvar / 2) * eps:

    pathwise (reparameterization):  d/dmu = f'(z),  d/dlogvar = f'(z) * 0.5 * std * eps
    score function (REINFORCE):      d/dmu = f(z) eps / std,  d/dlogvar = f(z) * 0.5 (eps**2 - 1)

with f(z) = log p(x|z). The model is the linear-Gaussian VAE of vae_numpy.linear_gaussian,
where the exact gradient is known in closed form, and q is its best diagonal Gaussian
(exact mean, variance 1 / diag(posterior precision)), as a trained encoder would give.
The figure shows the means against the exact gradient, and the variance of the S-sample
average against S on log-log axes; the table prints the numbers.

    python demos/reparam_vs_score.py --out-dir runs/reparam_vs_score
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
from vae_numpy.figures.diagnostic_plots import (ESTIMATOR_LABELS,  # noqa: E402
                                               plot_gradient_variance)
from vae_numpy.estimators import gradient_variance_study, reconstruction_integrand  # noqa: E402

# --- hyperparameters ----------------------------------------------------------------------------
INPUT_DIM, LATENT_DIM, SIGMA = 20, 4, 0.5
W_SCALE = 0.5                 # decoder W ~ N(0, W_SCALE**2)
SAMPLE_COUNTS = (1, 3, 10, 30, 100, 300, 1000)
N_REPLICATES = 200            # groups of S samples behind each variance
QUICK = dict(SAMPLE_COUNTS=(1, 10, 100), N_REPLICATES=20)

PROG = "reparam_vs_score.py"   # the demo's name in its error lines


def build_parser():
    parser = CommandParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="runs/reparam_vs_score")
    parser.add_argument("--seed", type=NONNEGATIVE_INT, default=0)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    add_threads_flag(parser)
    return parser


def parse_args(argv):
    return build_parser().parse_args(argv)


def build_problem(rng):
    r"""A linear-Gaussian VAE, one x from it, and q(z|x) from the best diagonal encoder."""
    W = W_SCALE * rng.standard_normal((LATENT_DIM, INPUT_DIM))
    b = rng.standard_normal(INPUT_DIM)
    x = lg.sample_data(1, W, b, SIGMA, rng)  # (1, D)
    enc_W, enc_b, logvar_b = lg.posterior_encoder(W, b, SIGMA)
    params = lg.vae_params(W, b, enc_W, enc_b, logvar_b)
    mu, logvar = x @ enc_W + enc_b, logvar_b[None, :]  # (1, J)
    return W, b, x, params, mu, logvar


def print_table(study, exact_mu, exact_logvar):
    J = len(exact_mu)
    print("gradient of E_q[log p(x|z)]: mean +- SE over all samples, against the exact value")
    header = f"{'':>7} {'exact':>9}" + "".join(f" {name:>21}" for name in ESTIMATOR_LABELS)
    print(header)
    for label, exact in (("mu", exact_mu), ("logvar", exact_logvar)):
        for j in range(J):
            row = f"{label + str(j):>7} {exact[j]:>9.4f}"
            for name in ESTIMATOR_LABELS:
                m, se = study[name]["mean_" + label][j], study[name]["se_" + label][j]
                row += f" {m:>11.4f} +-{se:<7.4f}"
            print(row)
    print("variance of the S-sample estimate, summed over components")
    print(f"{'S':>6}" + "".join(f" {name + ' ' + lbl:>24}" for lbl in ("mu", "logvar")
                                  for name in ESTIMATOR_LABELS))
    for i, s in enumerate(study["sample_counts"]):
        print(f"{s:>6}" + "".join(f" {study[name]['var_' + lbl][i]:>24.4g}"
                                  for lbl in ("mu", "logvar") for name in ESTIMATOR_LABELS))


def main(argv=None):
    args = parse_args(argv)
    return run_command(PROG, lambda: run(args))


def run(args):
    r"""The demo, once its arguments are parsed: checks before the work, then the work."""
    figures = check_out_dir_and_figures(args.out_dir)
    hp = dict(SAMPLE_COUNTS=SAMPLE_COUNTS, N_REPLICATES=N_REPLICATES)
    if args.quick:
        hp.update(QUICK)
    os.makedirs(args.out_dir, exist_ok=True)
    print(describe(thread_choice()), file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    W, b, x, params, mu, logvar = build_problem(rng)
    f, df = reconstruction_integrand(params, x, lg.linear_gaussian_config(INPUT_DIM, LATENT_DIM,
                                                                          SIGMA))
    study = gradient_variance_study(f, df, mu, logvar, hp["SAMPLE_COUNTS"], hp["N_REPLICATES"],
                                    rng)
    exact_mu, exact_logvar = (g[0] for g in lg.expected_log_likelihood_grad(x, mu, logvar, W, b,
                                                                              SIGMA))
    print_table(study, exact_mu, exact_logvar)
    result = {"threads": thread_choice(), "exact_mu": exact_mu.tolist(),
              "exact_logvar": exact_logvar.tolist(),
              "sample_counts": list(study["sample_counts"]), "baseline": study["baseline"]}
    for name in ESTIMATOR_LABELS:
        result[name] = {k: np.asarray(v).tolist() for k, v in study[name].items()}
    with atomic_write(os.path.join(args.out_dir, "reparam_vs_score.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    if figures:
        plot_gradient_variance(study, exact_mu, exact_logvar,
                               os.path.join(args.out_dir, "reparam_vs_score.png"))
    return result


if __name__ == "__main__":
    main()
