"""demos/reproduce_iwae_table.py on synthetic digits: it trains, survives a stop, evaluates and
publishes, with the paper's protocol in small (never the real MNIST, never a long run)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from vae_numpy.files.checkpoint import load_checkpoint

DEMO = Path(__file__).resolve().parents[1] / "demos" / "reproduce_iwae_table.py"
# A run of 30 steps of batch 100 on 500 images (5 per epoch): 6 epochs, a few seconds.
SMALL = ["--data", "synthetic", "--quick"]

pytestmark = pytest.mark.figures  # every run of the demo writes its figures


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("reproduce_iwae_table", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_quick_row_trains_evaluates_and_reports(demo, tmp_path, capsys):
    metrics = demo.main(SMALL + ["--out-dir", str(tmp_path)])
    history = metrics["history"]
    assert history[-1]["steps"] == demo.QUICK["budget_steps"]
    assert metrics["config"]["encoder_hidden"] == [200, 200] and metrics["config"]["latent_dim"] == 50
    assert metrics["config"]["activation"] == "tanh"
    ev = metrics["evaluation"]
    assert ev["k"] == demo.QUICK["eval_k"] and ev["n_test"] == demo.QUICK["n_test"]
    assert np.isfinite(ev["iw_nll"]) and 0 <= ev["active_units"] <= 50
    # Monitoring uses the held-out training images, never the test set.
    assert all(r["test_neg_elbo"] > 0 for r in history)
    assert metrics["budget"] == {"amount": demo.QUICK["budget_steps"], "unit": "steps"}
    assert "| vae (k = 1) | 86.76 (19) |" in capsys.readouterr().out
    assert (tmp_path / "reproduction.md").exists() and (tmp_path / "metrics.json").exists()


def test_quick_defaults_to_synthetic_data_as_the_main_demo_does(demo, tmp_path):
    metrics = demo.main(["--quick", "--out-dir", str(tmp_path)])
    assert metrics["args"]["data"] == "synthetic"


def test_without_data_the_error_says_how_to_get_mnist_and_where_it_goes(demo, tmp_path):
    with pytest.raises(SystemExit) as info:
        demo.main(["--out-dir", str(tmp_path)])
    message = str(info.value.code)
    assert message.startswith("reproduce_iwae_table.py: error: --data is required")
    assert "tf-keras-datasets/mnist.npz" in message and "train-images-idx3-ubyte" in message
    assert "--data data/mnist.npz" in message and "--quick" in message


@pytest.mark.parametrize("row", ["vae", "iwae5"])
def test_an_interrupted_run_resumes_to_the_same_model(demo, tmp_path, monkeypatch, row):
    whole = demo.main(SMALL + ["--row", row, "--out-dir", str(tmp_path / "whole")])
    saves = []
    real_save = demo.save_checkpoint

    def save_then_stop(*args, **kw):
        real_save(*args, **kw)
        saves.append(1)
        if len(saves) == 3:
            raise KeyboardInterrupt   # the machine stops after epoch 3's checkpoint

    monkeypatch.setattr(demo, "save_checkpoint", save_then_stop)
    out = tmp_path / "stopped"
    with pytest.raises(SystemExit) as stop:
        demo.main(SMALL + ["--row", row, "--out-dir", str(out)])
    assert stop.value.code == 130   # Ctrl-C: 128 + SIGINT, after one line saying what to do
    monkeypatch.setattr(demo, "save_checkpoint", real_save)
    assert len(load_checkpoint(out / "checkpoint.npz").history) == 3
    resumed = demo.main(["--resume", "--out-dir", str(out)])
    strip = lambda h: [{k: v for k, v in r.items() if "seconds" not in k} for r in h]
    assert strip(resumed["history"]) == strip(whole["history"])
    a = load_checkpoint(out / "checkpoint.npz").params
    b = load_checkpoint(tmp_path / "whole" / "checkpoint.npz").params
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert resumed["evaluation"]["iw_nll"] == whole["evaluation"]["iw_nll"]


def test_resume_refuses_a_flag_that_would_change_the_run(demo, tmp_path):
    demo.main(SMALL + ["--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"would change it: --lr-scale 2.0 \(the checkpoint "
                                         r"has 3.0\)"):
        demo.main(["--resume", "--lr-scale", "2", "--out-dir", str(tmp_path)])


def test_publish_copies_the_results_and_adds_the_row_to_the_docs_table(demo, tmp_path):
    page = tmp_path / "reproduction.md"
    other = "| iwae5 (k = 5) | 85.54 | another row, published before |"
    page.write_text(f"# Reproduction\n\n<!-- table:begin -->\n{other}\n<!-- table:end -->\n"
                    "\nnotes\n")
    target = tmp_path / "results" / "vae"
    demo.main(SMALL + ["--out-dir", str(tmp_path / "run"), "--publish", str(target),
                       "--docs-page", str(page)])
    assert {"checkpoint.npz", "metrics.json", "reproduction.md"} <= {p.name for p in
                                                                      target.iterdir()}
    lines = page.read_text().splitlines()
    assert lines[lines.index(other) + 1].startswith("| vae (k = 1) | 86.76 (19) |")
    assert lines[-1] == "notes" and lines[3].startswith("| row |")   # the header was added
    assert json.loads((target / "metrics.json").read_text())["row"] == "vae"


def test_a_diverging_run_ends_in_one_line_naming_the_last_good_checkpoint(demo, tmp_path):
    with pytest.raises(SystemExit) as stop:
        demo.main(SMALL + ["--lr-scale", "1e7", "--out-dir", str(tmp_path)])
    message = str(stop.value)
    assert message.startswith("reproduce_iwae_table.py: error: training diverged")
    assert "last good checkpoint" in message or "No usable checkpoint" in message


def test_a_missing_data_file_is_one_line(demo, tmp_path):
    with pytest.raises(SystemExit, match="reproduce_iwae_table.py: error: .*no such file"):
        demo.main(["--data", str(tmp_path / "nope.npz"), "--out-dir", str(tmp_path)])


def test_estimator_and_step_flags_are_recorded_and_a_resume_keeps_the_estimator(demo, tmp_path):
    metrics = demo.main(SMALL + ["--row", "iwae5", "--estimator", "iwae", "--step", "readable",
                                 "--budget-steps", "10", "--out-dir", str(tmp_path)])
    assert metrics["estimator"] == "iwae"
    assert {r["estimator"] for r in metrics["history"]} == {"iwae"}
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.extra["estimator"] == "iwae" and ckpt.history[-1]["estimator"] == "iwae"
    with pytest.raises(SystemExit, match=r"would change it: --estimator stl \(the checkpoint "
                                         r"has 'iwae'\)"):
        demo.main(["--resume", "--estimator", "stl", "--out-dir", str(tmp_path)])
    # --step is not part of the run: a resumed run may take the other one
    resumed = demo.main(["--resume", "--step", "default", "--budget-steps", "10",
                         "--out-dir", str(tmp_path)])
    assert resumed["estimator"] == "iwae"


def test_the_vae_row_refuses_an_estimator_before_any_work(demo, tmp_path):
    with pytest.raises(SystemExit, match="--estimator stl applies to the IWAE rows .* row vae "
                                         "trains the VAE objective"):
        demo.main(SMALL + ["--row", "vae", "--estimator", "stl", "--out-dir", str(tmp_path)])
    assert not (tmp_path / "checkpoint.npz").exists()


def test_an_unknown_step_or_estimator_is_a_usage_error(demo, tmp_path, capsys):
    for flag in (["--step", "fast"], ["--estimator", "reinforce"]):
        with pytest.raises(SystemExit) as stop:
            demo.main(SMALL + flag + ["--out-dir", str(tmp_path)])
        assert stop.value.code == 2 and "invalid choice" in capsys.readouterr().err


ROOT = DEMO.parents[1]


def test_docs_table_and_row_reports_are_what_rebuild_docs_writes(demo):
    """docs/reproduction.md's table and each shipped row's reproduction.md equal what
    ``--rebuild-docs`` makes from the shipped metrics.json and PAPER: a change to PAPER that is
    not rebuilt fails here."""
    base = ROOT / demo.DOCS_RESULTS
    page = (ROOT / demo.DOCS_TABLE).read_text()
    assert page == demo.page_with_table(page, str(base))
    shipped = demo.published_metrics(str(base))
    assert len(shipped) >= 3
    for directory, metrics in shipped:
        report = Path(directory, "reproduction.md").read_text()
        assert report == demo.report_text(metrics["row"], metrics), directory


def test_no_row_says_the_paper_does_not_report_active_units(demo):
    page = (ROOT / demo.DOCS_TABLE).read_text()
    assert "not reported" not in page
    rows = {row: demo.row_markdown(row, {"history": [], "evaluation": {
        "k": 5000, "n_test": 10, "iw_nll": 1.0, "iw_nll_se": 0.1, "active_units": 3},
        "machine": {"cpu": "c", "openblas_threads": 1}, "recipe": "paper", "batch_size": 20})
        for row in demo.PAPER}
    for row, (_, _, nll, units) in demo.PAPER.items():
        shown = f"{nll:.2f} ({units if units is not None else demo.PAPER_UNITS_UNCHECKED})"
        assert shown in rows[row]


def test_a_row_trained_with_another_estimator_names_it_and_takes_no_paper_value(demo):
    metrics = {"history": [], "evaluation": {"k": 5000, "n_test": 10, "iw_nll": 1.0,
                                             "iw_nll_se": 0.1, "active_units": 3},
               "machine": {"cpu": "c", "openblas_threads": 1}, "recipe": "budget",
               "batch_size": 100}
    assert demo.row_markdown("iwae5", metrics).startswith("| iwae5 (k = 5) | 85.54")
    dreg = demo.row_markdown("iwae5", {**metrics, "estimator": "dreg",
                                       "budget": {"amount": 423663.0, "unit": "steps"}})
    assert dreg.startswith("| iwae5 (k = 5), DReG gradient | none | K = 5000"), dreg
    assert "| budget of 423,663 steps, batch 100," in dreg, dreg
    stl = demo.row_markdown("iwae5", {**metrics, "estimator": "stl"})
    assert stl.startswith("| iwae5 (k = 5), STL gradient | none |"), stl


def test_rebuild_docs_rewrites_a_stale_table(demo, tmp_path, monkeypatch):
    page = tmp_path / "reproduction.md"
    page.write_text("# R\n\n<!-- table:begin -->\nstale\n<!-- table:end -->\n")
    results = tmp_path / "results"
    (results / "vae").mkdir(parents=True)
    metrics = json.loads((ROOT / demo.DOCS_RESULTS / "vae" / "metrics.json").read_text())
    (results / "vae" / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.setattr(demo, "DOCS_RESULTS", str(results))
    demo.main(["--rebuild-docs", "--docs-page", str(page)])
    assert "stale" not in page.read_text() and "| vae (k = 1) | 86.76 (19) |" in page.read_text()
    assert (results / "vae" / "reproduction.md").read_text() == demo.report_text("vae", metrics)
