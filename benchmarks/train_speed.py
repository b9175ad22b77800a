r"""Seconds per training epoch of vae_numpy.train, float32 against float64.

    OPENBLAS_NUM_THREADS=1 python benchmarks/train_speed.py --data mnist.npz --epochs 5
    OPENBLAS_NUM_THREADS=1 python benchmarks/train_speed.py --quick      # a few seconds

An epoch here is the whole loop of :func:`vae_numpy.train.train` on the training set: the
permutation, minibatch gathering, dynamic binarization, eps, forward, backward and the Adam
update (784-400-20 ReLU, Bernoulli, batch 128, lr 1e-3, the pytorch/examples architecture);
held-out evaluation is not included. Each dtype trains from the same initialization for
``--epochs`` epochs; the median, min and max seconds per epoch are reported with the
throughput. The number of BLAS threads is whatever the environment sets (set
OPENBLAS_NUM_THREADS before starting Python; the script prints it). The per-step comparison
with PyTorch is benchmarks/bench_vs_torch.py.

Not part of the test suite.
"""
import argparse
import json
import os
import platform
import statistics
import sys

import numpy as np

from vae_numpy import VAEConfig, init_params
from vae_numpy.files.atomic import atomic_write
from vae_numpy.commands.flags import parse_with_quick
from vae_numpy.data import load_dataset
from vae_numpy.optim import Adam
from vae_numpy.train import train

# --- settings (defaults of the flags) -----------------------------------------------------------
DATA = "synthetic"
EPOCHS = 5
BATCH_SIZE = 128
HIDDEN, LATENT = 400, 20
LR = 1e-3
N_TRAIN_SYNTHETIC = 20000
QUICK = dict(epochs=2, n_train=2000)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DATA)
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--n-train", type=int, default=None,
                   help=f"first N training images (synthetic: {N_TRAIN_SYNTHETIC})")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--quick", action="store_true", help=f"defaults {QUICK} unless given")
    return p


def time_epochs(x_train, dtype, args):
    r"""Seconds of each epoch of train() for one dtype (same seed, same data)."""
    cfg = VAEConfig(input_dim=x_train.shape[1], latent_dim=LATENT, encoder_hidden=(HIDDEN,),
                    decoder_hidden=(HIDDEN,), dtype=dtype)
    rng = np.random.default_rng(args.seed)
    params = init_params(cfg, rng)
    history = train(params, cfg, x_train.astype(dtype), optimizer=Adam(LR), rng=rng,
                    epochs=args.epochs, batch_size=args.batch_size, binarize="dynamic")
    return [r["seconds"] for r in history]


def parse_args(argv):
    parser = build_parser()
    args = parse_with_quick(parser, argv, QUICK)
    return args


def main(argv=None):
    args = parse_args(argv)
    n_train = args.n_train or (N_TRAIN_SYNTHETIC if args.data == "synthetic" else None)
    kw = dict(n_train=n_train, n_test=10) if args.data == "synthetic" else {}
    x_train = load_dataset(args.data, dtype=np.float64, **kw).x_train[:n_train]
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"{len(x_train)} training images, batch {args.batch_size}, "
          f"{x_train.shape[1]}-{HIDDEN}-{LATENT}, "
          f"OPENBLAS_NUM_THREADS={threads}, numpy {np.__version__}, {platform.processor()}",
          file=sys.stderr)
    results = {"data": args.data, "n_train": len(x_train), "batch_size": args.batch_size,
               "epochs": args.epochs, "openblas_num_threads": threads, "dtypes": {}}
    for dtype in args.dtypes.split(","):
        seconds = time_epochs(x_train, dtype, args)
        results["dtypes"][dtype] = {
            "seconds_per_epoch": seconds, "median": statistics.median(seconds),
            "min": min(seconds), "max": max(seconds),
            "examples_per_second": len(x_train) / statistics.median(seconds)}
    print(f"{'dtype':8s} {'median s/epoch':>15s} {'min':>7s} {'max':>7s} {'examples/s':>11s}")
    for dtype, r in results["dtypes"].items():
        print(f"{dtype:8s} {r['median']:15.2f} {r['min']:7.2f} {r['max']:7.2f} "
              f"{r['examples_per_second']:11.0f}")
    if args.json:
        with atomic_write(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
