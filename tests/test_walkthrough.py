"""docs/walkthrough.md is what docs/make_walkthrough.py writes now, and the script's checks bite.

The page prints every forward value, local derivative and gradient of one example through a
tiny VAE with finite differences beside each gradient; regenerating it here means it cannot go
stale. Numbers are compared to one unit in their last printed digit (1e-6), so a BLAS that
rounds differently in the 16th digit cannot fail the test, while any change of a formula, a
value or the text does.
"""
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "make_walkthrough.py"
PAGE = ROOT / "docs" / "walkthrough.md"
NUMBER = re.compile(r"[+-]\d+\.\d{6}")
LAST_DIGIT = 1.5e-6  # one unit in the sixth decimal, plus round-off of the comparison


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("make_walkthrough", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_page_is_what_the_script_writes(script):
    fresh, committed = script.page(), PAGE.read_text(encoding="utf-8")
    assert NUMBER.sub("#", fresh) == NUMBER.sub("#", committed), \
        "docs/walkthrough.md is stale: run python docs/make_walkthrough.py"
    a = np.array([float(v) for v in NUMBER.findall(fresh)])
    b = np.array([float(v) for v in NUMBER.findall(committed)])
    assert len(a) > 300 and np.max(np.abs(a - b)) <= LAST_DIGIT


def test_the_page_shows_every_step_of_loss_and_grads(script):
    text = PAGE.read_text(encoding="utf-8")
    for name, _, _ in script.FORWARD_STEPS:
        assert f"| {name} |" in text
    for key in script.PARAM_FORMULAS:
        assert f"| {key} |" in text
    assert set(script.PARAM_FORMULAS) == set(script.setup()[0])


def test_the_script_refuses_a_wrong_local_derivative(script, monkeypatch):
    """tanh's local derivative written as 1 - h instead of 1 - h**2: the finite differences
    beside d loss / d a2 disagree, and no page is produced."""
    monkeypatch.setattr(script, "tanh_backward", lambda dh, h: dh * (1 - h))
    with pytest.raises(AssertionError, match="d loss / d a2"):
        script.page()


def test_check_mode_reports_a_stale_page(script, tmp_path, capsys):
    stale = tmp_path / "walkthrough.md"
    stale.write_text(PAGE.read_text(encoding="utf-8").replace("+2.821645", "+2.821646"))
    assert script.main(["--check", "--out", str(stale)]) == 1
    assert "stale" in capsys.readouterr().out
