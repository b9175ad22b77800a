r"""The gradients' signal-to-noise ratio against K under the IWAE, STL and DReG estimators.

Rainforth et al. (2018) showed that with the IWAE bound's gradient the encoder's SNR falls like
K**-0.5 as the number of importance samples K grows, while the decoder's rises like K**0.5;
Tucker et al. (2019) that the doubly reparameterized estimator (DReG) keeps the encoder's
signal. This demo measures the SNR of :mod:`vae_numpy.snr` (|mean| / std over R draws per
parameter, averaged over the parameters with nonzero variance; one fixed image) for K = 1..1000
on two models:

- ``small``: the one-dimensional linear-Gaussian VAE of :func:`vae_numpy.snr.toy_model`,
  twice: q wider than the posterior (its mean 2.5 posterior standard deviations off, twice its
  variance), and q narrower (1 standard deviation off, 0.6 times its variance);
- ``burda``: the shipped Burda-architecture IWAE (k = 5) checkpoint (784-200-200-50, tanh,
  Bernoulli) on the first image of the binarized MNIST test set (the fixed-seed
  ``binarize_test_set``, as the model was scored), in float64.

It fits log-log slopes over stated K ranges, draws the noise floor sqrt(2 / pi) / sqrt(R),
reports the weights' effective sample size per K (the large-K slopes need it to grow like K), and
writes ``gradient_snr_<model>.png`` and ``gradient_snr_<model>.json`` into --out-dir:

    python demos/gradient_snr.py --model small --out-dir runs/gradient_snr
    python demos/gradient_snr.py --model burda --data mnist.npz --out-dir runs/gradient_snr
"""
import argparse
import json
import os
import sys
import time

from vae_numpy.commands.threads import (add_threads_flag, describe,  # imports no numpy
                                        set_thread_default, thread_choice)

if __name__ == "__main__":  # as a script: the thread default, before numpy is imported
    set_thread_default(sys.argv[1:])

import numpy as np  # noqa: E402

from vae_numpy import snr  # noqa: E402
from vae_numpy.commands.flags import parse_with_quick  # noqa: E402
from vae_numpy.data import binarize_test_set, load_dataset  # noqa: E402
from vae_numpy.figures.diagnostic_plots import plot_gradient_snr  # noqa: E402
from vae_numpy.files.atomic import atomic_write  # noqa: E402
from vae_numpy.files.checkpoint import load_checkpoint  # noqa: E402
from vae_numpy.model import VAEConfig  # noqa: E402

# --- hyperparameters ----------------------------------------------------------------------------
KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
SMALL_DRAWS = 10000             # R: IWAE's encoder SNR at K = 1000 (~0.06) is ~8 floors up
# (mean shift in posterior standard deviations, variance ratio q / posterior) of each toy model
SMALL_MODELS = {"wide q": (2.5, 2.0), "narrow q": (1.0, 0.6)}
BURDA_KS = (1, 3, 10, 30, 100, 300, 1000)
BURDA_DRAWS = 2000              # ~0.5 s per draw for the three estimators at all K, one core
BURDA_CHECKPOINT = os.path.join("docs", "results", "burda2016", "iwae_k5", "checkpoint.npz")
BURDA_IMAGE = 0                 # the image's index in the binarized test set
# K ranges of the fitted slopes, per curve ("encoder/<estimator>" or "decoder"): where each
# curve is in its large-K regime on the wide-q toy model (K >> the weights' variance)
FITS = {"wide q": {"encoder/iwae": (30, 1000), "decoder": (30, 1000),
                   "encoder/stl": (100, 1000), "encoder/dreg": (100, 1000)},
        "narrow q": {"encoder/iwae": (100, 1000), "decoder": (100, 1000),
                     "encoder/stl": (100, 1000), "encoder/dreg": (100, 1000)},
        "burda": {"encoder/iwae": (100, 1000), "decoder": (100, 1000),
                  "encoder/stl": (100, 1000), "encoder/dreg": (100, 1000)}}
