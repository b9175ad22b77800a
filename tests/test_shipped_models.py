"""The reproduced Burda et al. (2016) models shipped under docs/results/burda2016.

They load with the public ``load_checkpoint``, are what the docs say they are (architecture,
float32, 425,284 parameters, the training budget), and the numbers the README and
docs/reproduction.md print are the ones in each row's metrics.json. No MNIST needed.
"""
import json
import os

import numpy as np
import pytest

from vae_numpy import load_checkpoint
from vae_numpy.model import decode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "docs", "results", "burda2016")
# row directory: (objective, k, gradient estimator, budget)
ROWS = {"vae": ("vae", 1, None, {"amount": 3600.0, "unit": "seconds"}),
        "iwae_k5": ("iwae", 5, "iwae", {"amount": 7200.0, "unit": "seconds"}),
        # the IWAE row's step count, so that the machine's load does not decide the comparison
        "iwae_k5_dreg": ("iwae", 5, "dreg", {"amount": 423663.0, "unit": "steps"})}
# 784-200-200-50 tanh: encoder 784*200+200 + 200*200+200 + 2*(200*50+50),
# decoder 50*200+200 + 200*200+200 + 200*784+784
N_PARAMS = 157000 + 40200 + 20100 + 10200 + 40200 + 157584


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


@pytest.fixture(scope="module", params=sorted(ROWS))
def row(request):
    name = request.param
    ckpt = load_checkpoint(os.path.join(RESULTS, name, "checkpoint.npz"))
    with open(os.path.join(RESULTS, name, "metrics.json")) as f:
        metrics = json.load(f)
    return name, ckpt, metrics


def test_the_checkpoint_is_the_papers_architecture_in_float32(row):
    _, ckpt, _ = row
    cfg = ckpt.config
    assert (cfg.input_dim, cfg.latent_dim) == (784, 50)
    assert cfg.encoder_hidden == (200, 200) and cfg.decoder_hidden == (200, 200)
    assert (cfg.activation, cfg.likelihood) == ("tanh", "bernoulli")
    assert sum(p.size for p in ckpt.params.values()) == N_PARAMS
    assert {p.dtype for p in ckpt.params.values()} == {np.dtype(np.float32)}
    assert all(np.all(np.isfinite(p)) for p in ckpt.params.values())


def test_the_run_kept_to_its_budget_and_objective(row):
    name, ckpt, metrics = row
    objective, k, estimator, budget = ROWS[name]
    last = ckpt.history[-1]
    assert metrics["budget"] == budget
    if budget["unit"] == "seconds":
        # the budget is checked before every step, so the clock ends at most one step past it
        assert budget["amount"] <= last["clock_seconds"] < budget["amount"] + 1.0
    else:
        assert last["steps"] == budget["amount"]
    assert last.get("objective", "vae") == objective and last.get("k", 1) == k
    assert metrics.get("estimator", "iwae" if objective == "iwae" else None) == estimator
    assert ckpt.extra.get("estimator") == metrics.get("estimator")
    assert len(ckpt.history) == len(metrics["history"])


def test_the_dreg_row_took_as_many_steps_as_the_iwae_row():
    steps = {}
    for name in ("iwae_k5", "iwae_k5_dreg"):
        with open(os.path.join(RESULTS, name, "metrics.json")) as f:
            steps[name] = json.load(f)["history"][-1]["steps"]
    assert steps["iwae_k5_dreg"] == steps["iwae_k5"] == ROWS["iwae_k5_dreg"][3]["amount"]


def test_the_docs_print_the_measured_numbers(row):
    name, ckpt, metrics = row
    ev = metrics["evaluation"]
    assert (ev["k"], ev["n_test"], ev["test_binarize_seed"]) == (5000, 10000, 0)
    shown = f"**{ev['iw_nll']:.2f}** +- {ev['iw_nll_se']:.2f} ({ev['active_units']})"
    assert shown in read("README.md"), f"README's table lacks {name}'s {shown}"
    assert shown in read("docs", "reproduction.md")
    assert f"{len(ckpt.history)} epochs" in read("README.md")


def test_the_decoder_gives_pixel_probabilities():
    """A smoke test of using a shipped model without training: decode prior samples."""
    ckpt = load_checkpoint(os.path.join(RESULTS, "iwae_k5", "checkpoint.npz"))
    z = np.random.default_rng(0).standard_normal((8, 50)).astype(np.float32)
    probs = decode(ckpt.params, z, ckpt.config)
    assert probs.shape == (8, 784) and probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1))
    assert 0.05 < probs.mean() < 0.3   # MNIST's mean pixel is about 0.13
