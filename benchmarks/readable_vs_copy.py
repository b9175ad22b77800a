r"""Cost of the readable functions against the faster copies that trained and evaluated before.

    OPENBLAS_NUM_THREADS=1 VAE_NUMPY_NUM_THREADS=1 python benchmarks/readable_vs_copy.py
    python benchmarks/readable_vs_copy.py --rows iwae_step,log_weights --repeats 9
    python benchmarks/readable_vs_copy.py --rows vae_step_relu,adam --repeats 9
    python benchmarks/readable_vs_copy.py --quick          # a few seconds, a smoke run

Each row of :data:`ROWS` builds, on the same model, data and noise, one closure per contender:
``readable`` (the function the docs point to) and ``copy`` (a faster copy of it, when the
package still has one; the column is empty once the copy is gone). Rows with one contender
time that one alone.

Timing is paired, for a machine other jobs share: after a warm-up, each repeat times
``--calls`` calls of every contender in turn, the contenders alternating (readable, copy,
readable, copy, ...), with ``time.perf_counter``; the table gives the median seconds per call
over ``--repeats`` repeats and the median of the per-repeat ratios readable / copy. The load
average (``os.getloadavg``) at the start and the end is printed beside the table: the numbers
mean little on a loaded machine. Set ``OPENBLAS_NUM_THREADS=1`` and ``VAE_NUMPY_NUM_THREADS=1``
before Python starts (OpenBLAS reads its thread count once).

Adding a row: a function ``(dtype) -> {"readable": closure, "copy": closure or None}``
registered with ``@row("name", "what it times")``.

Not part of the test suite. Progress goes to stderr, the table to stdout.
"""
import argparse
import importlib
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np

import vae_numpy
from vae_numpy import VAEConfig, init_params
from vae_numpy.files.atomic import atomic_write
from vae_numpy.commands.flags import parse_with_quick
from vae_numpy.evaluate import _log_weights, encode, iw_log_likelihood
from vae_numpy.iwae import _iwae_step
from vae_numpy.model import loss_and_grads
from vae_numpy.optim import Adam

# --- settings (defaults of the flags) -------------------------------------------------------
REPEATS = 9
CALLS = 5
WARMUP = 2
QUICK = dict(repeats=3, calls=1)
SEED = 0


def optional(module, name):
    r"""``module.name`` if the package still has it, else None (a copy that was deleted).

    A module found outside the imported package's directory does not count: an editable
    install of another checkout can serve a module this checkout has deleted.
    """
    try:
        found = importlib.import_module(module)
    except ImportError:
        return None
    package_dir = os.path.dirname(os.path.abspath(vae_numpy.__file__))
    if not os.path.abspath(found.__file__).startswith(package_dir + os.sep):
        return None
    return getattr(found, name, None)


def burda_config(dtype, likelihood="bernoulli"):
    r"""Burda et al.'s one-stochastic-layer model: 784-200-200-50 tanh."""
    return VAEConfig(input_dim=784, latent_dim=50, encoder_hidden=(200, 200),
                     decoder_hidden=(200, 200), activation="tanh", likelihood=likelihood,
                     dtype=dtype)


def model_and_data(cfg, batch, seed=SEED):
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    x = (rng.random((batch, cfg.input_dim)) < 0.3).astype(cfg.dtype)  # (B, D), binary
    return params, x, rng


# --- the rows -------------------------------------------------------------------------------

ROWS = {}


def row(name, what):
    r"""Register a row builder ``(dtype) -> {"readable": closure, "copy": closure or None}``."""
    def register(build):
        ROWS[name] = (what, build)
        return build
    return register


@row("iwae_step", "IWAE step, 784-200-200-50 tanh Bernoulli, B=100, K=5 "
                  "(_iwae_step vs FastIWAEStep)")
def iwae_step_row(dtype):
    cfg = burda_config(dtype)
    params, x, rng = model_and_data(cfg, 100)
    eps = rng.standard_normal((5, 100, cfg.latent_dim), dtype=cfg.dtype)  # (K, B, J)
    fast_class = optional("vae_numpy.fast_iwae", "FastIWAEStep")
    fast = fast_class(cfg) if fast_class else None
    return {"readable": lambda: _iwae_step(params, x, eps, cfg),
            "copy": (lambda: fast(params, x, eps, 1.0)) if fast else None}


@row("log_weights", "IW log-weights, 1000 samples x 5 images, same model "
                    "(evaluate._log_weights vs LogWeights)")
def log_weights_row(dtype):
    cfg = burda_config(dtype)
    params, x, rng = model_and_data(cfg, 5)
    mu, logvar = encode(params, x, cfg)
    eps = rng.standard_normal((1000, 5, cfg.latent_dim), dtype=cfg.dtype)  # (S, B, J)
    log_weights_class = optional("vae_numpy.fast_iw", "LogWeights")
    fast = log_weights_class(params, cfg) if log_weights_class else None
    return {"readable": lambda: _log_weights(params, x, mu, logvar, eps, cfg),
            "copy": (lambda: fast(x, mu, logvar, eps)) if fast else None}


