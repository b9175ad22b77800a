r"""vae_numpy against the plain PyTorch loop a user would write, on the same CPU, in one run.

    python benchmarks/speed_vs_torch.py --data mnist.npz            # the full table
    python benchmarks/speed_vs_torch.py --quick                     # a smoke run, a minute
    python benchmarks/speed_vs_torch.py --data mnist.npz --threads 1 --only epoch

What is timed (``time.perf_counter``; each figure the median of ``--repeats`` runs, vae_numpy
and PyTorch alternating in one process, the ratio = vae_numpy median / PyTorch median):

- **epoch**: one training epoch through the public ``vae_numpy.train(params, cfg, x,
  optimizer=Adam(1e-3), rng=..., epochs=1, batch_size=B, binarize="dynamic",
  progress=False)`` against the pytorch/examples VAE loop (the data as one tensor in memory,
  ``torch.randperm``, ``torch.bernoulli``, sigmoid decoder with ``binary_cross_entropy``
  summed, the analytic KL, default ``torch.optim.Adam(lr=1e-3)``), for the reference model
  (784-400-20 ReLU, batch 128) and the reproduction architecture (784-200-200-50 tanh,
  Bernoulli, batch 20 and 100), in float32 and float64;
- **iw**: ``vae_numpy.iw_log_likelihood(params, x, cfg, k, rng, progress=False)`` against the
  same IW_K written plainly in PyTorch under ``no_grad`` (for each image: K samples of z,
  log p(x|z) + log p(z) - log q(z|x), logsumexp - log K), float32, the same weights;
- **memory**: peak resident memory (``ru_maxrss`` of the child process) of the 10-epoch
  MNIST demo (demos/train_mnist.py) and of demos/evaluate.py at K = 5000 on the 10,000 test
  images, with the checkpoint the first one wrote (needs ``--data``).

Thread counts (``--threads``, default "1,2") apply to both sides: NumPy's OpenBLAS through its
C API, vae_numpy's elementwise threads through ``vae_numpy.threads.set_num_threads`` and
PyTorch through ``torch.set_num_threads``. The machine (CPU model, cores, each side's BLAS and
its kernel) is printed with every result and stored in ``--json``.

Not part of the test suite.
"""
import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import vae_numpy
from vae_numpy import VAEConfig, init_params
from vae_numpy.files.atomic import atomic_write
from vae_numpy.commands.flags import parse_with_quick
from vae_numpy.data import binarize_test_set, load_dataset
from vae_numpy.optim import Adam
from vae_numpy.threads import set_num_threads

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# --- settings (defaults of the flags) -------------------------------------------------------
LR = 1e-3
REPEATS = 3
N_SYNTHETIC = 10000          # training images when no --data is given
IW_K, IW_N = 1000, 500       # IW comparison: K samples on the first N test images
MODELS = {                   # name: (encoder/decoder hidden, latent, activation, batch sizes)
    "784-400-20 relu": ((400,), 20, "relu", (128,)),
    "784-200-200-50 tanh": ((200, 200), 50, "tanh", (20, 100)),
}
QUICK = dict(n_train=1000, repeats=3, iw_k=50, iw_n=40, memory_epochs=1, memory_k=20,
             memory_n=100)


# --- the machine ------------------------------------------------------------------------------

def _openblas():
    r"""The OpenBLAS library NumPy loaded (ctypes handle, symbol prefix, suffix), or None."""
    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix, suffix in [("scipy_openblas_", "64_"), ("openblas_", "64_"),
                               ("openblas_", "")]:
            if getattr(lib, f"{prefix}set_num_threads{suffix}", None) is not None:
                return lib, prefix, suffix
    return None


def set_threads(n, torch):
    r"""n threads for NumPy's BLAS, vae_numpy's elementwise work and PyTorch."""
    found = _openblas()
    if found is not None:
        lib, prefix, suffix = found
        getattr(lib, f"{prefix}set_num_threads{suffix}")(int(n))
    set_num_threads(n)
    torch.set_num_threads(n)


