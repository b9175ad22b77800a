"""The evaluation demos run in --quick mode, write their files, and show what they claim."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from vae_numpy import evaluate as ev
from vae_numpy.commands import evaluate as evaluate_command
from vae_numpy.data import binarize_test_set, load_dataset
from vae_numpy.files.checkpoint import load_checkpoint

DEMOS = Path(__file__).resolve().parents[1] / "demos"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_FIGURE_BYTES = 200_000
MC_SIGMAS = 4.0  # "agrees with" for a Monte Carlo estimate
KL_ONLY_RATE = 0.05  # nats: "KL near 0" (beta = 1 on the quick run has ~1.4)

pytestmark = pytest.mark.figures  # every demo here writes figures


def load_demo(name):
    spec = importlib.util.spec_from_file_location(name, DEMOS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines things only: nothing runs at import
    return module


def assert_png(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE and 2000 < len(data) < MAX_FIGURE_BYTES, path


def test_elbo_gap(tmp_path, capsys):
    s = load_demo("elbo_gap").main(["--quick", "--out-dir", str(tmp_path)])
    assert_png(tmp_path / "elbo_gap.png")
    assert json.loads((tmp_path / "elbo_gap.json").read_text())["ks"] == s["ks"]
    assert "KL(q(z|x) || p(z|x))" in capsys.readouterr().out
    # the gap log p(x) - ELBO is the closed-form KL, in closed form and by Monte Carlo
    assert s["elbo_exact_gap"] == pytest.approx(s["kl"], rel=1e-10)
    assert abs(s["gap_minus_kl"]) < MC_SIGMAS * s["gap_minus_kl_se"]
    # IW_K closes the gap as K grows, and stays below log p(x)
    assert s["iw_gap"] == sorted(s["iw_gap"], reverse=True)
    assert s["iw_gap"][-1] < 0.5 * s["elbo_gap"]


def test_kl_monte_carlo(tmp_path):
    r = load_demo("kl_monte_carlo").main(["--quick", "--out-dir", str(tmp_path)])
    assert_png(tmp_path / "kl_monte_carlo.png")
    (mean, se), (bug_mean, bug_se) = r["correct"], r["variance_as_std"]
    assert abs(mean[-1] - r["exact"]) < MC_SIGMAS * se[-1]
    assert abs(bug_mean[-1] - r["exact"]) > 10 * bug_se[-1]  # the bug is visible


def test_reparam_vs_score(tmp_path):
    r = load_demo("reparam_vs_score").main(["--quick", "--out-dir", str(tmp_path)])
    assert_png(tmp_path / "reparam_vs_score.png")
    for label in ("mu", "logvar"):
        path, score = np.array(r["pathwise"]["var_" + label]), np.array(r["score"]["var_" + label])
        assert np.all(score > 10 * path), f"d/d{label}: score {score}, pathwise {path}"
        for name in ("pathwise", "score"):
            mean = np.array(r[name]["mean_" + label])
            se = np.array(r[name]["se_" + label])
            exact = np.array(r["exact_" + label])
            assert np.all(np.abs(mean - exact) < MC_SIGMAS * se), f"{name} d/d{label}"


@pytest.fixture(scope="module")
def beta_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("beta")
    demo = load_demo("beta_tradeoff")
    demo.titles = {}
    for name in ("plot_rate_distortion", "plot_setting_rows"):  # record the figures' titles
        def recording(*args, _plot=getattr(demo, name), _name=name, **kwargs):
            demo.titles[_name] = kwargs.get("title")
            return _plot(*args, **kwargs)
        setattr(demo, name, recording)
    return demo, {r["label"]: r for r in demo.main(["--quick", "--out-dir", str(out)])}, out


def test_beta_tradeoff_quick_figures_say_they_are_a_smoke_run(beta_run):
    demo, _, _ = beta_run
    assert set(demo.titles) == {"plot_rate_distortion", "plot_setting_rows"}
    for title in demo.titles.values():
        assert title.startswith("smoke run (--quick: 3 epochs on 1500 images)"), title


def test_beta_tradeoff_follows_the_theory(beta_run):
    demo, rows, out = beta_run
    assert_png(out / "rate_distortion.png")
    assert_png(out / "settings.png")
    kl = [rows[f"beta={b:g}"]["kl"] for b in demo.BETAS]
    rec = [rows[f"beta={b:g}"]["rec"] for b in demo.BETAS]
    assert kl == sorted(kl, reverse=True), f"KL should fall as beta grows: {kl}"
    assert rec[0] < rec[-1], f"beta = 0 should reconstruct better than beta = 8: {rec}"
    assert kl[0] > 5 * rows["beta=1"]["kl"], "beta = 0 leaves the KL unchecked"
    assert rows["beta=0"]["active_units"] == demo.QUICK["LATENT_DIM"]


def test_kl_only_collapses(beta_run):
    _, rows, _ = beta_run
    assert rows["KL only"]["kl"] < KL_ONLY_RATE
    assert rows["KL only"]["active_units"] == 0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint of the main demo's --quick run (synthetic digits)."""
    out = tmp_path_factory.mktemp("train")
    load_demo("train_mnist").main(["--quick", "--out-dir", str(out)])
    return out / "checkpoint.npz"


