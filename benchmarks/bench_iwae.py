r"""Speed of the IWAE bound's forward and backward, vae_numpy against PyTorch, in the same run.

    python benchmarks/bench_iwae.py                    # 784-200-200-50 tanh, float32, 1 thread
    python benchmarks/bench_iwae.py --quick            # a few seconds
    python benchmarks/bench_iwae.py --threads 2 --json bench_iwae.json

One call = the loss ``mean_b(-L_K(x_b))`` and its gradient for every parameter (no optimizer,
no noise draw), for Burda et al.'s one-stochastic-layer architecture (784-200-200-50 tanh,
Bernoulli logits), for several (batch B, samples K). vae_numpy: ``_iwae_step`` (the unchecked
step train uses; the decoder runs once on the (K*B, J) stack). PyTorch: the usual hand-written
IWAE with nn.Linear layers on a (K, B, J) tensor, torch.logsumexp and autograd. Both get the
same thread count (bench_vs_torch.numpy_blas_threads, torch.set_num_threads). Each case is
warmed up, then timed ``--repeats`` times over ``--calls`` calls with ``time.perf_counter``;
the median per call is reported, and the vae_numpy VAE step of the same batch for scale.

Not part of the test suite.
"""
import argparse
import json
import math
import os
import platform
import sys

import numpy as np

from bench_vs_torch import numpy_blas_threads, time_steps
from vae_numpy import VAEConfig, init_params, loss_and_grads
from vae_numpy.atomic import atomic_write
from vae_numpy.iwae import _iwae_step

# --- settings (defaults of the flags) -------------------------------------------------------
INPUT_DIM, HIDDEN, LATENT = 784, (200, 200), 50
CASES = "20x1,20x5,100x5,20x50"  # B x K
THREADS = 1
REPEATS = 5
CALLS = 10
QUICK = dict(repeats=3, calls=3)


def config(dtype):
    return VAEConfig(input_dim=INPUT_DIM, latent_dim=LATENT, encoder_hidden=HIDDEN,
                     decoder_hidden=HIDDEN, activation="tanh", dtype=dtype)


def numpy_callers(dtype, batch, k, seed=0):
    r"""Closures doing one vae_numpy IWAE call and one VAE call on the same data."""
    cfg = config(dtype)
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    x = (rng.random((batch, INPUT_DIM)) < 0.3).astype(dtype)  # (B, D)
    eps = rng.standard_normal((k, batch, LATENT), dtype=dtype)  # (K, B, J)
    return (lambda: _iwae_step(params, x, eps, cfg),
            lambda: loss_and_grads(params, x, eps[0], cfg))


def torch_caller(dtype, batch, k, seed=0):
    r"""A closure doing one PyTorch IWAE forward and backward of the same model."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(seed)
    tdtype = getattr(torch, dtype)
    enc = nn.Sequential(nn.Linear(INPUT_DIM, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh())
    mu_head, logvar_head = nn.Linear(200, LATENT), nn.Linear(200, LATENT)
    dec = nn.Sequential(nn.Linear(LATENT, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(),
                        nn.Linear(200, INPUT_DIM))
    model = nn.ModuleList([enc, mu_head, logvar_head, dec]).to(tdtype)
    x = (torch.rand(batch, INPUT_DIM) < 0.3).to(tdtype)
    eps = torch.randn(k, batch, LATENT, dtype=tdtype)
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def call():
        h = enc(x)
        mu, logvar = mu_head(h), logvar_head(h)
        z = mu + torch.exp(0.5 * logvar) * eps  # (K, B, J)
        logits = dec(z)
        log_px_z = -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none").sum(-1)
        log_pz = (-0.5 * z * z - half_log_2pi).sum(-1)
        log_q = (-0.5 * eps * eps - half_log_2pi - 0.5 * logvar).sum(-1)
        bound = torch.logsumexp(log_px_z + log_pz - log_q, dim=0) - math.log(k)
        model.zero_grad()
        (-bound.mean()).backward()
    return call


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--cases", default=CASES, help="comma-separated BxK (default %(default)s)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--calls", type=int, default=CALLS, help="calls per timed repeat")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--quick", action="store_true", help=f"shorter: defaults {QUICK} unless given")
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:   # QUICK replaces the defaults; flags given explicitly still win
        parser.set_defaults(**QUICK)
        args = parser.parse_args(argv)
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: timing vae_numpy only", file=sys.stderr)
    blas = numpy_blas_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"threads: numpy BLAS {blas}, torch {torch and torch.get_num_threads()}; "
          f"{args.dtype}; median of {args.repeats} x {args.calls} calls (forward + backward)\n")
    print(f"{'B':>4} {'K':>4} {'iwae ms':>9} {'torch ms':>9} {'ratio':>6} {'vae ms':>8}")
    results = []
    for case in args.cases.split(","):
        batch, k = (int(v) for v in case.split("x"))
        ours, vae = numpy_callers(args.dtype, batch, k)
        row = {"batch": batch, "k": k, "iwae": time_steps(ours, args.repeats, args.calls, 2),
               "vae": time_steps(vae, args.repeats, args.calls, 2)}
        if torch is not None:
            row["torch"] = time_steps(torch_caller(args.dtype, batch, k), args.repeats,
                                      args.calls, 2)
            row["ratio"] = row["iwae"]["median_s"] / row["torch"]["median_s"]
        results.append(row)
        torch_ms = f"{row['torch']['median_s'] * 1e3:9.2f}" if "torch" in row else f"{'-':>9}"
        ratio = f"{row['ratio']:6.2f}" if "ratio" in row else f"{'-':>6}"
        print(f"{batch:4d} {k:4d} {row['iwae']['median_s'] * 1e3:9.2f} {torch_ms} {ratio} "
              f"{row['vae']['median_s'] * 1e3:8.2f}")
    print("\nratio = vae_numpy IWAE time / torch IWAE time (above 1: vae_numpy is slower); "
          "vae = vae_numpy's VAE step (K = 1, analytic KL) on the same batch")
    if args.json:
        out = {"config": vars(args), "environment": {
            "numpy": np.__version__, "torch": torch and torch.__version__,
            "python": platform.python_version(), "cpus": os.cpu_count()}, "results": results}
        with atomic_write(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
