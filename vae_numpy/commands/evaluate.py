r"""Evaluate a trained VAE: importance-weighted -log p(x), -ELBO, rate/distortion, diagnostics.

Loads a checkpoint written by ``vae-numpy train``, takes the first N test images of the data,
binarized exactly as the model's test set was (the fixed-seed binarize_test_set, for models
trained on binarized data), and writes DIR/evaluation.json and DIR/kl_per_dimension.png:

    iw_nll       -IW_K, the importance-weighted estimate of -log p(x) (Burda et al. 2015), nats
    neg_elbo     -ELBO = rec + kl with one z per example, nats
    rec, kl      distortion and rate
    active_units dimensions with Var_x(E_q[z_j]) > 0.01
    mutual_information  the estimate of I(x; z) under q (at most log N)

    python -m vae_numpy evaluate runs/mnist/checkpoint.npz --data mnist.npz --k 1000 --n 2000 \
        --out-dir runs/mnist_eval

(``vae-numpy evaluate`` is the same command; so is ``python demos/evaluate.py`` in a clone.)
"""
import argparse
import json
import os
import sys

import numpy as np

from ..data import binarize_test_set, load_dataset
from ..evaluate import evaluate_model
from ..figures.diagnostic_plots import plot_kl_per_dimension
from ..files.atomic import atomic_write
from ..files.checkpoint import load_checkpoint
from .flags import parse_with_quick
# The synthetic test-set size `train` uses when its --n-test is not given; the synthetic
# digits depend on the size drawn, so the same size must be drawn here.
from .train import N_TEST_SYNTHETIC

PROG = "vae-numpy evaluate"    # the command's name in its usage and error lines

# --- hyperparameters ----------------------------------------------------------------------------
K = 1000            # importance samples per example
N = 2000            # first N test images
BATCH_SIZE = 100    # examples per chunk of the IW estimate
CHUNK_SIZE = 50     # importance samples per chunk: memory ~ CHUNK_SIZE x BATCH_SIZE x D floats
QUICK = dict(k=20, n=100)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="checkpoint.npz written by vae-numpy train")
    parser.add_argument("--data", default=None,
                        help="the data the model was trained on (path or 'synthetic'); "
                             "default: the one recorded in the checkpoint")
    parser.add_argument("--k", type=int, default=K, help="importance samples per example")
    parser.add_argument("--n", type=int, default=N, help="evaluate the first N test images")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    parser.add_argument("--bits-per-dim", action="store_true", help="also report bits/dim")
    parser.add_argument("--out-dir", default="runs/evaluate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"a few seconds: defaults {QUICK} unless given")
    args = parse_with_quick(parser, argv, QUICK)
    return args


def log(message):
    print(message, file=sys.stderr, flush=True)


def test_images(ckpt, data_arg, n):
    r"""The first n test images of the data the checkpoint was trained on, binarized like its
    test set: binarize_test_set (fixed seed) unless it was trained with binarize = none."""
    train_args = ckpt.extra.get("args", {})
    source = data_arg or train_args.get("data")
    if source is None:
        fail("the checkpoint does not record its data; pass --data PATH")
    kw = {}
    if source == "synthetic":
        # the test digits come from their own seed: n_train does not change them
        kw = dict(n_train=1, n_test=train_args.get("n_test") or N_TEST_SYNTHETIC,
                  seed=train_args.get("seed", 0))
    data = load_dataset(source, dtype=np.dtype(ckpt.config.dtype), **kw)
    default = "dynamic" if ckpt.config.likelihood == "bernoulli" else "none"
    binarize = train_args.get("binarize", default)
    x = data.x_test
    if binarize != "none":
        x = binarize_test_set(x)  # whole test set, then slice: rows don't depend on n
    if n > len(x):
        fail(f"--n {n} but the test set has only {len(x)} images; pass --n {len(x)} or less")
    return x[:n], source, binarize


def fail(message):
    r"""End the command with one line on stderr and exit status 1 (no traceback); the library
    raises, the command line turns what a user can act on into this line."""
    raise SystemExit(f"{PROG}: error: {message}")


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (OSError, ValueError, FloatingPointError) as err:   # files, data, flags, a bad model
        fail(str(err))


def run(args):
    os.makedirs(args.out_dir, exist_ok=True)
    ckpt = load_checkpoint(args.checkpoint)
    x, source, binarize = test_images(ckpt, args.data, args.n)
    log(f"model {ckpt.config.to_json()}")
    log(f"data {source}: first {len(x)} test images, binarize={binarize}; K = {args.k}")
    result = evaluate_model(ckpt.params, x, ckpt.config, k=args.k,
                            rng=np.random.default_rng(args.seed),
                            want_bits_per_dim=args.bits_per_dim,
                            batch_size=args.batch_size, chunk_size=args.chunk_size)
    result.update(checkpoint=str(args.checkpoint), data=str(source), binarize=binarize,
                  seed=args.seed, config=ckpt.config.to_dict())
    with atomic_write(os.path.join(args.out_dir, "evaluation.json"), mode="w") as f:
        json.dump(result, f, indent=1)
    plot_kl_per_dimension(result["kl_per_dimension"], result["posterior_mean_variance"],
                          result["active_unit_threshold"],
                          os.path.join(args.out_dir, "kl_per_dimension.png"))
    print(f"-log p(x) ~ -IW_{args.k} = {result['iw_nll']:.3f} +- {result['iw_nll_se']:.3f} nats "
          f"(N = {len(x)})")
    print(f"-ELBO = {result['neg_elbo']:.3f} +- {result['neg_elbo_se']:.3f} = rec "
          f"{result['rec']:.3f} + kl {result['kl']:.3f}")
    print(f"active units {result['active_units']}/{ckpt.config.latent_dim}, mutual information "
          f"{result['mutual_information']:.3f} nats (ceiling log N = "
          f"{result['mutual_information_max']:.3f})")
    if args.bits_per_dim:
        print(f"bits/dim: -IW_{args.k} {result['iw_bits_per_dim']:.4f}, -ELBO "
              f"{result['neg_elbo_bits_per_dim']:.4f} ({result['bits_per_dim_note']})")
    print(f"{result['seconds']:.1f} s ({result['seconds_iw']:.1f} s for IW_{args.k})")
    return result
