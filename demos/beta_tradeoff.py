r"""Why the loss has two terms: the same VAE trained with beta from 0 to 8, and with KL only.

The objective is ``rec + beta * KL``. Theory predicts, and this demo shows:

- beta = 0 (an autoencoder with noise): rec is smallest and KL large; the codes spread
  anywhere, so z ~ N(0, I) lands where the decoder has never been: bad samples.
- beta = 1: the ELBO; reconstructions and samples both reasonable.
- large beta: KL is pushed towards 0, dimensions switch off (fewer active units), and
  reconstructions blur towards the mean image: the model pays for information about x.
- KL only (rec switched off, ``rec_weight = 0``): q(z|x) = N(0, I) for every x, KL -> 0, no
  active units, and the decoder, which gets no gradient, stays at its initialization (its
  output bias is set to the logit of the data mean, so it draws the mean image).

Writes rate_distortion.png (distortion against rate, one point per setting), settings.png (for
each setting a row of reconstructions and a row of prior samples), beta_tradeoff.json, and
prints rate, distortion, -ELBO, IW estimate, active units, mutual information and the KL per
latent dimension of each setting.

    python demos/beta_tradeoff.py --out-dir runs/beta_tradeoff
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
from vae_numpy import VAEConfig, init_params, reconstruct, sample  # noqa: E402
from vae_numpy.files.atomic import atomic_write  # noqa: E402
from vae_numpy.data import binarize_test_set, load_dataset  # noqa: E402
from vae_numpy.figures.diagnostic_plots import (plot_rate_distortion,  # noqa: E402
                                               plot_setting_rows)
from vae_numpy.evaluate import evaluate_model  # noqa: E402
from vae_numpy.optim import Adam  # noqa: E402
from vae_numpy.train import init_output_bias, train  # noqa: E402

# --- hyperparameters ----------------------------------------------------------------------------
BETAS = (0.0, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0)
KL_ONLY = True               # also train with the reconstruction term switched off
N_TRAIN, N_TEST = 10_000, 1000
LATENT_DIM, HIDDEN = 16, (256,)
EPOCHS, BATCH_SIZE, LR = 20, 128, 1e-3
DTYPE = "float32"
K_IW = 100                   # importance samples for the IW estimate of -log p(x)
N_SHOW = 10                  # images per row in the figure
QUICK = dict(N_TRAIN=1500, N_TEST=200, LATENT_DIM=8, HIDDEN=(64,), EPOCHS=3, K_IW=10)
# --quick trains too little for the images to show the trade-off; its figures say so
SMOKE = "smoke run (--quick: {EPOCHS} epochs on {N_TRAIN} images): "
SMOKE_TITLES = {"rate_distortion": SMOKE + "the trade-off's direction only;\nthe full run "
                                           "(without --quick) is in docs/evaluation.md",
                "settings": SMOKE + "too short for the settings' images to differ;\nrun "
                                    "without --quick to see them"}

PROG = "beta_tradeoff.py"   # the demo's name in its error lines


def build_parser():
    parser = CommandParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="runs/beta_tradeoff")
    parser.add_argument("--seed", type=NONNEGATIVE_INT, default=0)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    add_threads_flag(parser)
    return parser


def parse_args(argv):
    return build_parser().parse_args(argv)


def log(message):
    print(message, file=sys.stderr, flush=True)


def settings():
    r"""(label, beta, rec_weight) of every run."""
    runs = [(f"beta={b:g}", b, 1.0) for b in BETAS]
    if KL_ONLY:
        runs.append(("KL only", 1.0, 0.0))
    return runs


def train_one(label, beta, rec_weight, data, hp, seed):
    r"""Train one setting from the same initialization and seed; return params and config."""
    cfg = VAEConfig(input_dim=data.x_train.shape[1], latent_dim=hp["LATENT_DIM"],
                    encoder_hidden=hp["HIDDEN"], decoder_hidden=hp["HIDDEN"], beta=beta,
                    rec_weight=rec_weight, dtype=DTYPE)
    params = init_params(cfg, np.random.default_rng(seed))
    init_output_bias(params, data.x_train, cfg)
    log(f"--- {label}")
    train(params, cfg, data.x_train, optimizer=Adam(LR), rng=np.random.default_rng(seed + 1),
          epochs=hp["EPOCHS"], batch_size=BATCH_SIZE, binarize="dynamic")
    return params, cfg


def print_table(rows):
    print(f"{'setting':>10} {'rate (KL)':>10} {'distortion':>11} {'-ELBO':>9} {'-IW_K':>9} "
          f"{'active':>7} {'MI':>6}")
    for r in rows:
        print(f"{r['label']:>10} {r['kl']:>10.2f} {r['rec']:>11.2f} {r['neg_elbo']:>9.2f} "
              f"{r['iw_nll']:>9.2f} {r['active_units']:>7d} {r['mutual_information']:>6.2f}")
    print("KL per latent dimension (nats), dimensions sorted by KL:")
    for r in rows:
        per_dim = sorted(r["kl_per_dimension"], reverse=True)
        print(f"{r['label']:>10} " + " ".join(f"{v:5.2f}" for v in per_dim))


def main(argv=None):
    args = parse_args(argv)
    return run_command(PROG, lambda: run(args))


def run(args):
    r"""The demo, once its arguments are parsed: checks before the work, then the work."""
    figures = check_out_dir_and_figures(args.out_dir)
    hp = dict(N_TRAIN=N_TRAIN, N_TEST=N_TEST, LATENT_DIM=LATENT_DIM, HIDDEN=HIDDEN,
              EPOCHS=EPOCHS, K_IW=K_IW)
    if args.quick:
        hp.update(QUICK)
    os.makedirs(args.out_dir, exist_ok=True)
    log(describe(thread_choice()))
    data = load_dataset("synthetic", dtype=np.dtype(DTYPE), n_train=hp["N_TRAIN"],
                        n_test=hp["N_TEST"], seed=args.seed)
    x_test = binarize_test_set(data.x_test)
    rows, figure_rows = [], [("data", x_test[:N_SHOW], None)]
    for label, beta, rec_weight in settings():
        params, cfg = train_one(label, beta, rec_weight, data, hp, args.seed)
        result = evaluate_model(params, x_test, cfg, k=hp["K_IW"],
                                rng=np.random.default_rng(args.seed), progress=False)
        result.update(label=label, beta=beta, rec_weight=rec_weight)
        rows.append(result)
        figure_rows.append((label, reconstruct(params, x_test[:N_SHOW], cfg),
                            sample(params, N_SHOW, cfg, np.random.default_rng(args.seed))))
    print_table(rows)
    titles = {k: t.format(**hp) if args.quick else None for k, t in SMOKE_TITLES.items()}
    with atomic_write(os.path.join(args.out_dir, "beta_tradeoff.json"), "w") as f:
        json.dump({"threads": thread_choice(),
                   "hyperparameters": {k: list(v) if isinstance(v, tuple) else v
                                       for k, v in hp.items()}, "settings": rows}, f, indent=1)
    if figures:
        plot_rate_distortion([r["label"] for r in rows], [r["kl"] for r in rows],
                             [r["rec"] for r in rows],
                             os.path.join(args.out_dir, "rate_distortion.png"),
                             title=titles["rate_distortion"])
        plot_setting_rows(figure_rows, data.image_shape,
                          os.path.join(args.out_dir, "settings.png"), title=titles["settings"])
    return rows


if __name__ == "__main__":
    main()