def machine(torch):
    r"""CPU model, cores, NumPy's BLAS and kernel, PyTorch's BLAS: a dict of strings."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    kernel = "?"
    found = _openblas()
    if found is not None:
        lib, prefix, suffix = found
        corename = getattr(lib, f"{prefix}get_corename{suffix}", None)
        if corename is not None:
            corename.restype = ctypes.c_char_p
            kernel = corename().decode()
    config = torch.__config__.show()
    torch_blas = [f"BLAS {part.split('=', 1)[1]}" for part in config.replace(",", "\n").split()
                  if part.startswith("BLAS_INFO=")]
    torch_blas += [line.split(":", 1)[1].strip() for line in config.splitlines()
                   if "CPU capability" in line]
    return {"cpu": cpu, "cores": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "numpy": np.__version__, "numpy_blas": f"{blas.get('name')} {blas.get('version')}",
            "numpy_blas_kernel": kernel, "torch": torch.__version__,
            "torch_blas": "; ".join(torch_blas), "python": platform.python_version()}


def machine_line(m):
    return (f"[{m['cpu']}, {m['cores']} cores ({m['affinity']} usable); numpy {m['numpy']} "
            f"with {m['numpy_blas']} ({m['numpy_blas_kernel']} kernel); torch {m['torch']} "
            f"({m['torch_blas']})]")


# --- one epoch on each side -------------------------------------------------------------------

def numpy_epoch(x, hidden, latent, activation, batch, dtype, seed):
    r"""A closure running one epoch of vae_numpy.train on x (fresh parameters each call)."""
    cfg = VAEConfig(input_dim=x.shape[1], latent_dim=latent, encoder_hidden=hidden,
                    decoder_hidden=hidden, activation=activation, dtype=dtype)
    x = x.astype(dtype)

    def run():
        rng = np.random.default_rng(seed)
        params = init_params(cfg, rng)
        vae_numpy.train(params, cfg, x, optimizer=Adam(LR), rng=rng, epochs=1,
                        batch_size=batch, binarize="dynamic", progress=False)
    return run


def torch_model(torch, d, hidden, latent, activation):
    r"""The pytorch/examples VAE with the given widths: encoder, mu/logvar heads, decoder."""
    nn = torch.nn
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            widths = (d,) + tuple(hidden)
            self.enc = nn.Sequential(*[m for a, b in zip(widths, widths[1:])
                                       for m in (nn.Linear(a, b), act())])
            self.fc_mu = nn.Linear(widths[-1], latent)
            self.fc_logvar = nn.Linear(widths[-1], latent)
            widths = (latent,) + tuple(hidden)
            self.dec = nn.Sequential(*[m for a, b in zip(widths, widths[1:])
                                       for m in (nn.Linear(a, b), act())],
                                     nn.Linear(widths[-1], d))

        def encode(self, x):
            h = self.enc(x)
            return self.fc_mu(h), self.fc_logvar(h)

        def forward(self, x):
            mu, logvar = self.encode(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return torch.sigmoid(self.dec(z)), mu, logvar
    return VAE()


def torch_epoch(torch, x, hidden, latent, activation, batch, dtype, seed):
    r"""A closure running one epoch of the plain PyTorch loop (fresh model each call)."""
    F = torch.nn.functional
    tdtype = getattr(torch, dtype)
    data = torch.from_numpy(x).to(tdtype)

    def run():
        torch.manual_seed(seed)
        model = torch_model(torch, x.shape[1], hidden, latent, activation).to(tdtype)
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        for idx in torch.randperm(len(data)).split(batch):
            xb = torch.bernoulli(data[idx])
            recon, mu, logvar = model(xb)
            bce = F.binary_cross_entropy(recon, xb, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = bce + kld
            opt.zero_grad()
            loss.backward()
            opt.step()
    return run


def alternate(a, b, repeats):
    r"""Seconds of a() and b(), called alternately (a first, then b first, ...) after one
    warm-up call each. Returns two lists."""
    a(), b()
    ta, tb = [], []
    for r in range(repeats):
        for f, times in ((a, ta), (b, tb)) if r % 2 == 0 else ((b, tb), (a, ta)):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
    return ta, tb


def summary(t_numpy, t_torch):
    m_n, m_t = statistics.median(t_numpy), statistics.median(t_torch)
    return {"vae_numpy_s": m_n, "torch_s": m_t, "ratio": m_n / m_t,
            "vae_numpy_runs": t_numpy, "torch_runs": t_torch}


# --- importance-weighted evaluation -------------------------------------------------------------

def torch_iw(torch, params, x, k, seed):
    r"""IW_K per image written plainly in PyTorch (no_grad), the vae_numpy weights (W.T)."""
    F = torch.nn.functional
    P = {name: torch.from_numpy(v) for name, v in params.items()}
    n_enc = sum(1 for name in P if name.startswith("enc.") and name[4].isdigit()) // 2
    n_dec = sum(1 for name in P if name.startswith("dec.") and name[4].isdigit()) // 2
    act = torch.relu if params["enc.0.W"].shape[1] == 400 else torch.tanh
    log2pi = float(np.log(2 * np.pi))
    data = torch.from_numpy(x)

    def run():
        torch.manual_seed(seed)
        out = []
        with torch.no_grad():
            for xi in data:
                h = xi[None]
                for i in range(n_enc):
                    h = act(h @ P[f"enc.{i}.W"] + P[f"enc.{i}.b"])
                mu = h @ P["enc.mu.W"] + P["enc.mu.b"]
                logvar = h @ P["enc.logvar.W"] + P["enc.logvar.b"]
                eps = torch.randn(k, mu.shape[1], dtype=mu.dtype)
                z = mu + torch.exp(0.5 * logvar) * eps                       # (K, J)
                h = z
                for i in range(n_dec):
                    h = act(h @ P[f"dec.{i}.W"] + P[f"dec.{i}.b"])
                logits = h @ P["dec.out.W"] + P["dec.out.b"]                 # (K, D)
                log_px = -F.binary_cross_entropy_with_logits(
                    logits, xi.expand_as(logits), reduction="none").sum(1)
                log_pz = -0.5 * (log2pi + z * z).sum(1)
                log_q = -0.5 * (log2pi + logvar + eps * eps).sum(1)
                log_w = log_px + log_pz - log_q
                out.append(torch.logsumexp(log_w, 0) - np.log(k))
        return torch.stack(out)
    return run


def iw_params(x_train, hidden, latent, activation, seed):
    r"""Weights for the IW comparison: one vae_numpy epoch from the seed (float32)."""
    cfg = VAEConfig(input_dim=x_train.shape[1], latent_dim=latent, encoder_hidden=hidden,
                    decoder_hidden=hidden, activation=activation, dtype="float32")
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    vae_numpy.train(params, cfg, x_train.astype(np.float32), optimizer=Adam(LR), rng=rng,
                    epochs=1, batch_size=128, binarize="dynamic", progress=False)
    return params, cfg


# --- peak memory of the demos -------------------------------------------------------------------

# Runs a command and prints the peak RSS (kB) of that child. The measurement needs this small
# launcher: a child's ru_maxrss also counts the memory of the process it was forked from
# before its exec, and this benchmark, with torch loaded, is larger than the demos.
_LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "_, status, usage = os.wait4(p.pid, 0); "
             "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))")


def peak_rss_mb(argv):
    r"""Run a command; return (peak resident MB of the command, seconds, return code)."""
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _LAUNCHER] + argv, cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]) / 1024, time.perf_counter() - t0, int(out[1])


def memory(args, m):
    r"""Peak RSS of the 10-epoch MNIST demo and of demos/evaluate.py on its checkpoint."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train = [sys.executable, "demos/train_mnist.py", "--data", args.data or "synthetic",
                 "--epochs", str(args.memory_epochs), "--out-dir", tmp]
        if args.data is None:
            train += ["--n-train", "2000", "--n-test", str(args.memory_n)]
        mb, s, rc = peak_rss_mb(train)
        rows.append({"what": f"demos/train_mnist.py, {args.memory_epochs} epochs",
                     "peak_mb": mb, "seconds": s, "returncode": rc})
        print(f"peak RSS {mb:7.1f} MB  {s:7.1f} s  {rows[-1]['what']}  {machine_line(m)}",
              flush=True)
        evaluate = [sys.executable, "demos/evaluate.py", os.path.join(tmp, "checkpoint.npz"),
                    "--k", str(args.memory_k), "--n", str(args.memory_n), "--out-dir", tmp]
        if args.data is not None:
            evaluate += ["--data", args.data]
        mb, s, rc = peak_rss_mb(evaluate)
        rows.append({"what": f"demos/evaluate.py --k {args.memory_k} --n {args.memory_n}",
                     "peak_mb": mb, "seconds": s, "returncode": rc})
        print(f"peak RSS {mb:7.1f} MB  {s:7.1f} s  {rows[-1]['what']}  {machine_line(m)}",
              flush=True)
    return rows