QUICK = dict(ks="1,10,100", draws=200)
MNIST_HINT = ("pass --data with MNIST in a form vae_numpy reads: the Keras mnist.npz "
              "(https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz) or a "
              "directory of the four IDX files; the small model needs no data")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("small", "burda", "all"), default="small")
    parser.add_argument("--ks", default=None,
                        help="comma-separated K values (default: 1..1000, 10 values for the "
                             "small model, 7 for burda)")
    parser.add_argument("--draws", type=int, default=None,
                        help=f"R, draws per K (default {SMALL_DRAWS} small, {BURDA_DRAWS} burda)")
    parser.add_argument("--checkpoint", default=BURDA_CHECKPOINT)
    parser.add_argument("--data", default="mnist.npz", help="MNIST, for --model burda")
    parser.add_argument("--image", type=int, default=BURDA_IMAGE,
                        help="index of the binarized test image (burda)")
    parser.add_argument("--out-dir", default="runs/gradient_snr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"a few seconds: defaults {QUICK} unless given")
    add_threads_flag(parser)
    return parse_with_quick(parser, argv, QUICK)


def fail(message):
    r"""End with one line on stderr and exit status 1 (no traceback)."""
    raise SystemExit(f"gradient_snr.py: error: {message}")


def parse_ks(text, default):
    if text is None:
        return default
    try:
        return tuple(int(k) for k in text.split(","))
    except ValueError:
        fail(f"--ks must be comma-separated integers like 1,10,100, got {text!r}")


class Progress:
    r"""A progress line on stderr at most every few seconds, and one per finished K."""

    def __init__(self, name, ks, every=5.0):
        self.name, self.ks, self.every = name, list(ks), every
        self.start = self.last = time.perf_counter()

    def __call__(self, k, done, total):
        now = time.perf_counter()
        if done == total or now - self.last >= self.every:
            self.last = now
            i = self.ks.index(k) + 1
            print(f"{self.name}: K = {k} ({i}/{len(self.ks)}), draw {done}/{total}, "
                  f"{now - self.start:.0f} s", file=sys.stderr, flush=True)


def burda_image(data_path, index):
    r"""Test image ``index`` of MNIST, binarized by ``binarize_test_set`` (fixed seed), (1, 784)."""
    if not os.path.exists(data_path):
        fail(f"MNIST not found at {data_path}: {MNIST_HINT}")
    data = load_dataset(data_path, dtype=np.float64)
    if not 0 <= index < len(data.x_test):
        fail(f"--image {index} is not an index of the {len(data.x_test)} test images")
    return binarize_test_set(data.x_test)[index:index + 1]


def slopes(result, fits):
    r"""``{curve: {"slope", "k_range"}}`` for each curve of ``fits`` with two K in range."""
    out = {}
    for curve, (k_min, k_max) in fits.items():
        group, _, name = curve.partition("/")
        values = result["snr"][group][name or "iwae"]
        if sum(k_min <= k <= k_max for k in result["ks"]) >= 2:
            out[curve] = {"slope": snr.fit_slope(result["ks"], values, k_min, k_max)[0],
                          "k_range": [k_min, k_max]}
    return out


def measure(name, params, x, cfg, ks, draws, seed, description):
    r"""gradient_snr with a progress line, its slopes and its description."""
    start = time.perf_counter()
    result = snr.gradient_snr(params, x, cfg, ks, draws, seed, progress=Progress(name, ks))
    result.update(model=name, description=description,
                  seconds=time.perf_counter() - start, slopes=slopes(result, FITS[name]))
    return result


def run_small(args):
    ks = parse_ks(args.ks, KS)
    draws = args.draws or SMALL_DRAWS
    results = []
    for name, (shift, ratio) in SMALL_MODELS.items():
        params, x, cfg = snr.toy_model(shift, ratio)
        description = (f"toy linear-Gaussian VAE (D = J = 1, x = 1, posterior N(1/2, 1/2)); "
                       f"q's mean {shift} posterior std off, its variance {ratio} x the "
                       f"posterior's")
        results.append(measure(name, params, x, cfg, ks, draws, args.seed, description))
    return results


def run_burda(args):
    ks = parse_ks(args.ks, BURDA_KS)
    draws = args.draws or BURDA_DRAWS
    ckpt = load_checkpoint(args.checkpoint)
    cfg = VAEConfig.from_dict({**ckpt.config.to_dict(), "dtype": "float64"})
    params = {k: v.astype(np.float64) for k, v in ckpt.params.items()}
    x = burda_image(args.data, args.image)
    description = (f"the shipped Burda-architecture IWAE (k = 5) checkpoint "
                   f"({ckpt.config.input_dim}-{'-'.join(map(str, ckpt.config.encoder_hidden))}-"
                   f"{ckpt.config.latent_dim}, {ckpt.config.activation}), float64, on test image "
                   f"{args.image} of the binarized MNIST test set (binarize_test_set, seed 0)")
    return [measure("burda", params, x, cfg, ks, draws, args.seed, description)]


def report(results):
    for r in results:
        print(f"{r['model']}: R = {r['n_draws']}, noise floor {r['noise_floor']:.4f}, "
              f"{r['seconds']:.0f} s; {r['description']}")
        print(f"  {'K':>6} " + " ".join(f"{c:>13}" for c in
                                        ("enc iwae", "enc stl", "enc dreg", "decoder", "ESS")))
        for i, k in enumerate(r["ks"]):
            row = [r["snr"]["encoder"][e][i] for e in ("iwae", "stl", "dreg")]
            row += [r["snr"]["decoder"]["iwae"][i], r["ess"][i]]
            print(f"  {k:>6} " + " ".join(f"{v:>13.4g}" for v in row))
        for curve, fit in r["slopes"].items():
            print(f"  slope of {curve:<13} over K = {fit['k_range'][0]}..{fit['k_range'][1]}: "
                  f"{fit['slope']:+.3f}")


def write(results, out_dir, stem):
    with atomic_write(os.path.join(out_dir, f"gradient_snr_{stem}.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot_gradient_snr(results, os.path.join(out_dir, f"gradient_snr_{stem}.png"))


def main(argv=None):
    args = parse_args(argv)
    print(describe(thread_choice()), file=sys.stderr)
    try:
        os.makedirs(args.out_dir, exist_ok=True)
        out = {}
        if args.model in ("small", "all"):
            out["small"] = run_small(args)
        if args.model in ("burda", "all"):
            out["burda"] = run_burda(args)
        for stem, results in out.items():
            report(results)
            write(results, args.out_dir, stem)
        return out
    except (OSError, ValueError) as err:
        fail(str(err))


if __name__ == "__main__":
    main()