@row("iw_log_likelihood", "evaluate.iw_log_likelihood, K=1000 on 100 images, default "
                          "batch_size and chunk_size, same model")
def iw_log_likelihood_row(dtype):
    cfg = burda_config(dtype)
    params, x, _ = model_and_data(cfg, 100)
    return {"readable": lambda: iw_log_likelihood(params, x, cfg, 1000,
                                                  np.random.default_rng(1), progress=False),
            "copy": None}


def relu_config(dtype):
    r"""pytorch/examples' VAE: 784-400-20 ReLU, Bernoulli."""
    return VAEConfig(input_dim=784, latent_dim=20, encoder_hidden=(400,), decoder_hidden=(400,),
                     activation="relu", dtype=dtype)


def vae_step_contenders(cfg, batch):
    params, x, rng = model_and_data(cfg, batch)
    eps = rng.standard_normal((batch, cfg.latent_dim), dtype=cfg.dtype)  # (B, J)
    fast_class = optional("vae_numpy.fast_step", "FastStep")
    fast = fast_class(cfg) if fast_class else None
    return {"readable": lambda: loss_and_grads(params, x, eps, cfg),
            "copy": (lambda: fast(params, x, eps, 1.0)) if fast else None}


@row("vae_step_relu", "VAE step, 784-400-20 relu Bernoulli, B=128 "
                      "(loss_and_grads vs FastStep)")
def vae_step_relu_row(dtype):
    return vae_step_contenders(relu_config(dtype), 128)


@row("vae_step_tanh", "VAE step, 784-200-200-50 tanh Bernoulli, B=100 "
                      "(loss_and_grads vs FastStep)")
def vae_step_tanh_row(dtype):
    return vae_step_contenders(burda_config(dtype), 100)


def adam_formula(opt, params, grads, state):
    r"""Adam's update as its docstring writes it, with temporaries, on whole arrays."""
    t = int(state["step"]) + 1
    state["step"] = np.array(t)
    bias1, bias2 = 1 - opt.beta1**t, 1 - opt.beta2**t
    for k, p in params.items():
        g, m, v = grads[k], state[f"m/{k}"], state[f"v/{k}"]
        m *= opt.beta1
        m += (1 - opt.beta1) * g
        v *= opt.beta2
        v += (1 - opt.beta2) * (g * g)
        p -= opt.lr * (m / bias1) / (np.sqrt(v / bias2) + opt.eps)


def adam_case(dtype):
    r"""784-400-20 parameters, one gradient, and two (params, state) pairs to update."""
    cfg = relu_config(dtype)
    params, x, rng = model_and_data(cfg, 128)
    eps = rng.standard_normal((128, cfg.latent_dim), dtype=cfg.dtype)
    grads = loss_and_grads(params, x, eps, cfg)[1]
    opt = Adam(1e-3)
    other = {k: v.copy() for k, v in params.items()}
    return opt, grads, (params, opt.init(params)), (other, opt.init(other))


@row("adam", "Adam's update, the 784-400-20 parameters (the formula with temporaries vs the "
             "blocked copy in Adam.step; once the copy is gone, Adam.step alone)")
def adam_row(dtype):
    opt, grads, (params, state), (other, other_state) = adam_case(dtype)
    if optional("vae_numpy.optim", "adam_blocks") is None:   # no copy: Adam.step is the formula
        return {"readable": lambda: opt.step(params, grads, state), "copy": None}
    return {"readable": lambda: adam_formula(opt, other, grads, other_state),
            "copy": lambda: opt.step(params, grads, state)}


@row("adam_blocks", "Adam.update on whole arrays vs Adam.step (the same update on "
                    "optim.cache_blocks), the 784-400-20 parameters")
def adam_blocks_row(dtype):
    opt, grads, (params, state), (other, other_state) = adam_case(dtype)
    if optional("vae_numpy.optim", "cache_blocks") is None:
        return {"readable": None, "copy": None}

    def whole_arrays():
        t = int(other_state["step"]) + 1
        other_state["step"] = np.array(t)
        for k, p in other.items():
            opt.update(p, grads[k], other_state[f"m/{k}"], other_state[f"v/{k}"],
                       1 - opt.beta1**t, 1 - opt.beta2**t)
    return {"readable": whole_arrays, "copy": lambda: opt.step(params, grads, state)}


# --- timing -----------------------------------------------------------------------------------

def time_alternating(callers, repeats, calls, warmup=WARMUP):
    r"""Per-repeat seconds per call of each contender (name -> closure), the contenders
    alternating within every repeat. Returns name -> list of ``repeats`` floats."""
    for call in callers.values():
        for _ in range(warmup):
            call()
    seconds = {name: [] for name in callers}
    for _ in range(repeats):
        for name, call in callers.items():
            start = time.perf_counter()
            for _ in range(calls):
                call()
            seconds[name].append((time.perf_counter() - start) / calls)
    return seconds


