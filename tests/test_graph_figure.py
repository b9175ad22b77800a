"""docs/figures/computation_graph.png is drawn from docs/figures/make_graph.py's lists as they are.

The figure stores the lists it was drawn from (boxes, forward and backward edges with their
labels) in its PNG metadata, so a change to the lists that is not redrawn fails here; the
lists themselves are checked against the package: every function a box names exists, and every
forward edge that carries a gradient has its backward edge, and no other.
"""
import importlib
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "figures" / "make_graph.py"
FIGURE = ROOT / "docs" / "figures" / "computation_graph.png"


@pytest.fixture(scope="module")
def graph():
    spec = importlib.util.spec_from_file_location("make_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stored_spec(path):
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as im:
        return json.loads(im.text["Description"])


def test_the_committed_figure_was_drawn_from_the_current_lists(graph):
    assert stored_spec(FIGURE) == json.loads(json.dumps(graph.spec())), \
        "docs/figures/computation_graph.png is stale: run python docs/figures/make_graph.py"


def test_every_box_names_functions_that_exist(graph):
    named = [ref for *_, forward, backward in graph.NODES.values()
             for ref in (forward, backward) if ref]
    assert len(named) >= 14
    for ref in named:
        path, name = ref.split("::")
        module = importlib.import_module(path[:-len(".py")].replace("/", "."))
        assert callable(getattr(module, name)), ref


def test_every_edge_that_carries_a_gradient_has_its_backward_edge(graph):
    forward = {(a, b) for a, b, _ in graph.FORWARD}
    backward = {(b, a) for a, b, _, _ in graph.BACKWARD}
    assert backward == forward - graph.NO_GRADIENT
    assert graph.NO_GRADIENT <= forward
    assert {n for edge in forward for n in edge} == set(graph.NODES)


@pytest.mark.figures
def test_the_figure_is_drawn_with_its_lists(graph, tmp_path):
    path = graph.draw(str(tmp_path / "graph.png"), dpi=30)
    assert stored_spec(path) == json.loads(json.dumps(graph.spec()))
