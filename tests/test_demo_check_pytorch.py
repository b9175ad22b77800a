r"""Smoke test of demos/check_pytorch.py: a correct PyTorch VAE passes (exit 0), each planted
bug fails (exit 1) and the report names the tensor it breaks."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch",
                    reason="demos/check_pytorch.py needs torch (pip install -e '.[torch]')")
pytestmark = pytest.mark.torch

DEMO = Path(__file__).resolve().parents[1] / "demos" / "check_pytorch.py"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("check_pytorch", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines things only: nothing runs at import
    return module


def verdict(out):
    return out.strip().splitlines()[-1]


def test_correct_model_passes(demo, capsys):
    assert demo.main(["--quick"]) == 0
    assert verdict(capsys.readouterr().out).startswith("PASS: the loss and 10 gradients agree")


def test_default_mnist_sized_run_passes(demo, capsys):
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "(784, 400)" in out and verdict(out).startswith("PASS")


def test_float32_model_passes_at_the_float32_tolerance(demo, capsys):
    assert demo.main(["--quick", "--dtype", "float32"]) == 0
    assert "(float32)" in verdict(capsys.readouterr().out)


@pytest.mark.parametrize("bug,tensor,cause", [("std", "z", "variance as the standard deviation"),
                                              ("kl_sign", "kl", "wrong sign"),
                                              ("bce_mean", "rec", "averaged over the D data")])
def test_planted_bug_fails_and_is_named(demo, capsys, bug, tensor, cause):
    assert demo.main(["--quick", "--plant-bug", bug]) == 1
    out = capsys.readouterr().out
    line = verdict(out)
    assert line.startswith("FAIL") and line.split(": ")[2].startswith(tensor)
    assert f"likely cause: {tensor}" in out and cause in out


def test_out_dir_saves_report_and_fixture(demo, capsys, tmp_path):
    from vae_numpy.crosscheck import read_fixture
    assert demo.main(["--quick", "--plant-bug", "kl_sign", "--out-dir", str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert (tmp_path / "report.txt").read_text().strip() == printed.strip()
    assert read_fixture(tmp_path / "fixture.npz")["x"].shape == (4, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixture.npz", "report.txt"]
