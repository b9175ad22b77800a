"""Every command with bad values: every demo and every ``python -m vae_numpy`` subcommand, each
numeric flag with 0, negative, inf, nan, a wrong type (the values its rule refuses, read from
the flag's type), and huge sizes, a missing file and an unwritable directory. Each must end
with a one-line error, no traceback, a non-zero exit status, and no file of the out-dir
changed.

Every flag of these parsers that takes a number uses a checked type of
vae_numpy.commands.flags (the first test says so), so a new flag is attacked here without a
line of this file changing. Runs in-process (main(argv)); three subprocesses check that the
real interpreter prints the same single line.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vae_numpy import __main__ as cli
from vae_numpy.commands import evaluate as evaluate_command
from vae_numpy.commands import train as train_command
from vae_numpy.commands.preflight import available_memory

ROOT = Path(__file__).resolve().parents[1]
HUGE = str(10 ** 12)   # a size that fits in no memory
# minimal_vae.py is left out: it imports nothing of vae_numpy by design (the one-page VAE), so
# it cannot use the command layer; its bad values still end in a traceback.
DEMOS = ("reproduce_iwae_table", "beta_tradeoff", "elbo_gap", "kl_monte_carlo",
         "reparam_vs_score", "check_pytorch")


def load_demo(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "demos" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demos():
    loaded = {}
    for name in DEMOS:
        try:
            loaded[name] = load_demo(name)
        except ImportError:   # check_pytorch without torch
            continue
    return loaded


def subparser(parser, name):
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices[name]


# name -> (build_parser, main, the arguments every call starts with, its out-dir flag)
COMMANDS = {
    "vae-numpy train": (train_command.build_parser, train_command.main,
                        ["--quick", "--n-train", "100", "--n-test", "20", "--hidden", "8"],
                        "--out-dir"),
    "vae-numpy evaluate": (evaluate_command.build_parser, evaluate_command.main,
                           ["{checkpoint}", "--quick"], "--out-dir"),
    "python -m vae_numpy fixture": (lambda: subparser(cli.build_parser(), "fixture"),
                                    lambda argv: cli.main(["fixture"] + argv), [], "--out"),
}
for _name, _module in demos().items():
    _base = ["--data", "synthetic", "--quick"] if _name == "reproduce_iwae_table" else ["--quick"]
    COMMANDS[f"{_name}.py"] = (_module.build_parser, _module.main, _base, "--out-dir")


def bad_values(kind, low, high, low_open):
    r"""The values a flag's rule refuses: a wrong type, inf, nan and the numbers beside its
    bounds (0 or a negative number for most)."""
    if kind == "widths":
        return ["abc", "0", "8,-1", "8;6"]
    values = ["abc", "inf", "-inf", "nan"] + (["2.5"] if kind == "integer" else [])
    if low is not None:
        values.append(f"{low:g}" if low_open else str(low - 1))
    if high is not None:
        values.append(str(high + 1))
    return values


def flag_cases():
    cases = []
    for name, (build, _, _, _) in COMMANDS.items():
        for action in build()._actions:
            kind = getattr(action.type, "kind", None)
            if kind is None or not action.option_strings:
                continue
            rule = (kind, getattr(action.type, "low", None), getattr(action.type, "high", None),
                    getattr(action.type, "low_open", False))
            for value in bad_values(*rule):
                cases.append(pytest.param(name, [action.option_strings[0], value],
                                          id=f"{name} {action.option_strings[0]} {value}"))
    return cases


def test_every_number_flag_has_a_checked_type():
    loose = [f"{name} {action.option_strings[0]}" for name, (build, *_) in COMMANDS.items()
             for action in build()._actions
             if action.type in (int, float) or (action.type is None and action.option_strings
                                                and action.nargs != 0 and action.choices is None
                                                and isinstance(action.default, (int, float))
                                                and not isinstance(action.default, bool))]
    assert not loose, f"flags that take a number without a checked type: {loose}"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("battery") / "run"
    real = train_command.have_matplotlib
    train_command.have_matplotlib = lambda: False   # the figures are not what is tested
    try:
        train_command.main(COMMANDS["vae-numpy train"][2] + ["--epochs", "1", "--latent", "2",
                                                             "--out-dir", str(out)])
    finally:
        train_command.have_matplotlib = real
    return out / "checkpoint.npz"


@pytest.fixture
def out_dir(tmp_path):
    """An out-dir that holds a file of an earlier run, to see that nothing in it changes."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.json").write_text('{"kept": true}')
    return out


def snapshot(directory):
    return {p.name: p.read_bytes() for p in Path(directory).iterdir()}


def run_in_process(name, argv, capsys):
    r"""Run a command's main(argv); return (exit status, its error line, all of stderr)."""
    main = COMMANDS[name][1]
    try:
        status = main(argv)
    except SystemExit as stop:
        status = stop.code
    err = capsys.readouterr().err
    if isinstance(status, str):   # SystemExit("prog: error: ..."): Python prints it at exit
        return 1, status, err
    return status, (err.strip().splitlines() or [""])[-1], err


