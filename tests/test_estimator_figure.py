"""docs/figures/estimator_comparison.png is drawn from the shipped rows' metrics.json as they are.

The figure keeps the SHA-256 of the two files it was drawn from in its PNG metadata: a row
published again without rerunning docs/figures/make_estimator_comparison.py fails here.
"""
import importlib.util
from pathlib import Path

import pytest

from test_graph_figure import stored_spec   # the PNG's "Description" metadata, as JSON

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "figures" / "make_estimator_comparison.py"
FIGURE = ROOT / "docs" / "figures" / "estimator_comparison.png"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("make_estimator_comparison", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stored_inputs(path):
    return stored_spec(path)["inputs"]


def test_the_committed_figure_was_drawn_from_the_shipped_metrics(script):
    assert stored_inputs(FIGURE) == script.inputs(), \
        "docs/figures/estimator_comparison.png is stale: run " \
        "python docs/figures/make_estimator_comparison.py"


def test_the_curves_are_the_two_rows_epochs(script):
    data = script.curves()
    assert set(data) == {"IWAE gradient", "DReG gradient"}
    for epochs, held, train in data.values():
        assert epochs == list(range(1, len(epochs) + 1)) == list(range(1, 712))
        assert len(held) == len(train) == 711


@pytest.mark.figures
def test_the_script_draws_the_figure_with_its_inputs(script, tmp_path):
    path = script.draw(str(tmp_path / "comparison.png"))
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stored_inputs(path) == script.inputs()
