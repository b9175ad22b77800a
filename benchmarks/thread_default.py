r"""Is the demos' thread default right? The main demo timed with its own default against one and
two BLAS threads, on a busy machine and on a quiet one.

    python benchmarks/thread_default.py --load busy     # two CPU-bound processes run beside it
    python benchmarks/thread_default.py --load quiet    # nothing else may run on the machine
    python benchmarks/thread_default.py --quick         # a smoke run: one repeat, tiny runs

Each run is a fresh process of ``demos/train_mnist.py`` (the README's demo: 784-400-20 ReLU,
Bernoulli, Adam, batch 128, float32) on the built-in synthetic digits, ``--epochs 3 --n-train
5000 --n-test 1000`` by default, timed from start to exit (import, training, evaluation,
figures: what a user waits for). Three ways to start it, alternated within each repeat so a
change of load hits all three alike:

    default   the thread variables (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS)
              removed from the environment: the demo's own choice
    1 thread  all three set to 1
    2 threads all three set to 2

``--load busy`` starts two CPU-bound Python loops (one per core of a 2-core machine) for the
whole measurement and stops them at the end; ``--load quiet`` starts nothing and is only
meaningful when nothing else runs (the load average before and after is printed). The verdict
compares medians:

    busy    default <= BUSY_BAR x (1 thread)                        (BUSY_BAR = 1.25)
    quiet   default <= QUIET_BAR x min(1 thread, 2 threads)         (QUIET_BAR = 1.15)

Exit status 0 when the verdict holds, 1 when it does not. Not part of the test suite.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's vae_numpy, for atomic_write and parse_with_quick

from vae_numpy.files.atomic import atomic_write  # noqa: E402
from vae_numpy.commands.flags import parse_with_quick  # noqa: E402

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEMO = ROOT / "demos" / "train_mnist.py"
DEMO_ARGS = ("--epochs", "3", "--n-train", "5000", "--n-test", "1000")
QUICK_DEMO_ARGS = ("--quick",)
REPEATS = 3
BUSY_BAR = 1.25   # busy machine: the default may cost at most 25% over one thread
QUIET_BAR = 1.15  # quiet machine: at most 15% over the better of one and two threads
BUSY_PROCESSES = 2
BUSY_LOOP = "while True:\n    pass\n"
QUICK = dict(repeats=1)
WAYS = ("default", "1 thread", "2 threads")


def environment(way):
    r"""The child's environment for one way of starting the demo."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get(
        "PYTHONPATH", "").split(os.pathsep) if p])
    if way != "default":
        env.update({k: way.split()[0] for k in THREAD_VARIABLES})
    return env


def time_demo(way, demo_args, out_dir):
    r"""Wall seconds of one run of the demo, started the given way."""
    argv = [sys.executable, str(DEMO), *demo_args, "--out-dir", str(out_dir), "--overwrite"]
    start = time.perf_counter()
    done = subprocess.run(argv, env=environment(way), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"thread_default.py: error: the demo ({way}) exited "
                         f"{done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def start_busy(n):
    r"""n CPU-bound Python processes (ours, stopped by :func:`stop_busy`)."""
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(n)]


def stop_busy(processes):
    for p in processes:
        p.terminate()
    for p in processes:
        p.wait(timeout=10)


def load_average():
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def verdict(medians, load):
    r"""(ratio, bar, holds): the default's median against the reference the load asks for."""
    if load == "busy":
        reference, bar = medians["1 thread"], BUSY_BAR
    else:
        reference, bar = min(medians["1 thread"], medians["2 threads"]), QUIET_BAR
    ratio = medians["default"] / reference
    return ratio, bar, ratio <= bar


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--load", choices=["busy", "quiet"], default="busy")
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--out-dir", default="runs/thread_default",
                   help="the demo's output directory (overwritten every run)")
    p.add_argument("--json", default=None, help="also write the timings here")
    p.add_argument("--quick", action="store_true", help=f"{QUICK} and the demo's --quick")
    return parse_with_quick(p, argv, QUICK)


def main(argv=None):
    args = parse_args(argv)
    demo_args = QUICK_DEMO_ARGS if args.quick else DEMO_ARGS
    os.makedirs(args.out_dir, exist_ok=True)
    before = load_average()
    busy = start_busy(BUSY_PROCESSES) if args.load == "busy" else []
    times = {way: [] for way in WAYS}
    try:
        time.sleep(1.0 if busy else 0.0)  # let the busy loops reach full speed
        for repeat in range(args.repeats):
            order = WAYS[repeat % 3:] + WAYS[:repeat % 3]  # each way leads once in three
            for way in order:
                times[way].append(time_demo(way, demo_args, args.out_dir))
                print(f"repeat {repeat + 1}/{args.repeats}  {way:<9}  {times[way][-1]:7.2f} s",
                      file=sys.stderr, flush=True)
    finally:
        stop_busy(busy)
    after = load_average()
    medians = {way: statistics.median(t) for way, t in times.items()}
    ratio, bar, holds = verdict(medians, args.load)
    print(f"demos/train_mnist.py {' '.join(demo_args)}; load {args.load} "
          f"({len(busy)} busy processes started); load average before {before}, after {after}; "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    for way in WAYS:
        print(f"  {way:<9}  median {medians[way]:7.2f} s  of {len(times[way])}: "
              + " ".join(f"{t:.2f}" for t in times[way]))
    reference = "1 thread" if args.load == "busy" else "min(1 thread, 2 threads)"
    print(f"default / {reference} = {ratio:.3f} (bar {bar}): {'holds' if holds else 'FAILS'}")
    if args.json:
        with atomic_write(args.json, "w") as f:
            json.dump({"load": args.load, "demo_args": list(demo_args), "times": times,
                       "medians": medians, "ratio": ratio, "bar": bar, "holds": holds,
                       "load_average_before": before, "load_average_after": after,
                       "cpus": os.cpu_count()}, f, indent=1)
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
