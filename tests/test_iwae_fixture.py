r"""IWAE fixtures: ``make_fixture(..., objective="iwae", k=K)``, ``compare(..., estimator=)``, and
``python -m vae_numpy fixture --objective iwae --k K`` / ``compare --estimator``."""
import numpy as np
import pytest

import vae_numpy as vn
from vae_numpy.__main__ import main
from vae_numpy.crosscheck import (compare, expected_shapes, fixture_config, fixture_params,
                                  make_fixture, read_fixture, write_fixture)
from vae_numpy.crosscheck.fixture import fixture_objective
from vae_numpy.files.errors import FileFormatError

CFG = vn.VAEConfig(input_dim=12, latent_dim=3, encoder_hidden=(8,), decoder_hidden=(8,))


def candidate_of(fixture, estimator):
    r"""The fixture's own numbers for ``estimator``, as a candidate would hand them over."""
    params = fixture_params(fixture)
    grads = {k: fixture[f"grad_{estimator}/{k}" if k.startswith("enc.") and estimator != "iwae"
                        else f"grad/{k}"] for k in params}
    return {"loss": fixture["loss"], "grads": grads}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_the_fixture_holds_iwae_loss_and_grads_of_each_estimator(reduction):
    fixture = make_fixture(CFG, 4, seed=3, reduction=reduction, objective="iwae", k=6)
    assert fixture_objective(fixture) == ("iwae", 6)
    assert fixture_config(fixture) == (CFG, reduction)
    assert {k: np.shape(v) for k, v in fixture.items() if k != "config"} == \
        expected_shapes(CFG, 4, "iwae", 6)
    params, x, eps = fixture_params(fixture), fixture["x"], fixture["eps"]
    assert eps.shape == (6, 4, 3)
    for estimator in ("iwae", "stl", "dreg"):
        loss, grads, terms = vn.iwae_loss_and_grads(params, x, eps, CFG, reduction, estimator)
        assert fixture["loss"] == loss
        for k, g in grads.items():
            key = f"grad_{estimator}/{k}" if k.startswith("enc.") and estimator != "iwae" \
                else f"grad/{k}"
            np.testing.assert_array_equal(fixture[key], g, err_msg=key)
        for k in ("iw_bound", "log_weights", "mu", "logvar"):
            np.testing.assert_array_equal(fixture[k], terms[k])
    assert "rec" not in fixture and "z" not in fixture   # the VAE's entries are not there


def test_written_and_read_back_unchanged_and_validated(tmp_path):
    fixture = make_fixture(CFG, 2, seed=0, objective="iwae", k=3)
    path = write_fixture(tmp_path / "iwae.npz", fixture)
    back = read_fixture(path)
    assert sorted(back) == sorted(fixture)
    assert all(np.array_equal(back[k], fixture[k]) for k in fixture)
    broken = {k: v for k, v in fixture.items() if k != "grad_dreg/enc.mu.b"}
    np.savez(tmp_path / "broken.npz", **broken)
    with pytest.raises(FileFormatError, match="grad_dreg/enc.mu.b"):
        read_fixture(tmp_path / "broken.npz")
    np.savez(tmp_path / "eps.npz", **{**fixture, "eps": fixture["eps"][0]})
    with pytest.raises(FileFormatError, match=r"'eps' has shape \(2, 3\), expected \(3, 2, 3\)"):
        read_fixture(tmp_path / "eps.npz")


@pytest.mark.parametrize("estimator", ["iwae", "stl", "dreg"])
def test_each_estimators_numbers_pass_as_that_estimator_and_fail_as_the_others(estimator):
    fixture = make_fixture(CFG, 4, seed=0, objective="iwae", k=5)
    candidate = candidate_of(fixture, estimator)
    assert compare(fixture, candidate, estimator=estimator).passed
    for other in {"iwae", "stl", "dreg"} - {estimator}:
        report = compare(fixture, candidate, estimator=other)
        assert report.status == "FAIL"
        assert all(name.startswith("grad/enc.") for name in report.failing)
        assert report.diagnoses, (estimator, other)   # another estimator's numbers: named


