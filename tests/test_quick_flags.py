"""One --quick idiom in every demo and benchmark whose QUICK holds flags: --quick replaces
the defaults, and a flag the user gives explicitly wins over --quick's value."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# script -> positional arguments it needs, and the module it needs installed (or None)
SCRIPTS = {
    "demos/train_mnist.py": ([], None),
    "demos/evaluate.py": (["checkpoint.npz"], None),
    "demos/reproduce_iwae_table.py": ([], None),
    "demos/check_pytorch.py": ([], "torch"),
    "benchmarks/train_speed.py": ([], None),
    "benchmarks/bench_vs_torch.py": ([], None),
    "benchmarks/bench_iwae.py": ([], None),
    "benchmarks/readable_vs_copy.py": ([], None),
}


def load(path):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines things only: nothing runs at import
    return module


def flag(key):
    return "--" + key.replace("_", "-")


def other_value(value):
    """A value of the flag's type that is neither the default nor --quick's."""
    return (str(value + 1), value + 1) if isinstance(value, int) else ("7", "7")


@pytest.mark.parametrize("path", sorted(SCRIPTS))
def test_quick_sets_its_defaults_and_explicit_flags_win(path, monkeypatch):
    positional, needs = SCRIPTS[path]
    if needs:
        pytest.importorskip(needs, reason=f"{path} imports {needs}")
    monkeypatch.syspath_prepend(str((ROOT / path).parent))  # scripts import their neighbours
    script = load(path)
    quick = script.QUICK
    plain = vars(script.parse_args(positional))
    args = vars(script.parse_args(positional + ["--quick"]))
    for key, value in quick.items():
        assert args[key] == value, (path, key)
        assert plain[key] != value, f"{path}: QUICK[{key!r}] equals the default, so untested"
    for key, value in quick.items():
        text, parsed = other_value(value)
        given = vars(script.parse_args(positional + ["--quick", flag(key), text]))
        assert given[key] == parsed, f"{path}: --quick overrode the explicit {flag(key)}"
        assert all(given[k] == v for k, v in quick.items() if k != key)