# --- the command ------------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="MNIST (.npz, IDX dir); default synthetic")
    p.add_argument("--threads", default="1,2", help="thread counts to compare, e.g. 1,2")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--only", default="epoch,iw,memory", help="sections to run")
    p.add_argument("--repeats", type=int, default=REPEATS, help="timed runs per side (>= 3)")
    p.add_argument("--n-train", type=int, default=None,
                   help=f"training images per epoch (default all; synthetic {N_SYNTHETIC})")
    p.add_argument("--iw-k", type=int, default=IW_K)
    p.add_argument("--iw-n", type=int, default=IW_N)
    p.add_argument("--memory-epochs", type=int, default=10)
    p.add_argument("--memory-k", type=int, default=5000)
    p.add_argument("--memory-n", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--quick", action="store_true", help=f"small sizes: {QUICK}")
    return p


def main(argv=None):
    p = build_parser()
    args = parse_with_quick(p, argv, QUICK)
    import torch
    m = machine(torch)
    print(machine_line(m), flush=True)
    sections = args.only.split(",")
    if args.data is None:
        n = args.n_train or N_SYNTHETIC
        data = load_dataset("synthetic", dtype=np.float64, n_train=n, n_test=max(args.iw_n, 10),
                            seed=args.seed)
    else:
        data = load_dataset(args.data, dtype=np.float64)
    x_train = data.x_train[:args.n_train] if args.n_train else data.x_train
    results = {"machine": m, "data": args.data or "synthetic", "n_train": len(x_train),
               "epoch": [], "iw": [], "memory": []}
    for threads in map(int, args.threads.split(",")):
        set_threads(threads, torch)
        if "epoch" in sections:
            for dtype in args.dtypes.split(","):
                for name, (hidden, latent, act, batches) in MODELS.items():
                    for batch in batches:
                        t_np, t_torch = alternate(
                            numpy_epoch(x_train, hidden, latent, act, batch, dtype, args.seed),
                            torch_epoch(torch, x_train, hidden, latent, act, batch, dtype,
                                        args.seed), args.repeats)
                        row = dict(model=name, batch=batch, dtype=dtype, threads=threads,
                                   **summary(t_np, t_torch))
                        results["epoch"].append(row)
                        print(f"epoch {name:20s} B={batch:<4d} {dtype} {threads} thread(s): "
                              f"vae_numpy {row['vae_numpy_s']:.2f} s, torch "
                              f"{row['torch_s']:.2f} s, ratio {row['ratio']:.2f}  "
                              f"{machine_line(m)}", flush=True)
        if "iw" in sections:
            hidden, latent, act, _ = MODELS["784-400-20 relu"]
            params, cfg = iw_params(x_train[:2000], hidden, latent, act, args.seed)
            x = binarize_test_set(data.x_test[:args.iw_n]).astype(np.float32)
            ours = lambda: vae_numpy.iw_log_likelihood(  # noqa: E731
                params, x, cfg, args.iw_k, np.random.default_rng(args.seed), progress=False)
            t_np, t_torch = alternate(ours, torch_iw(torch, params, x, args.iw_k, args.seed),
                                      args.repeats)
            row = dict(k=args.iw_k, n=len(x), dtype="float32", threads=threads,
                       **summary(t_np, t_torch))
            results["iw"].append(row)
            print(f"IW_{args.iw_k} on {len(x)} images, float32, {threads} thread(s): vae_numpy "
                  f"{row['vae_numpy_s']:.2f} s, torch {row['torch_s']:.2f} s, ratio "
                  f"{row['ratio']:.2f}  {machine_line(m)}", flush=True)
    if "memory" in sections:
        results["memory"] = memory(args, m)
    if args.json:
        with atomic_write(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
