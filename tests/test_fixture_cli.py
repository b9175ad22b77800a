r"""``python -m vae_numpy fixture`` and ``python -m vae_numpy compare`` (vae_numpy/__main__.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from vae_numpy.__main__ import main, widths
from vae_numpy.crosscheck import fixture_config, make_fixture, read_fixture
from vae_numpy.model import VAEConfig


def test_out_alone_writes_a_small_float64_case(tmp_path, capsys):
    path = tmp_path / "case.npz"
    assert main(["fixture", "--out", str(path)]) == 0
    fixture = read_fixture(path)
    cfg, reduction = fixture_config(fixture)
    assert cfg == VAEConfig(input_dim=12, latent_dim=3, encoder_hidden=(8,), decoder_hidden=(8,))
    assert reduction == "mean" and fixture["x"].shape == (4, 12)
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {path}") and "grad/dec.out.W" in out and "loss = " in out
    # the CLI writes exactly what make_fixture gives for its defaults (seed 0)
    expected = make_fixture(cfg, batch=4, seed=0)
    assert all(np.array_equal(fixture[k], expected[k]) for k in expected)


def test_every_flag_reaches_the_config(tmp_path):
    path = tmp_path / "case.npz"
    argv = ["fixture", "--out", str(path), "--input-dim", "7", "--encoder-hidden", "8,6",
            "--decoder-hidden", "", "--latent", "2", "--activation", "tanh",
            "--likelihood", "gaussian", "--sigma", "0.5", "--beta", "2.5",
            "--rec-weight", "0.5", "--reduction", "sum", "--batch", "3", "--seed", "11",
            "--dtype", "float32"]
    assert main(argv) == 0
    fixture = read_fixture(path)
    cfg, reduction = fixture_config(fixture)
    assert cfg == VAEConfig(input_dim=7, latent_dim=2, encoder_hidden=(8, 6), decoder_hidden=(),
                            activation="tanh", likelihood="gaussian", beta=2.5, sigma=0.5,
                            rec_weight=0.5, dtype="float32")
    assert reduction == "sum"
    assert fixture["x"].shape == (3, 7) and fixture["x"].dtype == np.float32
    assert "param/enc.1.W" in fixture and "param/dec.0.W" not in fixture
    expected = make_fixture(cfg, batch=3, seed=11, reduction="sum")
    assert np.array_equal(fixture["grad/enc.0.W"], expected["grad/enc.0.W"])


def test_widths_parser():
    assert widths("8,6") == (8, 6) and widths("400") == (400,)
    assert widths("") == () and widths("none") == ()
    with pytest.raises(Exception, match="comma-separated"):
        widths("8;6")


def test_bad_flags_exit_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fixture", "--out", str(tmp_path / "a.npz"), "--likelihood", "poisson"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:   # a value out of range: a usage error, like a choice
        main(["fixture", "--out", str(tmp_path / "a.npz"), "--beta", "-1"])
    assert exc.value.code == 2
    assert "argument --beta: must be a finite number >= 0, got '-1'" in capsys.readouterr().err


def test_compare_exit_codes(tmp_path, capsys):
    case, good, bad = tmp_path / "case.npz", tmp_path / "good.npz", tmp_path / "bad.npz"
    main(["fixture", "--out", str(case), "--batch", "3"])
    fixture = read_fixture(case)
    results = {k: v for k, v in fixture.items()
               if k in ("loss", "rec", "kl", "z") or k.startswith("grad/")}
    np.savez(good, **results)
    np.savez(bad, **{**results, "kl": -results["kl"]})
    capsys.readouterr()
    assert main(["compare", str(case), str(good)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("PASS")
    assert main(["compare", str(case), str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("FAIL") and "wrong sign" in out


def test_compare_pytorch_layout_flag(tmp_path):
    case, cand = tmp_path / "case.npz", tmp_path / "cand.npz"
    main(["fixture", "--out", str(case)])
    fixture = read_fixture(case)
    torch_like = {k: (v.T if k.endswith(".W") else v) for k, v in fixture.items()
                  if k in ("loss", "rec", "kl", "z") or k.startswith("grad/")}
    np.savez(cand, **torch_like)
    assert main(["compare", str(case), str(cand)]) == 1
    assert main(["compare", str(case), str(cand), "--pytorch-layout"]) == 0


def test_python_dash_m(tmp_path):
    path = tmp_path / "case.npz"
    run = subprocess.run([sys.executable, "-m", "vae_numpy", "fixture", "--out", str(path),
                          "--encoder-hidden", "5,4", "--batch", "2"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout
    assert fixture_config(read_fixture(path))[0].encoder_hidden == (5, 4)


def test_compare_exit_code_3_for_incomplete(tmp_path, capsys):
    case, only_loss = tmp_path / "case.npz", tmp_path / "loss.npz"
    main(["fixture", "--out", str(case)])
    np.savez(only_loss, loss=read_fixture(case)["loss"])
    capsys.readouterr()
    assert main(["compare", str(case), str(only_loss)]) == 3
    assert capsys.readouterr().out.splitlines()[-1].startswith("INCOMPLETE")
    # --require-all is accepted and changes nothing (required is the only behaviour now)
    assert main(["compare", str(case), str(only_loss), "--require-all"]) == 3


def test_compare_logvar_head_flag(tmp_path):
    case, cand = tmp_path / "case.npz", tmp_path / "cand.npz"
    main(["fixture", "--out", str(case)])
    fixture = read_fixture(case)
    # what a log-sigma model loaded with 0.5 W, 0.5 b hands over: log sigma and 2x the grads
    values = {k: v for k, v in fixture.items() if k in ("loss", "z", "logvar")
              or k.startswith("grad/")}
    values["logvar"] = 0.5 * values["logvar"]
    for k in ("grad/enc.logvar.W", "grad/enc.logvar.b"):
        values[k] = 2 * values[k]
    np.savez(cand, **values)
    assert main(["compare", str(case), str(cand)]) == 1
    assert main(["compare", str(case), str(cand), "--logvar-head", "log_sigma"]) == 0


@pytest.mark.parametrize("command", ["fixture", "compare"])
def test_a_reader_that_stops_early_ends_the_command_cleanly(tmp_path, command):
    r"""`python -m vae_numpy ... | head`: the read end of stdout is closed before the command
    writes anything, so its first write meets a broken pipe. It must exit with its usual code
    and no traceback or 'Broken pipe' message."""
    case = tmp_path / "case.npz"
    main(["fixture", "--out", str(case)])
    argv = {"fixture": ["fixture", "--out", str(tmp_path / "again.npz")],
            "compare": ["compare", str(case), str(case)]}[command]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command starts
    try:
        run = subprocess.run([sys.executable, "-m", "vae_numpy", *argv], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert run.stderr == ""
    # fixture: the file is written, exit 0; compare: a fixture against itself is a PASS, 0
    assert run.returncode == 0
    if command == "fixture":
        assert read_fixture(tmp_path / "again.npz")["x"].shape == (4, 12)
