r"""Evaluate a trained VAE: importance-weighted -log p(x), -ELBO, rate/distortion, diagnostics.

Loads a checkpoint written by ``vae-numpy train``, takes the first N test images of the data,
binarized exactly as the model's test set was (the fixed-seed binarize_test_set, for models
trained on binarized data), and writes DIR/evaluation.json and DIR/kl_per_dimension.png:

    iw_nll       -IW_K, the importance-weighted estimate of -log p(x) (Burda et al. 2016), nats
    neg_elbo     -ELBO = rec + kl with one z per example, nats
    rec, kl      distortion and rate
    active_units dimensions with Var_x(E_q[z_j]) > 0.01
    mutual_information  the estimate of I(x; z) under q (at most log N)

    python -m vae_numpy evaluate runs/mnist/checkpoint.npz --data mnist.npz --k 1000 --n 2000 \
        --out-dir runs/mnist_eval

(``vae-numpy evaluate`` is the same command; so is ``python demos/evaluate.py`` in a clone.)

``--against OTHER.npz`` also scores a second model on the same images with the same noise
(example n's samples come from its own stream, so with equal latent sizes and dtypes both
models see the same eps) and reports the per-image difference of -IW_K, this model's minus the other's, with
its paired standard error: far smaller than either model's spread over images, because the
hard images are hard for both.
"""
import json
import os
import sys

import numpy as np

from ..data import binarize_test_set, load_dataset
from ..evaluate import evaluate_model, iw_log_likelihood, mean_and_stderr
from ..figures.diagnostic_plots import plot_kl_per_dimension
from ..files.atomic import atomic_write, remove_stale_temp_files
from ..files.checkpoint import load_checkpoint
from .flags import (NONNEGATIVE_INT, POSITIVE_INT, CommandParser, given_flags, invocation,
                    parse_with_quick)
from .preflight import NO_MATPLOTLIB, check_memory, check_out_dir, claim_out_dir, have_matplotlib
from .run import CommandError, run_command
from .threads import add_threads_flag, describe, thread_choice
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
OUT_DIR = "runs/evaluate"
OUTPUTS = ("evaluation.json", "kl_per_dimension.png")
# Memory of an importance-sampling chunk: about CHUNK_ARRAYS arrays of (chunk, batch, D)
# (the decoder's logits, their likelihood terms, temporaries).
CHUNK_ARRAYS = 4


def build_parser():
    parser = CommandParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="checkpoint.npz written by vae-numpy train")
    parser.add_argument("--data", default=None,
                        help="the data the model was trained on (path or 'synthetic'); "
                             "default: the one recorded in the checkpoint")
    parser.add_argument("--k", type=POSITIVE_INT, default=K, help="importance samples per example")
    parser.add_argument("--n", type=POSITIVE_INT, default=N,
                        help="evaluate the first N test images")
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=BATCH_SIZE)
    parser.add_argument("--chunk-size", type=POSITIVE_INT, default=CHUNK_SIZE)
    parser.add_argument("--bits-per-dim", action="store_true", help="also report bits/dim")
    parser.add_argument("--against", default=None, metavar="CHECKPOINT",
                        help="a second model to compare with: the per-image difference of "
                             "-IW_K on the same images and noise, with its paired SE")
    parser.add_argument("--out-dir", default=OUT_DIR,
                        help="where evaluation.json and the figure go; the default directory, "
                             f"when it holds an earlier evaluation, becomes {OUT_DIR}-2, -3, ...")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier evaluation in --out-dir")
    parser.add_argument("--seed", type=NONNEGATIVE_INT, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"a few seconds: defaults {QUICK} unless given")
    add_threads_flag(parser)
    return parser


def parse_args(argv):
    return parse_with_quick(build_parser(), argv, QUICK)


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


def test_set_treatment(train_binarize):
    r"""What the evaluation does to the test images, for a model trained with ``binarize``:
    never the training's per-minibatch draw (an evaluation of "dynamic" binarization would
    change with every run)."""
    if train_binarize == "none":
        return "not binarized (the model was trained on them as they are)"
    return (f"binarized once with a fixed seed, binarize_test_set (the model was trained with "
            f"binarize={train_binarize})")


def fail(message):
    r"""Stop the command: one line on stderr, exit status 1 (run_command)."""
    raise CommandError(message)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    return run_command(PROG, lambda: run(args, given_flags(build_parser, argv), argv))