def test_the_default_estimator_is_iwae_and_the_optional_terms_are_compared():
    fixture = make_fixture(CFG, 4, seed=0, objective="iwae", k=5)
    candidate = {**candidate_of(fixture, "iwae"), "log_weights": fixture["log_weights"],
                 "iw_bound": fixture["iw_bound"] + 1e-3}
    report = compare(fixture, candidate)
    assert report.status == "FAIL" and report.failing == ["iw_bound"]
    assert "iw_bound" in report.verdict() and "gradient" not in report.verdict()


def test_estimator_errors():
    vae_fixture = make_fixture(CFG, 2, seed=0)
    assert fixture_objective(vae_fixture) == ("vae", None)
    with pytest.raises(ValueError, match="applies to IWAE fixtures"):
        compare(vae_fixture, candidate_of(vae_fixture, "iwae"), estimator="dreg")
    fixture = make_fixture(CFG, 2, seed=0, objective="iwae", k=2)
    with pytest.raises(ValueError, match="estimator must be one of"):
        compare(fixture, candidate_of(fixture, "iwae"), estimator="rws")
    with pytest.raises(ValueError, match="needs k"):
        make_fixture(CFG, 2, seed=0, objective="iwae")
    with pytest.raises(ValueError, match="objective='iwae'"):
        make_fixture(CFG, 2, seed=0, k=3)
    with pytest.raises(ValueError, match="objective must be one of"):
        make_fixture(CFG, 2, seed=0, objective="elbo")
    with pytest.raises(ValueError, match="beta"):
        make_fixture(vn.VAEConfig(input_dim=4, latent_dim=2, beta=2.0), 2, seed=0,
                     objective="iwae", k=2)


# --- the command line ----------------------------------------------------------------------------

def test_cli_writes_the_iwae_fixture_of_make_fixture(tmp_path, capsys):
    path = tmp_path / "iwae.npz"
    assert main(["fixture", "--out", str(path), "--objective", "iwae", "--k", "3",
                 "--reduction", "sum"]) == 0
    fixture = read_fixture(path)
    expected = make_fixture(CFG, 4, seed=0, reduction="sum", objective="iwae", k=3)
    assert sorted(fixture) == sorted(expected)
    assert all(np.array_equal(fixture[k], expected[k]) for k in expected)
    out = capsys.readouterr().out
    assert "objective='iwae', k=3" in out and "grad_dreg/enc.mu.W" in out
    assert main(["fixture", "--out", str(path), "--objective", "iwae"]) == 0
    assert read_fixture(path)["eps"].shape[0] == 5          # the default K


def test_cli_k_without_the_iwae_objective_is_an_error(tmp_path, capsys):
    assert main(["fixture", "--out", str(tmp_path / "a.npz"), "--k", "3"]) == 2
    assert "--objective iwae" in capsys.readouterr().err
    assert not (tmp_path / "a.npz").exists()


def test_cli_compare_with_estimator_exit_codes_and_diagnosis(tmp_path, capsys):
    fixture = make_fixture(CFG, 4, seed=0, objective="iwae", k=5)
    path = write_fixture(tmp_path / "iwae.npz", fixture)
    dreg, stl = tmp_path / "dreg.npz", tmp_path / "stl.npz"
    for name, file in (("dreg", dreg), ("stl", stl)):
        c = candidate_of(fixture, name)
        np.savez(file, loss=c["loss"], **{f"grad/{k}": v for k, v in c["grads"].items()})
    assert main(["compare", str(path), str(dreg), "--estimator", "dreg"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["compare", str(path), str(stl), "--estimator", "dreg"]) == 1
    out = capsys.readouterr().out
    assert "likely cause: your encoder gradient equals STL's (weights not squared)" in out


def test_assert_matches_fixture_takes_the_estimator():
    from vae_numpy.crosscheck.testing import assert_matches_fixture
    fixture = make_fixture(CFG, 4, seed=0, objective="iwae", k=5)
    assert assert_matches_fixture(fixture, candidate_of(fixture, "stl"), estimator="stl").passed
    with pytest.raises(AssertionError, match="weights not squared"):
        assert_matches_fixture(fixture, candidate_of(fixture, "stl"), estimator="dreg")
