r"""Speed of the IWAE bound's forward and backward, vae_numpy against PyTorch, in the same run.

    python benchmarks/bench_iwae.py                    # 784-200-200-50 tanh, float32, 1 thread
    python benchmarks/bench_iwae.py --quick            # a few seconds
    python benchmarks/bench_iwae.py --threads 2 --json bench_iwae.json

One call = the loss ``mean_b(-L_K(x_b))`` and its gradient for every parameter (no optimizer,
no noise draw), for Burda et al.'s one-stochastic-layer architecture (784-200-200-50 tanh,
Bernoulli logits), for several (batch B, samples K). vae_numpy: ``readable``, ``_iwae_step``
(the page to read, and the step train runs), which runs the decoder once on the (K*B, J)
stack. PyTorch: the usual
hand-written IWAE with nn.Linear layers on a (K, B, J) tensor, torch.logsumexp and autograd.
All get the same thread count (bench_vs_torch.numpy_blas_threads, torch.set_num_threads).

Timing is paired, for a machine other jobs share: each case is warmed up, then each repeat
times ``--calls`` calls of every contender in turn (the order rotating from one repeat to the
next) with ``time.perf_counter``, so a burst of load hits every contender alike; the median
per call over ``--repeats`` repeats is reported, and the vae_numpy VAE step of the same batch
for scale, and the same IWAE step with the DReG encoder gradient (``estimator="dreg"``) as a
ratio to the IWAE one.

Not part of the test suite.
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

from bench_vs_torch import WARMUP, numpy_blas_threads
from vae_numpy import VAEConfig, init_params, loss_and_grads
from vae_numpy.files.atomic import atomic_write
from vae_numpy.commands.flags import parse_with_quick
from vae_numpy.iwae import _iwae_step

# --- settings (defaults of the flags) -------------------------------------------------------
INPUT_DIM, HIDDEN, LATENT = 784, (200, 200), 50
CASES = "20x1,20x5,100x5,20x50"  # B x K
THREADS = 1
REPEATS = 15
CALLS = 10
QUICK = dict(repeats=3, calls=3)


def config(dtype):
    return VAEConfig(input_dim=INPUT_DIM, latent_dim=LATENT, encoder_hidden=HIDDEN,
                     decoder_hidden=HIDDEN, activation="tanh", dtype=dtype)


def numpy_callers(dtype, batch, k, seed=0):
    r"""Closures on the same data: name -> one vae_numpy call (the IWAE step, the VAE step)."""
    cfg = config(dtype)
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    x = (rng.random((batch, INPUT_DIM)) < 0.3).astype(dtype)  # (B, D)
    eps = rng.standard_normal((k, batch, LATENT), dtype=dtype)  # (K, B, J)
    return {"readable": lambda: _iwae_step(params, x, eps, cfg),
            "dreg": lambda: _iwae_step(params, x, eps, cfg, estimator="dreg"),
            "vae": lambda: loss_and_grads(params, x, eps[0], cfg)}


def time_paired(callers, repeats, calls, warmup=WARMUP):
    r"""Seconds per call of each caller (name -> closure): median, min and max over
    ``repeats`` rounds; each round times ``calls`` calls of every caller in turn, starting one
    caller later than the round before. Also the process's CPU seconds per call
    (``time.process_time``), which other processes on the same core do not inflate (with one
    thread it is the caller's own work)."""
    names = list(callers)
    for name in names:
        for _ in range(warmup):
            callers[name]()
    wall, cpu = {name: [] for name in names}, {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                callers[name]()
            cpu[name].append((time.process_time() - start_cpu) / calls)
            wall[name].append((time.perf_counter() - start) / calls)
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                   "cpu_median_s": statistics.median(cpu[name]), "repeats": repeats,
                   "calls": calls, "rounds_s": t, "cpu_rounds_s": cpu[name]}
            for name, t in wall.items()}


def paired_ratio(a, b, key="rounds_s"):
    r"""Median over the rounds of ``a_r / b_r`` (two entries of :func:`time_paired`; key
    ``cpu_rounds_s`` for the CPU times)."""
    return statistics.median(x / y for x, y in zip(a[key], b[key]))


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
    parser.add_argument("--quick", action="store_true",
                        help=f"shorter: defaults {QUICK} unless given")
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parse_with_quick(parser, argv, QUICK)
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
    print(f"{'':9} {'wall ms (median)':^18} | {'wall':^17} | {'CPU':^17} |")
    print(f"{'B':>4} {'K':>4} {'readable':>9} {'torch':>8} | "
          + f"{'read/tch':>8} {'dreg/iw':>8} | " * 2 + f"{'vae ms':>7}")
    results = []
    for case in args.cases.split(","):
        batch, k = (int(v) for v in case.split("x"))
        callers = numpy_callers(args.dtype, batch, k)
        if torch is not None:
            callers["torch"] = torch_caller(args.dtype, batch, k)
        times = time_paired(callers, args.repeats, args.calls, warmup=2)
        row = {"batch": batch, "k": k, **times}
        pairs = [("readable", "torch"), ("dreg", "readable")]
        cells = [f"{times[n]['median_s'] * 1e3:{w}.2f}" if n in times else f"{'-':>{w}}"
                 for n, w in (("readable", 9), ("torch", 8))]
        for label, key in (("", "rounds_s"), ("cpu_", "cpu_rounds_s")):
            cells.append("|")
            for a, b in pairs:
                if b in times:
                    row[f"{label}{a}_over_{b}"] = paired_ratio(times[a], times[b], key)
                    cells.append(f"{row[f'{label}{a}_over_{b}']:8.2f}")
                else:
                    cells.append(f"{'-':>8}")
        cells += ["|", f"{times['vae']['median_s'] * 1e3:7.2f}"]
        results.append(row)
        print(f"{batch:4d} {k:4d} " + " ".join(cells))
    print("\nreadable = _iwae_step (what train runs), dreg/iw = the same step with "
          "estimator='dreg' over the IWAE one, tch = PyTorch; ms: medians over the rounds; "
          "ratios: medians over the rounds of the ratio within a round, of wall-clock and of "
          "CPU (time.process_time) seconds (above 1: the first is slower); vae = vae_numpy's "
          "VAE step (K = 1, analytic KL) on the same batch")
    if args.json:
        out = {"config": vars(args), "environment": {
            "numpy": np.__version__, "torch": torch and torch.__version__,
            "python": platform.python_version(), "cpus": os.cpu_count()}, "results": results}
        with atomic_write(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
