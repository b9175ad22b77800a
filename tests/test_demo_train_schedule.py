"""The main demo's IWAE objective, learning-rate schedule, Adam eps and time budget flags."""
import importlib.util
from pathlib import Path

import pytest

from vae_numpy.files.checkpoint import load_checkpoint
from vae_numpy.schedule import burda_lr

DEMO = Path(__file__).resolve().parents[1] / "demos" / "train_mnist.py"
# 3,000 synthetic images of batch 128 (QUICK): 24 steps per epoch.
SMALL = ["--quick", "--n-train", "1024", "--n-test", "64", "--batch-size", "128"]


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("train_mnist_schedule", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.figures
def test_iwae_with_the_burda_stages_over_the_epochs(demo, tmp_path):
    metrics = demo.main(SMALL + ["--objective", "iwae", "--k", "3", "--schedule", "burda",
                                 "--epochs", "4", "--adam-eps", "1e-4",
                                 "--out-dir", str(tmp_path)])
    history = metrics["history"]
    assert [(r["objective"], r["k"]) for r in history] == [("iwae", 3)] * 4
    # 4 epochs of 8 steps; weights 3**i over 32 steps: the last step of each epoch is in
    # stages 6, 7, 7, 7 (stage 6 ends at 1093/3280 of the run, step 10.7).
    assert [r["stage"] for r in history] == [6, 7, 7, 7]
    assert history[-1]["lr"] == pytest.approx(burda_lr(7))
    assert load_checkpoint(tmp_path / "checkpoint.npz").optimizer.eps == 1e-4


@pytest.mark.figures
def test_a_resumed_scheduled_run_keeps_its_stages(demo, tmp_path):
    demo.main(SMALL + ["--schedule", "burda", "--epochs", "2", "--out-dir", str(tmp_path)])
    metrics = demo.main(["--resume", "--epochs", "2", "--out-dir", str(tmp_path)])
    assert metrics["args"]["schedule_epochs"] == 2    # the budget of the first invocation
    assert [r["epoch"] for r in metrics["history"]] == [1, 2]   # spent: nothing more to train


def test_lr_is_refused_under_a_schedule(demo, tmp_path):
    with pytest.raises(SystemExit, match="schedule owns the learning rate"):
        demo.main(SMALL + ["--schedule", "burda", "--lr", "0.01", "--out-dir", str(tmp_path)])


@pytest.mark.figures
def test_a_time_budget_ends_the_run(demo, tmp_path):
    metrics = demo.main(SMALL + ["--budget-minutes", "1e-12", "--epochs", "3",
                                 "--out-dir", str(tmp_path)])
    assert metrics["history"] == []
