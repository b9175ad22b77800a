r"""Speed of one VAE training step, vae_numpy against PyTorch, in the same run on the same machine.

    python benchmarks/bench_vs_torch.py                      # 784-400-20, batch 128, 1 thread
    python benchmarks/bench_vs_torch.py --threads 2 --json bench.json
    python benchmarks/bench_vs_torch.py --quick              # a few seconds

One step = draw eps, forward, backward, Adam update, for the pytorch/examples architecture
(784-400-20, ReLU, Bernoulli decoder with logits, loss averaged over the batch), in float32 and
float64. Both sides get the same number of threads: NumPy's OpenBLAS is set through its C API
(``*openblas*_set_num_threads``) and PyTorch through ``torch.set_num_threads``; the script prints
what is in effect. Each configuration is warmed up, then timed ``--repeats`` times over
``--steps`` steps with ``time.perf_counter``; the median time per step is reported, with the
min and max of the repeats. Peak memory: the extra memory NumPy allocates during one vae_numpy
step (tracemalloc sees NumPy's arrays; it does not see PyTorch's allocator, so there is no
PyTorch figure).

Not part of the test suite.
"""
import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np

from vae_numpy import VAEConfig, init_params, loss_and_grads
from vae_numpy.files.atomic import atomic_write
from vae_numpy.commands.flags import parse_with_quick
from vae_numpy.optim import Adam

# --- settings (defaults of the flags) -------------------------------------------------------
INPUT_DIM, HIDDEN, LATENT = 784, 400, 20
BATCH = 128
LR = 1e-3
THREADS = 1
REPEATS = 7
STEPS = 20          # steps per timed repeat
WARMUP = 5
QUICK = dict(repeats=3, steps=5)


# --- threads --------------------------------------------------------------------------------

def _openblas_libraries():
    r"""Paths of the OpenBLAS libraries loaded into this process (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            return sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
    except OSError:
        return []


def numpy_blas_threads(n=None):
    r"""Set (if n is given) and return NumPy's OpenBLAS thread count; None if not found."""
    for path in _openblas_libraries():
        lib = ctypes.CDLL(path)
        for prefix, suffix in [("scipy_openblas_", "64_"), ("openblas_", "64_"),
                               ("openblas_", "")]:
            setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                if n is not None:
                    setter(int(n))
                return int(getter())
    return None


# --- one training step on each side ---------------------------------------------------------

def numpy_stepper(dtype, batch, seed=0):
    r"""A closure doing one vae_numpy training step (eps draw, loss_and_grads, Adam)."""
    cfg = VAEConfig(input_dim=INPUT_DIM, latent_dim=LATENT, encoder_hidden=(HIDDEN,),
                    decoder_hidden=(HIDDEN,), dtype=dtype)
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    x = (rng.random((batch, INPUT_DIM)) < 0.5).astype(dtype)  # (B, D)
    opt = Adam(lr=LR)
    state = opt.init(params)

    def step():
        eps = rng.standard_normal((batch, LATENT), dtype=dtype)  # (B, J)
        _, grads, _ = loss_and_grads(params, x, eps, cfg, reduction="mean")
        opt.step(params, grads, state)
    return step


def torch_stepper(dtype, batch, seed=0):
    r"""A closure doing one PyTorch training step of the same model (randn, forward,
    backward, torch.optim.Adam)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(seed)
    tdtype = getattr(torch, dtype)
    fc1, fc21, fc22 = (nn.Linear(INPUT_DIM, HIDDEN), nn.Linear(HIDDEN, LATENT),
                       nn.Linear(HIDDEN, LATENT))
    fc3, fc4 = nn.Linear(LATENT, HIDDEN), nn.Linear(HIDDEN, INPUT_DIM)
    model = nn.ModuleList([fc1, fc21, fc22, fc3, fc4]).to(tdtype)
    x = (torch.rand(batch, INPUT_DIM) < 0.5).to(tdtype)
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def step():
        eps = torch.randn(batch, LATENT, dtype=tdtype)
        h = F.relu(fc1(x))
        mu, logvar = fc21(h), fc22(h)
        z = mu + torch.exp(0.5 * logvar) * eps
        x_logits = fc4(F.relu(fc3(z)))
        rec = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").sum(1)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
        loss = (rec + kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


# --- timing ---------------------------------------------------------------------------------

def time_steps(step, repeats, steps, warmup=WARMUP):
    r"""Seconds per step: median, min and max over ``repeats`` timings of ``steps`` steps."""
    for _ in range(warmup):
        step()
    per_step = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        per_step.append((time.perf_counter() - start) / steps)
    return {"median_s": statistics.median(per_step), "min_s": min(per_step),
            "max_s": max(per_step), "repeats": repeats, "steps": steps}


def numpy_peak_bytes(step):
    r"""Peak bytes NumPy allocates during one step, above what is live before it (tracemalloc
    counts only the blocks allocated after its start)."""
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="threads for both NumPy's BLAS and PyTorch (default 1)")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--steps", type=int, default=STEPS, help="steps per timed repeat")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--quick", action="store_true", help=f"shorter: defaults {QUICK} unless given")
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
    if blas is None:
        print("could not find NumPy's OpenBLAS to set its threads; set OPENBLAS_NUM_THREADS "
              "before starting Python", file=sys.stderr)
    if torch is not None:
        torch.set_num_threads(args.threads)
    env = {"numpy_blas_threads": blas, "torch_threads": torch and torch.get_num_threads(),
           "numpy": np.__version__, "torch": torch and torch.__version__,
           "python": platform.python_version(), "machine": platform.machine(),
           "cpus": os.cpu_count(), "processor": platform.processor()}
    print(f"threads: numpy BLAS {blas}, torch {env['torch_threads']}; numpy {np.__version__}, "
          f"torch {env['torch']}; {os.cpu_count()} CPUs")
    print(f"one training step (eps, forward, backward, Adam) of {INPUT_DIM}-{HIDDEN}-{LATENT}, "
          f"batch {args.batch}; median of {args.repeats} x {args.steps} steps\n")
    print(f"{'dtype':<8} {'vae_numpy ms':>13} {'torch ms':>10} {'ratio':>7} "
          f"{'numpy peak MB':>14}")

    results = []
    for dtype in args.dtypes.split(","):
        print(f"timing {dtype} ...", file=sys.stderr)
        ours = numpy_stepper(dtype, args.batch)
        row = {"dtype": dtype, "vae_numpy": time_steps(ours, args.repeats, args.steps),
               "vae_numpy_peak_bytes": numpy_peak_bytes(ours)}
        if torch is not None:
            row["torch"] = time_steps(torch_stepper(dtype, args.batch), args.repeats,
                                      args.steps)
            row["ratio"] = row["vae_numpy"]["median_s"] / row["torch"]["median_s"]
        results.append(row)
        torch_ms = f"{row['torch']['median_s'] * 1e3:10.2f}" if "torch" in row else f"{'-':>10}"
        ratio = f"{row['ratio']:7.2f}" if "ratio" in row else f"{'-':>7}"
        print(f"{dtype:<8} {row['vae_numpy']['median_s'] * 1e3:13.2f} {torch_ms} {ratio} "
              f"{row['vae_numpy_peak_bytes'] / 2**20:14.1f}")
    print("\nratio = vae_numpy time / torch time (above 1: vae_numpy is slower)")

    if args.json:
        out = {"config": {"model": f"{INPUT_DIM}-{HIDDEN}-{LATENT}", "batch": args.batch,
                          "threads": args.threads, "repeats": args.repeats,
                          "steps": args.steps},
               "environment": env, "results": results}
        with atomic_write(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