def assert_one_line_error(name, status, line, err):
    assert status not in (0, None), f"{name} exited {status}"
    assert "Traceback" not in err and "\n" not in line, err
    assert line.startswith(f"{name}: error: "), line


def argv_for(name, flags, out, checkpoint):
    base = [checkpoint if word == "{checkpoint}" else word for word in COMMANDS[name][2]]
    out_flag = COMMANDS[name][3]
    return base + flags + [out_flag, str(out / "case.npz") if out_flag == "--out" else str(out)]


@pytest.mark.parametrize("name, flags", flag_cases())
def test_a_bad_flag_value_is_one_line_and_exit_2(name, flags, out_dir, checkpoint, capsys):
    before = snapshot(out_dir)
    status, line, err = run_in_process(name, argv_for(name, flags, out_dir, str(checkpoint)),
                                       capsys)
    assert_one_line_error(name, status, line, err)
    assert status == 2 and err.count("\n") == 1, err   # a usage error: nothing else printed
    assert f"argument {flags[0]}" in line
    assert snapshot(out_dir) == before


# Problems found once the arguments parse: files, directories, sizes (before any work).
RUNTIME_CASES = {
    "vae-numpy train": [["--data", "{missing}"], ["--hidden", HUGE], ["--n-train", HUGE],
                        ["--latent", HUGE], ["--resume"]],
    "vae-numpy evaluate": [["--chunk-size", HUGE, "--k", HUGE], ["--against", "{missing}"]],
    "python -m vae_numpy fixture": [["--input-dim", HUGE], ["--batch", HUGE],
                                    ["--encoder-hidden", HUGE]],
    "reproduce_iwae_table.py": [["--data", "{missing}"], ["--resume"],
                                ["--publish", "{unwritable}"]],
    "check_pytorch.py": [["--input-dim", HUGE], ["--hidden", HUGE]],
}


def runtime_cases():
    cases = []
    for name in COMMANDS:
        for flags in RUNTIME_CASES.get(name, []) + [["{unwritable-out}"], ["{proc-out}"]]:
            cases.append(pytest.param(name, flags, id=f"{name} {' '.join(flags)}"))
    cases.append(pytest.param("vae-numpy evaluate", ["{missing-checkpoint}"],
                              id="vae-numpy evaluate missing checkpoint"))
    return cases


@pytest.mark.parametrize("name, flags", runtime_cases())
def test_a_missing_file_a_directory_or_a_size_is_one_line_before_any_work(
        name, flags, out_dir, checkpoint, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    out = out_dir
    words = {"{missing}": str(tmp_path / "missing.npz"),
             "{unwritable}": str(a_file / "sub")}
    if flags == ["{unwritable-out}"]:
        flags, out = [], a_file / "sub"
    elif flags == ["{proc-out}"]:
        if not os.path.isdir("/proc/self"):
            pytest.skip("needs /proc: a directory where no one, root included, creates files")
        flags, out = [], Path("/proc/self/vae_numpy_battery")
    argv = argv_for(name, [words.get(w, w) for w in flags], out, str(checkpoint))
    if flags == ["{missing-checkpoint}"]:
        argv = [str(tmp_path / "none.npz")] + argv[2:]
    before = snapshot(out_dir)
    status, line, err = run_in_process(name, argv, capsys)
    assert_one_line_error(name, status, line, err)
    assert snapshot(out_dir) == before
    if HUGE in flags and available_memory() is not None:   # refused by the estimate, not
        assert "of memory, more than the" in line, line     # by a failed allocation


@pytest.mark.parametrize("argv, prog, status", [
    (["demos/train_mnist.py", "--epochs", "-1"], "vae-numpy train", 2),
    (["-m", "vae_numpy", "fixture", "--out", "{out}/a.npz", "--batch", "nan"],
     "python -m vae_numpy fixture", 2),
    (["demos/reproduce_iwae_table.py", "--data", "{out}/missing.npz", "--out-dir", "{out}"],
     "reproduce_iwae_table.py", 1),
], ids=["train script", "python -m", "reproduce script"])
def test_the_interpreter_prints_the_same_one_line(argv, prog, status, tmp_path):
    argv = [w.replace("{out}", str(tmp_path)) for w in argv]
    result = subprocess.run([sys.executable] + argv, capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith(f"{prog}: error: ")
    assert list(tmp_path.iterdir()) == []


def test_available_memory_reads_memavailable():
    if not os.path.exists("/proc/meminfo"):
        assert available_memory() is None
        return
    with open("/proc/meminfo") as f:
        [kb] = [line.split()[1] for line in f if line.startswith("MemAvailable:")]
    assert abs(available_memory() - 1024 * int(kb)) < 0.5 * 1024 * int(kb)   # it moves a bit
    assert 8 * int(HUGE) > available_memory()   # HUGE float64 values fit on no machine here
