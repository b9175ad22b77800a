"""The demos' command line when things go wrong: one line saying what and what to do, a
non-zero exit, no traceback; --resume applies or refuses the flags given with it; a diverged
run never overwrites the last good checkpoint."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vae_numpy.commands import evaluate as evaluate_command
from vae_numpy.commands import train as train_command
from vae_numpy.data import synthetic_digits
from vae_numpy.files.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# Small and fast: a few hundred synthetic digits, one small hidden layer.
SMALL = ["--quick", "--n-train", "200", "--n-test", "50", "--hidden", "16", "--latent", "2"]


@pytest.fixture(scope="module")
def train_demo():
    return train_command   # what demos/train_mnist.py and `vae-numpy train` run


@pytest.fixture(scope="module")
def eval_demo():
    return evaluate_command   # what demos/evaluate.py and `vae-numpy evaluate` run


@pytest.fixture(scope="module")
def one_epoch(train_demo, tmp_path_factory):
    """A run of one epoch, trained once; tests resume copies of it."""
    out = tmp_path_factory.mktemp("one_epoch")
    train_demo.main(SMALL + ["--epochs", "1", "--out-dir", str(out)])
    return out


@pytest.fixture
def run_dir(one_epoch, tmp_path):
    """A fresh copy of the one-epoch run: its checkpoint.npz and metrics.json."""
    out = tmp_path / "run"
    shutil.copytree(one_epoch, out)
    return out


@pytest.mark.parametrize("command", [[str(ROOT / "demos" / "train_mnist.py")],
                                     ["-m", "vae_numpy", "train"]])
def test_the_command_line_prints_one_line_and_exits_1(tmp_path, command):
    missing = tmp_path / "mnist.npz"
    result = subprocess.run(
        [sys.executable, *command, "--data", str(missing), "--out-dir", str(tmp_path / "run")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("vae-numpy train: error: ")
    assert str(missing) in lines[-1] and "no such file" in lines[-1]
    assert "tf-keras-datasets/mnist.npz" in lines[-1] and "as --data" in lines[-1]  # where to get it


def test_a_corrupt_data_file_is_one_line_naming_it(train_demo, tmp_path):
    bad = tmp_path / "digits.npz"
    bad.write_bytes(b"PK\x03\x04 this is not what it claims")
    with pytest.raises(SystemExit, match=r"^vae-numpy train: error: .*digits.npz: not a readable "
                                         r"\.npz \(zip\) file"):
        train_demo.main(SMALL + ["--data", str(bad), "--out-dir", str(tmp_path / "run")])


def test_unscaled_pixels_in_a_data_file_are_one_line_with_the_fix(train_demo, tmp_path):
    images, labels = synthetic_digits(60, seed=1)
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=255.0 * images[:50], y_train=labels[:50], x_test=255.0 * images[50:],
             y_test=labels[50:])
    with pytest.raises(SystemExit, match=r"x_train has float values in \[0, 255\], outside "
                                         r"\[0, 1\]; divide 0..255 pixels by 255"):
        train_demo.main(SMALL + ["--data", str(path), "--out-dir", str(tmp_path / "run")])


def test_a_contradicting_flag_is_one_line(train_demo, tmp_path):
    with pytest.raises(SystemExit, match="^vae-numpy train: error: --momentum applies to "
                                         "--optimizer sgd only"):
        train_demo.main(SMALL + ["--momentum", "0.5", "--out-dir", str(tmp_path)])


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got '0'"),
    (["--free-bits", "-1"], "argument --free-bits: must be a finite number >= 0, got '-1'"),
    (["--beta", "inf"], "argument --beta: must be a finite number >= 0, got 'inf'"),
    (["--lr", "-1"], "argument --lr: must be a finite number > 0, got '-1'"),
])
def test_a_bad_flag_value_is_a_one_line_usage_error(train_demo, tmp_path, capsys, flags,
                                                     message):
    with pytest.raises(SystemExit) as stop:
        train_demo.main(SMALL + flags + ["--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"vae-numpy train: error: {message}")


@pytest.mark.figures  # the run writes its figures
def test_a_diverging_run_says_which_checkpoint_is_the_last_good_one(train_demo, run_dir):
    out = str(run_dir)
    good = (run_dir / "checkpoint.npz").read_bytes()
    with pytest.raises(SystemExit, match=r"^vae-numpy train: error: training diverged: .*the "
                                         r"last good checkpoint is .*checkpoint.npz \(after "
                                         r"epoch 1\); continue from it with --resume"):
        train_demo.main(["--resume", "--epochs", "2", "--lr", "1e6", "--out-dir", out])
    assert (run_dir / "checkpoint.npz").read_bytes() == good


def test_a_diverged_model_is_never_saved_over_the_good_one(train_demo, tmp_path, monkeypatch):
    """The per-epoch save refuses params that went NaN during an epoch whose losses were all
    finite (the step after the last loss): the run stops and names the last good file."""
    real_train = train_demo.train

    def train_then_break(params, cfg, x, **kw):
        callback = kw["callback"]

        def break_in_epoch_2(state):
            if len(state.history) == 2:
                state.params["dec.out.b"][0] = np.nan
            callback(state)
        return real_train(params, cfg, x, **{**kw, "callback": break_in_epoch_2})

    monkeypatch.setattr(train_demo, "train", train_then_break)
    with pytest.raises(SystemExit, match=r"training diverged: params\['dec.out.b'\] has 1 NaN "
                                         r".*last good checkpoint is .* \(after epoch 1\)"):
        train_demo.main(SMALL + ["--epochs", "3", "--out-dir", str(tmp_path)])
    assert len(load_checkpoint(tmp_path / "checkpoint.npz").history) == 1


@pytest.mark.figures  # the run writes its figures
def test_resume_applies_the_flags_that_may_change_and_records_them(train_demo, run_dir,
                                                                    capsys):
    out, tmp_path = str(run_dir), run_dir
    train_demo.main(["--resume", "--epochs", "1", "--lr", "5e-4", "--clip-norm", "50",
                     "--out-dir", out])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert sorted(metrics["resume_changes"], key=lambda c: c["flag"]) == [
        {"flag": "clip_norm", "from": None, "to": 50.0, "after_epoch": 1},
        {"flag": "lr", "from": 1e-3, "to": 5e-4, "after_epoch": 1}]
    assert metrics["optimizer"]["lr"] == 5e-4 and metrics["args"]["lr"] == 5e-4
    assert "grad_norm_mean" in metrics["history"][1] and "grad_norm_mean" not in \
        metrics["history"][0]
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.optimizer.lr == 5e-4 and ckpt.extra["resume_changes"] == metrics["resume_changes"]
    assert "resume: --lr 0.0005 replaces 0.001 from epoch 2 on" in capsys.readouterr().err


@pytest.mark.figures  # the run writes its figures
@pytest.mark.parametrize("flags, message", [
    (["--latent", "5"], r"--latent 5 \(the checkpoint has 2\)"),
    (["--seed", "3"], r"--seed 3 \(the checkpoint has 0\)"),
    (["--likelihood", "gaussian"], r"--likelihood gaussian \(the checkpoint has bernoulli\)"),
])
def test_resume_refuses_flags_that_would_change_the_model_or_data(train_demo, run_dir, flags,
                                                                  message):
    out = str(run_dir)
    with pytest.raises(SystemExit, match=r"--resume continues the run .* these flags would "
                                         rf"change them: {message}\. Drop them"):
        train_demo.main(["--resume", "--epochs", "1", "--out-dir", out] + flags)


@pytest.mark.figures  # the run writes its figures
def test_resume_with_a_flag_equal_to_the_checkpoint_is_fine(train_demo, run_dir):
    out = str(run_dir)
    metrics = train_demo.main(["--resume", "--epochs", "1", "--latent", "2", "--out-dir", out])
    assert metrics["resume_changes"] == [] and len(metrics["history"]) == 2


def test_resume_without_a_checkpoint_is_one_line(train_demo, tmp_path):
    with pytest.raises(SystemExit, match=r"^vae-numpy train: error: no checkpoint at .*"
                                         r"checkpoint.npz"):
        train_demo.main(["--resume", "--out-dir", str(tmp_path)])


def test_evaluate_with_a_missing_or_corrupt_checkpoint_is_one_line(eval_demo, tmp_path):
    with pytest.raises(SystemExit, match=r"^vae-numpy evaluate: error: no checkpoint at "):
        eval_demo.main([str(tmp_path / "none.npz"), "--out-dir", str(tmp_path)])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(SystemExit, match=r"^vae-numpy evaluate: error: .*bad.npz: is not a "
                                         r"vae_numpy checkpoint"):
        eval_demo.main([str(bad), "--out-dir", str(tmp_path)])


@pytest.mark.figures  # the run writes its figures
def test_evaluate_with_k_0_is_a_usage_error_before_any_work(eval_demo, run_dir, capsys):
    with pytest.raises(SystemExit) as stop:
        eval_demo.main([str(run_dir / "checkpoint.npz"), "--k", "0", "--n", "10",
                        "--out-dir", str(run_dir / "eval")])
    assert stop.value.code == 2 and not (run_dir / "eval").exists()
    assert capsys.readouterr().err.startswith("vae-numpy evaluate: error: argument --k: must "
                                              "be an integer >= 1, got '0'")


@pytest.mark.figures  # the run writes its figures
def test_resume_refuses_lr_when_the_run_has_a_schedule(train_demo, tmp_path):
    out = str(tmp_path)
    train_demo.main(SMALL + ["--epochs", "1", "--schedule", "burda", "--out-dir", out])
    with pytest.raises(SystemExit, match=r"--lr 0.01 is refused with --schedule burda: the "
                                         r"schedule owns the learning rate"):
        train_demo.main(["--resume", "--epochs", "1", "--lr", "0.01", "--out-dir", out])


@pytest.mark.figures  # both commands write figures
def test_python_m_vae_numpy_runs_train_and_evaluate_with_their_flags(tmp_path, capsys):
    from vae_numpy.__main__ import main
    out, ev = tmp_path / "run", tmp_path / "eval"
    assert main(["train"] + SMALL + ["--epochs", "1", "--out-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["command"][:2] == ["vae-numpy", "train"]
    assert len(metrics["history"]) == 1 and metrics["args"]["hidden"] == "16"
    assert main(["evaluate", str(out / "checkpoint.npz"), "--quick", "--n", "20",
                 "--out-dir", str(ev)]) == 0
    assert json.loads((ev / "evaluation.json").read_text())["n"] == 20
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert "train" in listing and "evaluate" in listing
    with pytest.raises(SystemExit, match=r"^vae-numpy train: error: no checkpoint at "):
        main(["train", "--resume", "--out-dir", str(tmp_path / "empty")])
