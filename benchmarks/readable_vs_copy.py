r"""Cost of the readable functions against the faster copies that trained and evaluated before.

    OPENBLAS_NUM_THREADS=1 python benchmarks/readable_vs_copy.py
    python benchmarks/readable_vs_copy.py --rows iwae_step,log_weights --repeats 9
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
mean little on a loaded machine. Set ``OPENBLAS_NUM_THREADS=1``
before Python starts (OpenBLAS reads its thread count once).

Adding a row: a function ``(dtype) -> {"readable": closure, "copy": closure or None}``
registered with ``@row("name", "what it times")``.

Not part of the test suite. Progress goes to stderr, the table to stdout.
"""
import argparse
import importlib
import json
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np

import vae_numpy
from vae_numpy import VAEConfig, evaluate, init_params
from vae_numpy.commands.flags import parse_with_quick
from vae_numpy.files.atomic import atomic_write
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
    r"""``module.name`` if the package imported here still has that module, else None (a
    copy that was deleted). A module found in another copy of the package (an editable
    install elsewhere answers imports the package directory cannot) does not count."""
    try:
        found = importlib.import_module(module)
    except ImportError:
        return None
    package_dir = os.path.dirname(os.path.abspath(vae_numpy.__file__))
    if os.path.dirname(os.path.abspath(found.__file__)) != package_dir:
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
                          "batch_size and chunk_size, same model (its log-weights: "
                          "_log_weights vs LogWeights)")
def iw_log_likelihood_row(dtype):
    cfg = burda_config(dtype)
    params, x, _ = model_and_data(cfg, 100)

    def estimate():
        return iw_log_likelihood(params, x, cfg, 1000, np.random.default_rng(1), progress=False)
    log_weights_class = optional("vae_numpy.fast_iw", "LogWeights")
    if log_weights_class is None or evaluate._log_weights is not _log_weights:
        return {"readable": estimate, "copy": None}
    fast = log_weights_class(params, cfg)   # one object per estimate, as the copy was used

    def estimate_with_the_copy():
        evaluate._log_weights = lambda p, xb, mu, logvar, eps, c: fast(xb, mu, logvar, eps)
        try:
            return estimate()
        finally:
            evaluate._log_weights = _log_weights
    return {"readable": estimate, "copy": estimate_with_the_copy}


@row("iwae_epoch", "IWAE training epoch, same model, 3000 random binary images, B=100, K=5, "
                   "Adam (train with _iwae_step vs train with FastIWAEStep)")
def iwae_epoch_row(dtype):
    cfg = burda_config(dtype)
    _, x, _ = model_and_data(cfg, 3000)
    train_module = importlib.import_module("vae_numpy.train")

    def epoch():
        params = init_params(cfg, np.random.default_rng(SEED))
        return train_module.train(params, cfg, x, optimizer=Adam(1e-3),
                                  rng=np.random.default_rng(1), epochs=1, batch_size=100,
                                  progress=False, objective="iwae", k=5)
    fast_class = optional("vae_numpy.fast_iwae", "FastIWAEStep")
    make_step = getattr(train_module, "make_iwae_step", None)
    if fast_class is None or make_step is None:
        return {"readable": epoch, "copy": None}

    def epoch_with(step_maker):
        train_module.make_iwae_step = step_maker
        try:
            return epoch()
        finally:
            train_module.make_iwae_step = make_step

    def readable_step(cfg, reduction="mean"):
        return lambda params, x, eps, beta: _iwae_step(params, x, eps, cfg, reduction)
    return {"readable": lambda: epoch_with(readable_step),
            "copy": lambda: epoch_with(lambda cfg, reduction="mean": fast_class(cfg, reduction))}


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

def time_alternating(callers, repeats, calls, warmup=WARMUP, keep=True):
    r"""Per-repeat seconds per call of each contender (name -> closure), the contenders
    alternating within every repeat, and each contender's minor page faults per call (the
    process's, ``resource.getrusage``). Returns (name -> list of ``repeats`` floats,
    name -> float).

    With ``keep`` (the default) each call's result is kept until the contender's next call
    returns, as ``train`` keeps a step's gradients until the next step: dropping everything
    between calls lets the C library hand the freed memory back to the system and map it
    again on the next call (``--drop-results`` shows how many page faults that costs).
    """
    results = {}
    for name, call in callers.items():
        for _ in range(warmup):
            results[name] = call()
        if not keep:
            results[name] = None
    seconds = {name: [] for name in callers}
    faults = {name: 0 for name in callers}
    for _ in range(repeats):
        for name, call in callers.items():
            faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            for _ in range(calls):
                results[name] = call()
                if not keep:
                    results[name] = None
            seconds[name].append((time.perf_counter() - start) / calls)
            faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    return seconds, {name: n / (repeats * calls) for name, n in faults.items()}


def summarize(seconds, faults):
    r"""Medians (ms) of each contender, the median of the per-repeat ratios readable/copy, and
    the page faults per call."""
    out = {f"{name}_ms": 1e3 * statistics.median(t) for name, t in seconds.items()}
    if "copy" in seconds:
        out["ratio"] = statistics.median(r / c for r, c in zip(seconds["readable"],
                                                                seconds["copy"]))
    out.update({f"{name}_faults_per_call": n for name, n in faults.items()})
    out["rounds_s"] = seconds
    return out


def run(names, dtype, repeats, calls, keep=True):
    results = {}
    for name in names:
        what, build = ROWS[name]
        contenders = {k: v for k, v in build(dtype).items() if v is not None}
        if not contenders:
            print(f"{name}: nothing to time in this version of the package", file=sys.stderr)
            continue
        print(f"{name}: {what} ...", file=sys.stderr, flush=True)
        results[name] = {"what": what, **summarize(*time_alternating(contenders, repeats, calls,
                                                                     keep=keep))}
    return results


def table(results):
    lines = ["| row | readable ms | copy ms | readable / copy | page faults per call |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        copy = f"{r['copy_ms']:.1f}" if "copy_ms" in r else "(no copy)"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
        faults = " / ".join(f"{r[f'{c}_faults_per_call']:.0f}" for c in ("readable", "copy")
                            if f"{c}_faults_per_call" in r)
        lines.append(f"| {r['what']} | {r['readable_ms']:.1f} | {copy} | {ratio} | {faults} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS),
                        help="comma-separated rows (default: all: %(default)s)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--calls", type=int, default=CALLS, help="calls per timed repeat")
    parser.add_argument("--drop-results", action="store_true",
                        help="drop each call's result at once instead of keeping it until the "
                             "next call (see time_alternating)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--quick", action="store_true", help="a few seconds: a smoke run")
    return parse_with_quick(parser, argv, QUICK)


def main(argv=None):
    args = parse_args(argv)
    names = [n for n in args.rows.split(",") if n]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {sorted(ROWS)}")
    env = {"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset")}
    load_before = os.getloadavg()
    results = run(names, args.dtype, args.repeats, args.calls, keep=not args.drop_results)
    load_after = os.getloadavg()
    print(table(results))
    kept = "dropped at once" if args.drop_results else "kept until the next call"
    print(f"\n{args.dtype}, medians of {args.repeats} alternating repeats of {args.calls} "
          f"call(s), results {kept}; {env}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} "
          f"after; numpy {np.__version__}, {platform.processor() or platform.machine()}")
    out = {"dtype": args.dtype, "repeats": args.repeats, "calls": args.calls, "env": env,
           "keep_results": not args.drop_results,
           "loadavg_before": load_before, "loadavg_after": load_after, "rows": results}
    if args.json:
        with atomic_write(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