def test_evaluate_demo(checkpoint, tmp_path, capsys):
    demo = load_demo("evaluate")
    r = demo.main([str(checkpoint), "--quick", "--out-dir", str(tmp_path)])
    assert_png(tmp_path / "kl_per_dimension.png")
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    for key in ("iw_nll", "neg_elbo", "rec", "kl", "active_units", "mutual_information", "k",
                "n", "seconds"):
        assert saved[key] == r[key]
    assert (r["k"], r["n"]) == (demo.QUICK["k"], demo.QUICK["n"])
    assert r["neg_elbo"] == pytest.approx(r["rec"] + r["kl"], rel=1e-12)
    assert r["iw_nll"] < r["neg_elbo"]  # IW_20 is a tighter bound than the ELBO
    assert 0 <= r["active_units"] <= len(r["kl_per_dimension"])
    assert r["mutual_information"] <= math.log(r["n"]) + 1e-9
    assert "-log p(x) ~ -IW_20" in capsys.readouterr().out


def test_evaluate_demo_binarizes_like_training(checkpoint):
    """The first N test images, binarized with the fixed seed, as train_mnist's test set."""
    ckpt = load_checkpoint(checkpoint)
    x, source, binarize = evaluate_command.test_images(ckpt, None, 50)
    args = ckpt.extra["args"]
    data = load_dataset("synthetic", dtype=np.float32, n_train=args["n_train"],
                        n_test=args["n_test"], seed=args["seed"])
    assert (source, binarize) == ("synthetic", "dynamic")
    np.testing.assert_array_equal(x, binarize_test_set(data.x_test)[:50])


def test_evaluate_demo_prints_what_bits_per_dim_means(checkpoint, tmp_path, capsys):
    r = load_demo("evaluate").main([str(checkpoint), "--quick", "--bits-per-dim",
                                    "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert r["bits_per_dim_note"].startswith("bits per binary pixel")  # a Bernoulli model
    assert f"({r['bits_per_dim_note']})" in out and f"{r['iw_bits_per_dim']:.4f}" in out
    assert "density" in ev.bits_per_dim_note("gaussian") and "negative" in \
        ev.bits_per_dim_note("continuous_bernoulli")


def test_evaluate_header_says_how_the_test_images_are_binarized(checkpoint, tmp_path, capsys):
    r"""The model trained on dynamically binarized images; the evaluation binarizes the test
    images once with a fixed seed, and its header and evaluation.json say that."""
    r = load_demo("evaluate").main([str(checkpoint), "--quick", "--out-dir", str(tmp_path)])
    header = [line for line in capsys.readouterr().err.splitlines() if line.startswith("data ")]
    assert len(header) == 1 and "binarized once with a fixed seed" in header[0], header
    assert "test images, binarize=dynamic" not in header[0]
    assert r["test_images"].startswith("binarized once") and r["train_binarize"] == "dynamic"