def check_args(args, given, argv):
    r"""Before the work: the checkpoint exists, the out-dir can be written and holds no earlier
    evaluation (unless --overwrite; the default out-dir becomes a numbered one), matplotlib is
    there for the figure (or the command says it writes none). The chunks' memory is checked
    once the checkpoint is read (it gives D)."""
    for which, path in (("", args.checkpoint), ("--against: ", args.against)):
        if path is not None and not os.path.isfile(path):
            fail(f"{which}no checkpoint at {path}: the file does not exist (vae-numpy train "
                 "writes it as <out-dir>/checkpoint.npz)")
    check_out_dir(args.out_dir)
    args.out_dir = claim_out_dir(args.out_dir, OUTPUTS, overwrite=args.overwrite,
                                 default="out_dir" not in given,
                                 prefix=invocation(PROG.split()), argv=argv, resume_argv=None,
                                 log=log)
    if not have_matplotlib():
        log(NO_MATPLOTLIB)


def run(args, given, argv):
    check_args(args, given, argv)
    ckpt = load_checkpoint(args.checkpoint)
    other = None if args.against is None else load_checkpoint(args.against)
    if other is not None and other.config.input_dim != ckpt.config.input_dim:
        fail(f"--against {args.against} models {other.config.input_dim} inputs, the checkpoint "
             f"{ckpt.config.input_dim}: two models of the same data are needed")
    chunk, batch = min(args.chunk_size, args.k), min(args.batch_size, args.n)
    check_memory(CHUNK_ARRAYS * np.dtype(ckpt.config.dtype).itemsize * chunk * batch
                 * ckpt.config.input_dim, f"an importance-sampling chunk of {chunk} samples x "
                 f"{batch} images", "lower --chunk-size or --batch-size")
    x, source, binarize = test_images(ckpt, args.data, args.n)
    os.makedirs(args.out_dir, exist_ok=True)
    remove_stale_temp_files(args.out_dir, log)
    log(f"model {ckpt.config.to_json()}")
    threads = thread_choice()
    log(describe(threads))
    log(f"data {source}: first {len(x)} test images, {test_set_treatment(binarize)}; "
        f"K = {args.k}")
    result, log_px = evaluate_model(ckpt.params, x, ckpt.config, k=args.k,
                                    rng=np.random.default_rng(args.seed),
                                    want_bits_per_dim=args.bits_per_dim,
                                    batch_size=args.batch_size, chunk_size=args.chunk_size,
                                    return_log_px=True)
    result.update(checkpoint=str(args.checkpoint), data=str(source),
                  test_images=test_set_treatment(binarize), train_binarize=binarize,
                  seed=args.seed, config=ckpt.config.to_dict(), threads=threads)
    if other is not None:
        same_noise = ((other.config.latent_dim, other.config.dtype)
                      == (ckpt.config.latent_dim, ckpt.config.dtype))
        result["against"] = paired_difference(args, other, x, log_px, same_noise)
    with atomic_write(os.path.join(args.out_dir, "evaluation.json"), mode="w") as f:
        json.dump(result, f, indent=1)
    if have_matplotlib():
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
    if other is not None:
        a = result["against"]
        print(f"against {args.against}: -IW_{args.k} = {a['iw_nll']:.3f} +- {a['iw_nll_se']:.3f}"
              f"; this minus that, per image: {a['difference']:+.3f} +- "
              f"{a['difference_se']:.3f} nats (paired SE)")
    print(f"{result['seconds']:.1f} s ({result['seconds_iw']:.1f} s for IW_{args.k})")
    return result


def paired_difference(args, other, x, log_px, same_noise):
    r"""The other model's -IW_K on the same images, and the paired difference.

    ``d_n = (-IW_K(x_n; this)) - (-IW_K(x_n; other))`` for each of the N images;
    ``difference = mean(d)``, ``difference_se = std(d, ddof=1) / sqrt(N)``. Negative: this
    model assigns the images more probability. The other model draws its noise from
    ``default_rng(seed)`` like this one, so with equal latent sizes and dtypes both see the same
    eps (``same_noise``); the images are this checkpoint's test images."""
    log(f"against {args.against}: -IW_{args.k} on the same {len(x)} images")
    other_log_px = iw_log_likelihood(other.params, x.astype(other.config.dtype, copy=False),
                                     other.config, args.k, np.random.default_rng(args.seed),
                                     args.batch_size, args.chunk_size)
    nll, se = mean_and_stderr(-other_log_px)
    difference, difference_se = mean_and_stderr(np.asarray(other_log_px, np.float64) - log_px)
    return {"checkpoint": str(args.against), "iw_nll": nll, "iw_nll_se": se,
            "difference": difference, "difference_se": difference_se, "same_noise": same_noise,
            "difference_is": "this model's -IW_K minus the other's, per image, averaged over "
                             "the images (negative: this model is better); difference_se is "
                             "the paired standard error"}
