"""The commands' thread default: one BLAS thread unless --threads N or the environment says
otherwise, set before numpy is imported, printed in the run header and stored in metrics.json.

Each check that needs numpy not yet imported runs in a fresh interpreter."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vae_numpy.commands import threads
from vae_numpy.commands.threads import THREAD_VARIABLES

ROOT = Path(__file__).resolve().parents[1]


def clean_environment(**set_):
    r"""This process's environment without the thread variables (plus ``set_``), with this
    checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get(
        "PYTHONPATH", "").split(os.pathsep) if p])
    env.update(set_)
    return env


def fresh(code, *argv, **set_):
    r"""stdout of ``code`` run by a fresh interpreter (with sys.argv[1:] = argv)."""
    done = subprocess.run([sys.executable, "-c", code, *argv], env=clean_environment(**set_),
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


CHOOSE = """
import json, os, sys
from vae_numpy.commands.threads import THREAD_VARIABLES, set_thread_default
choice = set_thread_default(sys.argv[1:])
import numpy
print(json.dumps([choice, {k: os.environ.get(k) for k in THREAD_VARIABLES}]))
"""


def choose(*argv, **set_):
    return json.loads(fresh(CHOOSE, *argv, **set_))


def test_one_thread_by_default():
    choice, environment = choose()
    assert choice["threads"] == 1 and choice["source"] == "default"
    assert environment == {k: "1" for k in THREAD_VARIABLES}


def test_the_flag_sets_every_variable_and_wins_over_the_environment():
    for argv in (["--threads", "3"], ["--threads=3"], ["train", "--quick", "--threads", "3"]):
        choice, environment = choose(*argv, OPENBLAS_NUM_THREADS="2")
        assert choice["threads"] == 3 and choice["source"] == "--threads"
        assert environment == {k: "3" for k in THREAD_VARIABLES}


def test_the_users_variables_are_kept_and_fill_the_unset_ones():
    choice, environment = choose(OPENBLAS_NUM_THREADS="2")
    assert choice["threads"] == 2 and "OPENBLAS_NUM_THREADS=2" in choice["source"]
    assert environment == {k: "2" for k in THREAD_VARIABLES}
    _, environment = choose(OMP_NUM_THREADS="4", MKL_NUM_THREADS="1")
    assert environment == {"OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "4",
                           "MKL_NUM_THREADS": "1"}


def test_the_blas_runs_with_the_chosen_threads():
    r"""OpenBLAS starts its worker threads when numpy is imported: count them (Linux)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("counts threads through /proc (Linux)")
    code = ("import sys\n"
            "from vae_numpy.commands.threads import set_thread_default\n"
            "set_thread_default(sys.argv[1:])\n"
            "import numpy\n"
            "numpy.ones((300, 300)) @ numpy.ones((300, 300))\n"
            "print(next(line.split()[1] for line in open('/proc/self/status')\n"
            "           if line.startswith('Threads')))")
    assert fresh(code).strip() == "1"
    assert fresh(code, "--threads", "2").strip() == "2"


def test_the_package_and_the_commands_import_numpy_only_when_asked():
    code = ("import sys, vae_numpy, vae_numpy.__main__, vae_numpy.commands.threads\n"
            "import vae_numpy.commands.progress\n"
            "print('numpy' in sys.modules)\n"
            "vae_numpy.VAEConfig\n"
            "print('numpy' in sys.modules)")
    assert fresh(code).split() == ["False", "True"]
    for demo in ("train_mnist", "evaluate"):  # the thin wrappers, imported as modules
        code = (f"import importlib.util, sys\n"
                f"spec = importlib.util.spec_from_file_location('d', 'demos/{demo}.py')\n"
                f"spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
                f"print('numpy' in sys.modules)")
        assert fresh(code).strip() == "False", demo


def test_the_public_names_are_the_ones_they_were():
    import vae_numpy as vn
    import vae_numpy.commands.train  # noqa: F401  (imports the submodule vae_numpy.train)
    from vae_numpy.train import train
    assert vn.train is train  # the function, not the module
    assert callable(vn.loss_and_grads) and vn.evaluate.__name__ == "vae_numpy.evaluate"
    assert set(vn.__all__) <= set(dir(vn))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        vn.nothing


def test_in_process_after_numpy_the_environment_is_left_alone(monkeypatch):
    monkeypatch.setattr(threads, "_choice", None)
    environment = {"OPENBLAS_NUM_THREADS": "2"}
    choice = threads.set_thread_default(["--threads", "3"], environ=environment)
    assert environment == {"OPENBLAS_NUM_THREADS": "2"}  # numpy is already imported here
    assert choice["threads"] == 2 and choice["source"].startswith("--threads 3 ignored")


def test_threads_flag_parsing():
    assert threads.threads_flag(["--quick", "--threads", "4"]) == 4
    assert threads.threads_flag(["--threads=4"]) == 4
    assert threads.threads_flag(["--threads", "0"]) is None  # the parser reports it
    assert threads.threads_flag(["--threads", "two"]) is None
    assert threads.threads_flag(["--quick"]) is None


def test_a_bad_thread_count_is_a_usage_error(capsys):
    from vae_numpy.__main__ import main
    with pytest.raises(SystemExit) as info:
        main(["fixture", "--out", "x.npz", "--threads", "0"])
    assert info.value.code == 2 and "--threads takes a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["-m", "vae_numpy", "train"], ["demos/train_mnist.py"]])
def test_the_run_header_and_metrics_say_the_thread_count(command, tmp_path):
    argv = [sys.executable, *command, "--quick", "--epochs", "1", "--n-train", "300",
            "--n-test", "100"]
    for extra, threads_, source in (([], 1, "default"), (["--threads", "2"], 2, "--threads")):
        out = tmp_path / str(threads_)   # a run of its own (a run never replaces another)
        done = subprocess.run(argv + extra + ["--out-dir", str(out)], env=clean_environment(),
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert f"threads: {threads_} ({source}; --threads N to change)" in done.stderr
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["threads"]["threads"] == threads_
        assert metrics["threads"]["source"] == source


def test_the_compare_exit_codes_are_the_verdicts():
    from vae_numpy.__main__ import EXIT_CODES
    from vae_numpy.crosscheck import FAIL, INCOMPLETE, PASS
    assert EXIT_CODES == {PASS: 0, FAIL: 1, INCOMPLETE: 3}


def test_the_thread_benchmark_starts_each_way_and_judges_by_its_bar():
    import importlib.util
    spec = importlib.util.spec_from_file_location("thread_default",
                                                  ROOT / "benchmarks" / "thread_default.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert not set(THREAD_VARIABLES) & set(bench.environment("default"))  # the demo decides
    assert all(bench.environment("2 threads")[k] == "2" for k in THREAD_VARIABLES)
    busy = {"default": 12.4, "1 thread": 10.0, "2 threads": 30.0}
    assert bench.verdict(busy, "busy") == (1.24, bench.BUSY_BAR, True)
    quiet = {"default": 10.0, "1 thread": 10.0, "2 threads": 8.0}  # default 1.25 x the best
    ratio, bar, holds = bench.verdict(quiet, "quiet")
    assert ratio == pytest.approx(1.25) and bar == bench.QUIET_BAR and not holds
