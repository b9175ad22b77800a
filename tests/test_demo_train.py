"""The main demo runs end to end in --quick mode and writes every file it promises."""
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from vae_numpy.files.checkpoint import load_checkpoint
from vae_numpy.data import synthetic_digits

DEMO = Path(__file__).resolve().parents[1] / "demos" / "train_mnist.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ["reconstructions.png", "samples.png", "loss_curves.png", "latent.png"]


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("train_mnist", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines things only: nothing runs at import
    return module


def assert_png(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 2000, path


@pytest.mark.figures
def test_quick_run_writes_every_file(demo, tmp_path, capsys):
    out = tmp_path / "run"
    demo.main(["--quick", "--latent", "2", "--out-dir", str(out)])
    expected = ["metrics.json", "checkpoint.npz"] + FIGURES + ["manifold.png"]
    assert sorted(os.listdir(out)) == sorted(expected)   # and no temporary files
    for name in FIGURES + ["manifold.png"]:
        assert_png(out / name)
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["history"]
    assert len(history) == demo.QUICK["epochs"]
    for r in history:
        np.testing.assert_allclose(r["train_neg_elbo"], r["train_rec"] + r["train_kl"],
                                   rtol=1e-12)
        assert r["test_neg_elbo"] == r["test_rec"] + r["test_kl"]
        assert r["seconds"] > 0
    assert history[-1]["test_neg_elbo"] < history[0]["test_neg_elbo"]
    assert metrics["config"]["latent_dim"] == 2 and metrics["config"]["dtype"] == "float32"
    assert metrics["args"]["binarize"] == "dynamic"   # the bernoulli default
    assert sorted(metrics["files"]) == sorted(expected)
    ckpt = load_checkpoint(out / "checkpoint.npz")
    assert ckpt.history == history and ckpt.config.to_dict() == metrics["config"]
    stdout = capsys.readouterr().out
    assert "final: epoch 5" in stdout and str(out) in stdout


@pytest.mark.figures
def test_resume_continues_the_run(demo, tmp_path, capsys):
    out = str(tmp_path)
    demo.main(["--quick", "--epochs", "2", "--out-dir", out])
    demo.main(["--epochs", "1", "--resume", "--out-dir", out])   # no --quick: all from the ckpt
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == [1, 2, 3]
    assert metrics["n_train"] == demo.QUICK["n_train"]
    assert metrics["config"]["encoder_hidden"] == [128]
    assert metrics["args"]["hidden"] == demo.QUICK["hidden"]    # the record matches the model
    assert "manifold.png" not in os.listdir(tmp_path)            # J = 20: no manifold


@pytest.mark.figures
def test_gaussian_likelihood_on_an_npz_file(demo, tmp_path):
    images, labels = synthetic_digits(300, seed=1)
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=(255 * images[:250]).astype(np.uint8), y_train=labels[:250],
             x_test=(255 * images[250:]).astype(np.uint8), y_test=labels[250:])
    out = tmp_path / "run"
    metrics = demo.main(["--quick", "--data", str(path), "--likelihood", "gaussian",
                         "--hidden", "32,16", "--dtype", "float64", "--out-dir", str(out)])
    assert metrics["args"]["binarize"] == "none"
    assert metrics["n_train"] == 250 and metrics["n_test"] == 50
    assert metrics["config"]["encoder_hidden"] == [32, 16]
    assert metrics["config"]["decoder_hidden"] == [16, 32]
    for name in FIGURES:
        assert_png(out / name)


def test_bad_hidden_flag(demo, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        demo.main(["--quick", "--hidden", "400x", "--out-dir", str(tmp_path)])
    assert stop.value.code == 2   # a usage error, before any work
    assert "argument --hidden: must be comma-separated" in capsys.readouterr().err


@pytest.mark.figures
@pytest.mark.parametrize("flags, field, value", [
    (["--likelihood", "gaussian", "--sigma", "0.3"], "sigma", 0.3),
    (["--likelihood", "gaussian_learned", "--decoder-logvar-min", "-4"], "decoder_logvar_min", -4.0),
])
def test_sigma_and_logvar_floor_flags_reach_the_config(demo, tmp_path, flags, field, value):
    metrics = demo.main(["--quick", "--epochs", "1", "--n-train", "200", "--n-test", "50",
                         "--out-dir", str(tmp_path)] + flags)
    assert metrics["config"][field] == value
    assert load_checkpoint(tmp_path / "checkpoint.npz").config.to_dict()[field] == value


@pytest.mark.figures
def test_estimator_and_step_flags_are_recorded_and_a_resume_keeps_the_estimator(demo, tmp_path):
    out = str(tmp_path)
    small = ["--quick", "--epochs", "1", "--n-train", "200", "--n-test", "50", "--hidden", "16"]
    metrics = demo.main(small + ["--objective", "iwae", "--k", "3", "--estimator", "iwae",
                                 "--step", "readable", "--out-dir", out])
    assert metrics["args"]["estimator"] == "iwae" and metrics["history"][-1]["estimator"] == "iwae"
    assert load_checkpoint(tmp_path / "checkpoint.npz").history[-1]["estimator"] == "iwae"
    with pytest.raises(SystemExit, match=r"--estimator stl \(the checkpoint has iwae\)"):
        demo.main(["--epochs", "1", "--resume", "--estimator", "stl", "--out-dir", out])
    # --step is not part of the run: a resumed run may take the other one
    resumed = demo.main(["--epochs", "1", "--resume", "--step", "default", "--out-dir", out])
    assert [r["estimator"] for r in resumed["history"]] == ["iwae", "iwae"]


def test_an_estimator_needs_the_iwae_objective(demo, tmp_path):
    with pytest.raises(SystemExit, match="--estimator stl applies to --objective iwae only"):
        demo.main(["--quick", "--estimator", "stl", "--out-dir", str(tmp_path)])
    assert not (tmp_path / "checkpoint.npz").exists()
