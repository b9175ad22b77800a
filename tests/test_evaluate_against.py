r"""``vae-numpy evaluate A --against B``: two models scored on the same images with the same
noise, and the per-image difference of -IW_K with its paired standard error.

What each test proves:
- a model against itself differs by exactly 0 on every image: the two evaluations share the
  images and every importance sample (a fresh noise stream for the second would not give 0);
- against another model, the difference equals the one computed directly from
  ``iw_log_likelihood`` per model, and it is the difference of the two means;
- the paired standard error is what makes the comparison useful: on two models of the same
  data it is far below the unpaired one (the hard images are hard for both);
- a model of other data, or a missing file, is refused in one line before any work.
"""
import json
import math

import numpy as np
import pytest

from vae_numpy import VAEConfig, init_params
from vae_numpy.commands import evaluate as evaluate_command
from vae_numpy.commands import train as train_command
from vae_numpy.evaluate import iw_log_likelihood, mean_and_stderr
from vae_numpy.files.checkpoint import load_checkpoint, save_checkpoint

QUICK_TRAIN = ["--quick", "--n-train", "300", "--n-test", "60", "--hidden", "16", "--latent", "4",
               "--epochs", "2"]
EVAL = ["--k", "30", "--n", "60"]
PAIRED_GAIN = 0.75   # the paired SE is at most this fraction of the unpaired one
EXACT = 1e-9   # the same numbers summed in another order: a mean of differences vs a
#                difference of means over 60 float64 values of ~100 nats


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    r"""Two small models of the same synthetic digits, trained from different seeds."""
    root = tmp_path_factory.mktemp("against")
    real = train_command.have_matplotlib
    train_command.have_matplotlib = lambda: False   # the figures are not what is tested
    try:
        for name, seed in (("a", "0"), ("b", "1")):
            train_command.main(QUICK_TRAIN + ["--seed", seed, "--out-dir", str(root / name)])
    finally:
        train_command.have_matplotlib = real
    return root / "a" / "checkpoint.npz", root / "b" / "checkpoint.npz"


def evaluate(checkpoint, against, out_dir):
    return evaluate_command.main([str(checkpoint), "--against", str(against), "--out-dir",
                                  str(out_dir)] + EVAL)


def test_a_model_against_itself_differs_by_exactly_zero(two_models, tmp_path):
    a, _ = two_models
    r = evaluate(a, a, tmp_path)
    assert r["against"]["iw_nll"] == r["iw_nll"]
    assert r["against"]["difference"] == 0.0 and r["against"]["difference_se"] == 0.0
    assert r["against"]["same_noise"] is True
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["against"] == r["against"]


def test_the_difference_equals_a_direct_computation(two_models, tmp_path, capsys):
    a, b = two_models
    r = evaluate(a, b, tmp_path)
    ckpt_a, ckpt_b = load_checkpoint(a), load_checkpoint(b)
    x, _, _ = evaluate_command.test_images(ckpt_a, None, 60)
    log_px = {name: iw_log_likelihood(c.params, x, c.config, 30, np.random.default_rng(0),
                                      progress=False)
              for name, c in (("a", ckpt_a), ("b", ckpt_b))}
    d, d_se = mean_and_stderr(log_px["b"].astype(np.float64) - log_px["a"])
    assert r["against"]["difference"] == pytest.approx(d, abs=EXACT)
    assert r["against"]["difference_se"] == pytest.approx(d_se, abs=EXACT)
    assert r["against"]["difference"] == pytest.approx(
        r["iw_nll"] - r["against"]["iw_nll"], abs=EXACT)
    assert r["against"]["iw_nll"] == pytest.approx(mean_and_stderr(-log_px["b"])[0], abs=EXACT)
    assert f"{r['against']['difference']:+.3f} +- {r['against']['difference_se']:.3f}" in \
        capsys.readouterr().out


def test_the_paired_standard_error_is_below_the_unpaired_one(two_models, tmp_path):
    r"""On these two barely trained models (2 epochs, 4 latents) the paired SE is 0.25 nats
    against 0.42 unpaired; better trained models agree more on which images are hard."""
    a, b = two_models
    r = evaluate(a, b, tmp_path)
    unpaired = math.hypot(r["iw_nll_se"], r["against"]["iw_nll_se"])
    assert r["against"]["difference_se"] < PAIRED_GAIN * unpaired, (r["against"], unpaired)


def test_a_model_of_other_data_is_refused_in_one_line(two_models, tmp_path, capsys):
    a, _ = two_models
    cfg = VAEConfig(input_dim=10, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,))
    other = tmp_path / "other.npz"
    save_checkpoint(other, init_params(cfg, np.random.default_rng(0)), cfg)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        evaluate_command.main([str(a), "--against", str(other), "--out-dir", str(out)] + EVAL)
    line = str(stop.value.code)
    assert line.startswith("vae-numpy evaluate: error: --against ") and "10 inputs" in line
    assert "\n" not in line and "Traceback" not in capsys.readouterr().err
    assert not (out / "evaluation.json").exists()


def test_a_missing_against_file_is_refused_before_any_work(two_models, tmp_path, capsys):
    a, _ = two_models
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        evaluate_command.main([str(a), "--against", str(tmp_path / "none.npz"),
                               "--out-dir", str(out)] + EVAL)
    line = str(stop.value.code)
    assert "Traceback" not in capsys.readouterr().err
    assert line.startswith("vae-numpy evaluate: error: --against: no checkpoint at "), line
    assert not out.exists()
