"""The three-seed check of the IWAE gradient against DReG's (docs/reproduction.md, "Estimator
or seed").

The shipped files under docs/results/estimator_seeds are what the page says they are (the
estimator, the seed, 59,600 steps, -IW_1000 on all 10,000 test images), each paired comparison
compared those runs on the same images with the same importance samples (the evaluate command
reproduces each run's own -IW_1000 exactly), and the page prints their numbers. No MNIST needed.
"""
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "docs", "results", "estimator_seeds")
SEEDS = (0, 1, 2)
RUNS = [f"{estimator}_s{seed}" for estimator in ("iwae", "dreg") for seed in SEEDS]
# (this, other): the estimators on each seed, and each estimator's seeds 1 and 2 against 0
PAIRS = ([(f"dreg_s{s}", f"iwae_s{s}") for s in SEEDS]
         + [(f"{e}_s{s}", f"{e}_s0") for e in ("iwae", "dreg") for s in (1, 2)])
STEPS = 59600        # 100 epochs of 596 minibatches
SAME = 1e-9          # the same sum in another order


def load(*parts):
    with open(os.path.join(RESULTS, *parts)) as f:
        return json.load(f)


def metrics(run):
    return load(run, "metrics.json")


def comparison(this, other):
    return load("pairs", f"{this}-vs-{other}.json")


@pytest.mark.parametrize("run", RUNS)
def test_each_run_is_what_the_page_says(run):
    estimator, seed = run.split("_s")
    m = metrics(run)
    assert (m["estimator"], m["args"]["seed"], m["row"]) == (estimator, int(seed), "iwae5")
    assert m["budget"] == {"amount": STEPS, "unit": "steps"}
    assert m["history"][-1]["steps"] == STEPS and len(m["history"]) == 100
    ev = m["evaluation"]
    assert (ev["k"], ev["n_test"], ev["eval_seed"], ev["test_binarize_seed"]) == (1000, 10000, 0, 0)


@pytest.mark.parametrize("this, other", PAIRS)
def test_each_pair_compared_the_shipped_runs_on_the_same_samples(this, other):
    c = comparison(this, other)
    assert (c["k"], c["n"], c["seed"]) == (1000, 10000, 0) and c["against"]["same_noise"]
    assert c["iw_nll"] == pytest.approx(metrics(this)["evaluation"]["iw_nll"], abs=SAME)
    assert c["against"]["iw_nll"] == pytest.approx(metrics(other)["evaluation"]["iw_nll"],
                                                   abs=SAME)
    assert c["against"]["difference"] == pytest.approx(c["iw_nll"] - c["against"]["iw_nll"],
                                                       abs=SAME)


def test_the_page_prints_the_shipped_numbers():
    with open(os.path.join(ROOT, "docs", "reproduction.md")) as f:
        page = f.read()
    for run in RUNS:
        ev = metrics(run)["evaluation"]
        shown = f"{ev['iw_nll']:.2f} +- {ev['iw_nll_se']:.2f} ({ev['active_units']})"
        assert shown in page, f"docs/reproduction.md lacks {run}'s {shown}"
    for this, other in PAIRS:
        a = comparison(this, other)["against"]
        shown = f"{a['difference']:+.2f} +- {a['difference_se']:.2f}"
        assert shown in page, f"docs/reproduction.md lacks {this} - {other}: {shown}"
