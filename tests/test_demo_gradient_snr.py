"""demos/gradient_snr.py: --quick runs, writes its figure and JSON, reports slopes when two K
fall in a fit range, and its errors are one line (MNIST missing says how to get it)."""
import importlib.util
import json
from pathlib import Path

import pytest

DEMOS = Path(__file__).resolve().parents[1] / "demos"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_demo():
    spec = importlib.util.spec_from_file_location("gradient_snr", DEMOS / "gradient_snr.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines things only: nothing runs at import
    return module


@pytest.mark.figures
def test_quick_small_run_writes_figure_and_json(tmp_path, capsys):
    out = load_demo().main(["--quick", "--ks", "1,10,100,1000", "--draws", "30",
                            "--out-dir", str(tmp_path)])
    assert [r["model"] for r in out["small"]] == ["wide q", "narrow q"]
    png = (tmp_path / "gradient_snr_small.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and len(png) > 2000
    saved = json.loads((tmp_path / "gradient_snr_small.json").read_text())
    assert saved[0]["ks"] == [1, 10, 100, 1000] and saved[0]["n_draws"] == 30
    assert set(saved[0]["slopes"]) == {"encoder/iwae", "decoder", "encoder/stl", "encoder/dreg"}
    assert saved[0]["slopes"]["encoder/dreg"]["k_range"] == [100, 1000]
    captured = capsys.readouterr()
    assert "slope of encoder/iwae" in captured.out and "wide q: K = 1000" in captured.err


def test_burda_without_mnist_says_how_to_get_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        load_demo().main(["--model", "burda", "--quick", "--data", str(tmp_path / "no.npz"),
                          "--out-dir", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("gradient_snr.py: error: MNIST not found at")
    assert "mnist.npz" in message and "\n" not in message


def test_bad_flags_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="--ks must be comma-separated integers"):
        load_demo().main(["--ks", "1,ten", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="ks must be increasing"):
        load_demo().main(["--ks", "10,1", "--draws", "5", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="n_draws must be an integer >= 2"):
        load_demo().main(["--ks", "1", "--draws", "1", "--out-dir", str(tmp_path)])
