"""Every code block of the README runs, or its marker says why it cannot.

Each fenced block follows a marker line naming what it is:

    <!-- readme-example ... -->     Python; the examples run in order in one namespace (one
                                     marked "fresh interpreter" runs alone in a new process)
    <!-- demo-command -->            the main demo; run here with --quick appended (the full run
                                     trains 50 epochs, too long for the suite)
    <!-- test-command -->            this suite itself (.ci/run runs it word for word)
    <!-- readme-command -->          shell commands, run as written in a temporary directory
    <!-- readme-command: needs ... -->  run when what they need is here: never for MNIST (the
                                     suite never needs it), with torch when torch is installed,
                                     never for a command that takes minutes
    <!-- readme-fragment: why -->    a piece of a longer recipe; the reason names what runs it

``pip install`` steps are not run (CI installs the package; the suite runs on the install).
"""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"<!-- (readme-example|demo-command|test-command|readme-command|"
                    r"readme-fragment)(:?[^>]*?)\s*-->")
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)


def blocks():
    r"""``[(kind, note, code, line)]`` for every fenced block, ``kind`` None when unmarked."""
    text = README.read_text(encoding="utf-8")
    out = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.fullmatch(before.strip())
        kind, note = (marker.group(1), marker.group(2).lstrip(":").strip()) if marker else (None, "")
        out.append((kind, note, match.group(1), text.count("\n", 0, match.start()) + 1))
    return out


def of_kind(kind):
    return [(note, code, line) for k, note, code, line in blocks() if k == kind]


def commands(code):
    r"""The commands of a block: continuation lines joined, comments and pip installs dropped."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip()
        for part in (p.strip() for p in line.split("&&")):
            if part and not part.startswith("pip install"):
                out.append(shlex.split(part))
    return out


def run(argv, cwd):
    r"""Run one README command in ``cwd`` with this checkout on the path; repo-relative script
    paths (demos/..., benchmarks/...) point into the checkout."""
    argv = [sys.executable if a == "python" else
            str(ROOT / a) if a.startswith(("demos/", "benchmarks/")) else a for a in argv]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{done.stderr}"
    return done


def test_every_code_block_is_marked():
    unmarked = [line for kind, _, _, line in blocks() if kind is None]
    assert not unmarked, f"README.md code blocks without a marker at lines {unmarked}"
    assert len(blocks()) >= 8  # the parser finds the blocks (a broken regex would pass)


def test_no_command_hides_in_an_indented_block():
    text = README.read_text(encoding="utf-8")
    hidden = re.findall(r"^ {4}(?:python|pip) .*$", text, re.M)
    assert not hidden, f"indented commands the tests cannot see (fence and mark them): {hidden}"


@pytest.mark.slow
def test_readme_examples_run_in_order(capsys):
    examples = [e for e in of_kind("readme-example") if "fresh interpreter" not in e[0]]
    assert len(examples) >= 2
    namespace = {}
    for _, code, line in examples:
        exec(compile("\n" * (line) + code, str(README), "exec"), namespace)
    assert "-ELBO" in capsys.readouterr().out
    assert "errors" in namespace and not namespace["failures"](namespace["errors"])


def test_the_thread_example_gives_numpy_one_thread(tmp_path):
    r"""The library user's recipe, in a new interpreter with no thread variable set: OpenBLAS
    starts no worker thread (Linux: counted in /proc)."""
    (_, code, _), = [e for e in of_kind("readme-example") if "fresh interpreter" in e[0]]
    if not Path("/proc/self/status").exists():
        pytest.skip("counts threads through /proc (Linux)")
    check = ("\nnp.ones((300, 300)) @ np.ones((300, 300))\n"
             "print(next(l.split()[1] for l in open('/proc/self/status') "
             "if l.startswith('Threads')))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code + check], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_the_demo_command_runs_with_quick_and_again(tmp_path):
    (_, code, _), = of_kind("demo-command")
    (demo,) = commands(code)
    assert demo[:2] == ["python", "demos/train_mnist.py"], demo
    run(demo + ["--quick"], tmp_path)
    first = (tmp_path / "runs" / "train_mnist" / "checkpoint.npz").read_bytes()
    run(demo + ["--quick", "--seed", "1"], tmp_path)   # run again: a directory of its own
    assert (tmp_path / "runs" / "train_mnist" / "checkpoint.npz").read_bytes() == first
    assert (tmp_path / "runs" / "train_mnist-2" / "metrics.json").is_file()


def test_the_test_command_is_this_suite():
    (_, code, _), = of_kind("test-command")
    assert commands(code) == [["python", "-m", "pytest"]]


@pytest.mark.parametrize("note, code, line", [
    pytest.param(*block, id=f"line {block[2]}") for block in of_kind("readme-command")])
def test_readme_commands_run(note, code, line, tmp_path):
    if "MNIST" in note:
        pytest.skip(f"README line {line} needs real MNIST (--data path/to/mnist.npz); "
                    "the test suite never does")
    if "minutes" in note:
        pytest.skip(f"README line {line} {note}: run it by hand")
    if "torch" in note:
        pytest.importorskip("torch", reason=f"README line {line} needs torch")
    for argv in commands(code):
        run(argv, tmp_path)


def test_fragments_say_what_runs_them():
    fragments = of_kind("readme-fragment")
    for note, _, line in fragments:
        named = re.findall(r"tests/\w+\.py", note)
        assert named and all((ROOT / n).is_file() for n in named), (line, note)
