r"""Speed of vae_numpy's softplus against ``np.logaddexp(0, a)`` and PyTorch's, in the same run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_softplus.py

``vae_numpy.layers.softplus(a) = max(a, 0) + log1p(exp(-|a|))`` is what every Bernoulli and
continuous-Bernoulli loss evaluates on the (B, D) logits. The input here is that array for the
main demo's batch, (128, 784), with logits drawn uniformly from [-8, 8]. Each function is timed
over ``CALLS`` calls with ``time.perf_counter`` after a warm-up, the functions taking turns
within each of ``REPEATS`` rounds (so a busy machine slows all of them alike); reported are the
median time per call and the median over rounds of each one's ratio to vae_numpy's, in float32
and float64. PyTorch's ``torch.nn.functional.softplus`` (one thread) is timed beside them when
torch is installed. Not part of the test suite.
"""
import statistics
import time

import numpy as np

from vae_numpy.layers import softplus

SHAPE = (128, 784)   # (B, D): the logits of one batch of the main demo
CALLS = 200
REPEATS = 7
SEED = 0


def seconds_per_call(f, a):
    t0 = time.perf_counter()
    for _ in range(CALLS):
        f(a)
    return (time.perf_counter() - t0) / CALLS


def main():
    rng = np.random.default_rng(SEED)
    funcs = {"vae_numpy.layers.softplus": softplus,
             "np.logaddexp(0, a)": lambda a: np.logaddexp(0, a)}
    try:
        import torch
        torch.set_num_threads(1)
        funcs["torch.nn.functional.softplus"] = None
    except ImportError:
        torch = None
    print(f"shape {SHAPE}, median of {REPEATS} x {CALLS} calls, microseconds per call")
    for dtype in (np.float32, np.float64):
        a = rng.uniform(-8, 8, SHAPE).astype(dtype)
        calls = {name: (f if f is not None else
                        (lambda _, t=torch.from_numpy(a): torch.nn.functional.softplus(t)))
                 for name, f in funcs.items()}
        for f in calls.values():
            f(a)  # warm-up
        rounds = [{name: seconds_per_call(f, a) for name, f in calls.items()}
                  for _ in range(REPEATS)]
        for name in calls:
            s = statistics.median(r[name] for r in rounds)
            ratio = statistics.median(r[name] / r["vae_numpy.layers.softplus"] for r in rounds)
            print(f"{np.dtype(dtype).name:8s} {name:30s} {s * 1e6:9.1f} us  "
                  f"{ratio:5.2f} x vae_numpy")


if __name__ == "__main__":
    main()