def _contender_process(conn, name, dtype, contender, warmup):
    r"""Worker of :func:`time_isolated`: build one contender, then time ``calls`` calls each
    time the parent sends ``calls``; reply (seconds per call, minor page faults per call)."""
    call = ROWS[name][1](dtype)[contender]
    for _ in range(warmup):
        call()
    while (calls := conn.recv()) is not None:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        for _ in range(calls):
            call()
        seconds = (time.perf_counter() - start) / calls
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / calls
        conn.send((seconds, faults))


def time_isolated(name, dtype, contenders, repeats, calls, warmup=WARMUP):
    r"""As :func:`time_alternating`, each contender in its own process.

    In one process the contenders share the C heap: the copy's long-lived buffers change
    where the readable function's fresh (B, D) arrays land, and measured on the VAE step
    that made the readable function take ~1,250 minor page faults per call instead of none
    (in a training run alone it takes under 10). Separate processes, taking turns, keep the
    alternation and give each contender the heap it has when it trains.
    Returns (seconds, faults): name -> list of ``repeats`` floats each.
    """
    ctx = multiprocessing.get_context("spawn")
    workers = {}
    for contender in contenders:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_contender_process,
                           args=(child, name, dtype, contender, warmup))
        proc.start()
        workers[contender] = (proc, parent)
    seconds = {c: [] for c in contenders}
    faults = {c: [] for c in contenders}
    try:
        for _ in range(repeats):
            for contender, (_, conn) in workers.items():
                conn.send(calls)
                s, f = conn.recv()
                seconds[contender].append(s)
                faults[contender].append(f)
    finally:
        for proc, conn in workers.values():
            conn.send(None)
            proc.join()
    return seconds, faults


def summarize(seconds, faults=None):
    r"""Medians (ms) of each contender and the median of the per-repeat ratios readable/copy."""
    out = {f"{name}_ms": 1e3 * statistics.median(t) for name, t in seconds.items()}
    if "copy" in seconds:
        out["ratio"] = statistics.median(r / c for r, c in zip(seconds["readable"],
                                                                seconds["copy"]))
    out["rounds_s"] = seconds
    if faults is not None:
        out.update({f"{name}_faults": statistics.median(f) for name, f in faults.items()})
    return out


def run(names, dtype, repeats, calls, in_process=False):
    results = {}
    for name in names:
        what, build = ROWS[name]
        contenders = {k: v for k, v in build(dtype).items() if v is not None}
        if not contenders:
            print(f"{name}: nothing to time in this version of the package", file=sys.stderr)
            continue
        print(f"{name}: {what} ...", file=sys.stderr, flush=True)
        if in_process:
            timed = summarize(time_alternating(contenders, repeats, calls))
        else:
            timed = summarize(*time_isolated(name, dtype, list(contenders), repeats, calls))
        results[name] = {"what": what, **timed}
    return results


def table(results):
    lines = ["| row | readable ms | copy ms | readable / copy | page faults per call |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        copy = f"{r['copy_ms']:.2f}" if "copy_ms" in r else "(no copy)"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
        faults = " / ".join(f"{r[k]:.0f}" for k in ("readable_faults", "copy_faults") if k in r)
        lines.append(f"| {r['what']} | {r['readable_ms']:.2f} | {copy} | {ratio} | "
                     f"{faults or 'not counted'} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS),
                        help="comma-separated rows (default: all: %(default)s)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--calls", type=int, default=CALLS, help="calls per timed repeat")
    parser.add_argument("--in-process", action="store_true",
                        help="time the contenders in this process (default: one process each; "
                             "see time_isolated)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--quick", action="store_true", help="a few seconds: a smoke run")
    return parse_with_quick(parser, argv, QUICK)


def main(argv=None):
    args = parse_args(argv)
    names = [n for n in args.rows.split(",") if n]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {sorted(ROWS)}")
    env = {k: os.environ.get(k, "unset") for k in ("OPENBLAS_NUM_THREADS",
                                                   "VAE_NUMPY_NUM_THREADS")}
    load_before = os.getloadavg()
    results = run(names, args.dtype, args.repeats, args.calls, args.in_process)
    load_after = os.getloadavg()
    print(table(results))
    where = "one process" if args.in_process else "one process per contender"
    print(f"\n{args.dtype}, medians of {args.repeats} alternating repeats of {args.calls} "
          f"call(s), {where}; {env}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} "
          f"after; numpy {np.__version__}, {platform.processor() or platform.machine()}")
    out = {"dtype": args.dtype, "repeats": args.repeats, "calls": args.calls, "env": env,
           "in_process": args.in_process,
           "loadavg_before": load_before, "loadavg_after": load_after, "rows": results}
    if args.json:
        with atomic_write(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
