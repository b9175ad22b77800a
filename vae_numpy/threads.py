r"""Elementwise work split over threads: the thread count and a shared pool.

NumPy's ufuncs release the GIL while they run over an array, so calling them on disjoint row
blocks from two threads uses two cores, as a BLAS does for matrix products. Only work that
writes each output entry from the same entries of its inputs is split this way, so a result
never depends on the number of threads (each row block is computed exactly as it would be
alone; row sums stay within one block).

Who splits: the importance-weighted evaluation (:mod:`vae_numpy.fast_iw`), whose blocks are
large; nothing else uses this module. The training step and Adam run on the calling thread:
their arrays are small, and split over two threads they were measured slower.

The thread count, in order of precedence:

1. :func:`set_num_threads` (e.g. a benchmark comparing 1 and 2 threads in one process);
2. the environment variable ``VAE_NUMPY_NUM_THREADS``;
3. the CPUs this process may run on (``os.sched_getaffinity``), capped by
   ``OMP_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` when set, so ``OPENBLAS_NUM_THREADS=1``
   means one thread for everything.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ENV_THREADS = "VAE_NUMPY_NUM_THREADS"
CAP_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")

_override = None
_pool = None
_pool_size = 0
_lock = threading.Lock()


def _available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _positive_int(name, text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"environment variable {name}={text!r} must be a positive integer "
                         "number of threads")
    return n


def num_threads():
    r"""The number of threads elementwise work is split over (see the module docstring)."""
    if _override is not None:
        return _override
    if os.environ.get(ENV_THREADS):
        return _positive_int(ENV_THREADS, os.environ[ENV_THREADS])
    n = _available_cpus()
    for name in CAP_VARIABLES:
        if os.environ.get(name):
            n = min(n, _positive_int(name, os.environ[name]))
    return max(n, 1)


def set_num_threads(n):
    r"""Use n threads from now on (None: back to the environment's choice)."""
    global _override
    if n is not None and (int(n) != n or n < 1):
        raise ValueError(f"set_num_threads needs a positive integer or None, got {n!r}")
    _override = None if n is None else int(n)


def _executor(workers):
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vae_numpy")
            _pool_size = workers
        return _pool


def row_blocks(n, parts):
    r"""Split ``range(n)`` into at most ``parts`` contiguous slices of nearly equal size."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts)]


def run_blocks(fn, blocks, threads=None):
    r"""Call ``fn(block)`` for every block, spread over ``threads`` threads; returns None.

    The calling thread does the first share itself; with one thread (or one block) everything
    runs in the caller, with no pool involved. An exception in any block is raised here.
    """
    threads = num_threads() if threads is None else threads
    if threads <= 1 or len(blocks) <= 1:
        for block in blocks:
            fn(block)
        return
    shares = [blocks[s] for s in row_blocks(len(blocks), threads)]
    pool = _executor(len(shares) - 1)
    futures = [pool.submit(_run_share, fn, share) for share in shares[1:]]
    _run_share(fn, shares[0])
    for f in futures:
        f.result()


def _run_share(fn, share):
    for block in share:
        fn(block)


_local = threading.local()


def scratch(slot, n, dtype):
    r"""A 1-D scratch array of n entries of dtype, private to the calling thread.

    ``slot`` names the buffer (two slots may be used at once). The buffer is kept between
    calls, so a loop over blocks does not allocate (and, for blocks over 128 kB, does not map
    fresh pages from the system) on every block. Its contents are undefined on return.
    """
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    key = (slot, dtype)
    buf = buffers.get(key)
    if buf is None or buf.size < n:
        buf = buffers[key] = np.empty(n, dtype)
    return buf[:n]
