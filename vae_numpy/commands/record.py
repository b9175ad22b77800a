r"""The record of a run: the machine it ran on and the code that ran, for metrics.json.

Numbers in the docs name the command that produced them; a run's metrics.json also says where
(``machine``: CPU, cores, BLAS and its threads, the Python and NumPy versions, the CPU
affinity) and which code (``code_version``: the git commit of the checkout, if any).
"""
import os
import platform
import re
import subprocess

import numpy as np

from .threads import thread_choice


def machine():
    r"""CPU model, logical CPUs, BLAS and Python/NumPy versions, for the record."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            names = re.findall(r"model name\s*:\s*(.+)", f.read())
        cpu = names[0].strip() if names else cpu
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:   # the config layout differs between NumPy versions
        blas = "unknown"
    threads = thread_choice()
    return {"cpu": cpu, "cpus": os.cpu_count(), "blas": blas,
            "openblas_threads": threads["threads"], "threads": threads,
            "python": platform.python_version(), "numpy": np.__version__,
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None}


def code_version():
    r"""The git commit of the code that ran (None outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)),
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
