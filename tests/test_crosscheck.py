r"""Fixtures and the comparison report (vae_numpy.crosscheck).

The report must pass a correct candidate, fail a wrong one and name the wrong tensor. The
planted-bug tests run a PyTorch VAE with a known mistake (skipped without torch).
"""
import json
import os

import numpy as np
import pytest

from vae_numpy import crosscheck
from vae_numpy.crosscheck import (COMPARE_TOLERANCE_FLOAT32, COMPARE_TOLERANCE_FLOAT64, compare,
                                  fixture_config, fixture_params, make_fixture, read_fixture,
                                  write_fixture)
from vae_numpy.model import VAEConfig, encode, loss_and_grads, param_shapes

SMALL = VAEConfig(input_dim=12, latent_dim=3, encoder_hidden=(8,), decoder_hidden=(8,))


def own_values(fixture):
    r"""A candidate that is the fixture's own results (a perfect implementation)."""
    return {k: v.copy() for k, v in fixture.items()
            if k in crosscheck.FORWARD_KEYS or k.startswith("grad/")}


@pytest.fixture
def fixture():
    return make_fixture(SMALL, batch=4, seed=0)


# --- the fixture ---------------------------------------------------------------------------

def test_fixture_layout(fixture):
    names = list(param_shapes(SMALL))
    expected = ({"config", "x", "eps", "loss", "rec", "kl", "z", "mu", "logvar"}
                | {f"param/{k}" for k in names} | {f"grad/{k}" for k in names})
    assert set(fixture) == expected
    assert fixture["config"].shape == () and fixture["config"].dtype.kind == "U"
    config = json.loads(str(fixture["config"]))
    assert config["reduction"] == "mean" and "vae_numpy_version" in config
    assert fixture_config(fixture) == (SMALL, "mean")
    shapes = {"x": (4, 12), "eps": (4, 3), "loss": (), "rec": (4,), "kl": (4,), "z": (4, 3),
              "mu": (4, 3), "logvar": (4, 3),
              "param/enc.0.W": (12, 8), "grad/dec.out.W": (8, 12)}
    assert {k: fixture[k].shape for k in shapes} == shapes
    assert all(v.dtype == np.float64 for k, v in fixture.items() if k != "config")


def test_fixture_is_what_loss_and_grads_gives(fixture):
    loss, grads, terms = loss_and_grads(fixture_params(fixture), fixture["x"], fixture["eps"],
                                        SMALL)
    assert float(fixture["loss"]) == float(loss)
    assert all(np.array_equal(fixture[k], terms[k]) for k in ("rec", "kl", "z", "mu", "logvar"))
    assert all(np.array_equal(fixture[f"grad/{k}"], g) for k, g in grads.items())


def test_fixture_is_reproducible_from_the_seed(fixture):
    again = make_fixture(SMALL, batch=4, seed=0)
    other = make_fixture(SMALL, batch=4, seed=1)
    assert all(np.array_equal(fixture[k], again[k]) for k in fixture)
    assert not np.array_equal(fixture["x"], other["x"])


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "gaussian",
                                        "gaussian_learned"])
def test_x_suits_the_likelihood(likelihood):
    cfg = VAEConfig(input_dim=50, latent_dim=2, likelihood=likelihood, encoder_hidden=(4,),
                    decoder_hidden=(4,))
    x = make_fixture(cfg, batch=20, seed=0)["x"]
    if likelihood == "bernoulli":
        assert set(np.unique(x)) == {0.0, 1.0}
    elif likelihood == "continuous_bernoulli":
        assert x.min() >= 0 and x.max() <= 1 and len(np.unique(x)) > 900
    else:
        assert x.min() < -1 and x.max() > 1  # real valued, not squeezed into [0, 1]


def test_float32_fixture():
    cfg = VAEConfig(input_dim=6, latent_dim=2, encoder_hidden=(), decoder_hidden=(5, 4),
                    likelihood="gaussian_learned", dtype="float32")
    f = make_fixture(cfg, batch=3, seed=0, reduction="sum")
    assert all(v.dtype == np.float32 for k, v in f.items() if k != "config")
    assert fixture_config(f) == (cfg, "sum")
    assert "param/dec.out_logvar.W" in f and "param/enc.0.W" not in f


def test_write_read_roundtrip(tmp_path, fixture):
    path = tmp_path / "case.npz"
    assert write_fixture(path, fixture) == str(path)
    back = read_fixture(path)
    assert set(back) == set(fixture)
    assert all(np.array_equal(back[k], fixture[k]) and back[k].dtype == fixture[k].dtype
               for k in fixture)
    assert os.listdir(tmp_path) == ["case.npz"]  # the temp file was renamed, nothing left
    with np.load(path, allow_pickle=False) as f:  # readable without pickles, from any tool
        assert str(f["config"]) == str(fixture["config"])


def test_write_overwrites_atomically(tmp_path, fixture):
    path = tmp_path / "case.npz"
    write_fixture(path, make_fixture(SMALL, batch=4, seed=7))
    write_fixture(path, fixture)
    assert np.array_equal(read_fixture(path)["x"], fixture["x"])
    assert os.listdir(tmp_path) == ["case.npz"]


def test_read_rejects_an_incomplete_fixture(tmp_path, fixture):
    del fixture["grad/enc.mu.b"]
    np.savez(tmp_path / "bad.npz", **fixture)
    with pytest.raises(ValueError, match=r"grad/enc\.mu\.b"):
        read_fixture(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="missing"):
        write_fixture(tmp_path / "bad2.npz", fixture)


def test_make_fixture_rejects_bad_arguments():
    with pytest.raises(ValueError, match="reduction"):
        make_fixture(SMALL, batch=2, seed=0, reduction="batchmean")
    with pytest.raises(ValueError, match="batch"):
        make_fixture(SMALL, batch=0, seed=0)


# --- the comparison ------------------------------------------------------------------------

def test_identical_candidate_passes(fixture):
    report = compare(fixture, own_values(fixture))
    assert report.passed and report.failing == [] and report.status == "PASS"
    assert len(report.entries) == 6 + len(param_shapes(SMALL))
    assert str(report).splitlines()[-1].startswith(
        "PASS: the loss and 10 gradients agree within relative tolerance 1e-10 (float64)")


def test_tolerance_is_relative_to_the_tensor_scale(fixture):
    near = own_values(fixture)
    near["grad/dec.out.W"] = near["grad/dec.out.W"] * (1 + 1e-13)  # round-off level: passes
    assert compare(fixture, near).passed
    off = own_values(fixture)
    off["grad/dec.out.W"] = off["grad/dec.out.W"] * (1 + 1e-8)  # beyond 1e-10: fails
    report = compare(fixture, off)
    assert not report.passed and report.failing == ["grad/dec.out.W"]
    assert report["grad/dec.out.W"].rel_error == pytest.approx(1e-8, rel=1e-3)
    assert report.entries[0].name == "grad/dec.out.W"  # worst first


def test_error_measure_is_gradcheck_rel_error(fixture):
    cand = own_values(fixture)
    cand["kl"] = cand["kl"] + np.array([0, 0, 3e-6, 0])
    entry = compare(fixture, cand)["kl"]
    scale = max(np.abs(cand["kl"]).max(), np.abs(fixture["kl"]).max())
    assert entry.abs_error == pytest.approx(3e-6, rel=1e-6)
    assert entry.rel_error == pytest.approx(3e-6 / scale, rel=1e-6)


def test_table_is_sorted_worst_first(fixture):
    cand = own_values(fixture)
    for k, f in [("rec", 1e-3), ("grad/enc.0.b", 1e-5), ("z", 1e-7)]:
        cand[k] = cand[k] * (1 + f)
    report = compare(fixture, cand)
    assert [e.name for e in report.entries[:3]] == ["rec", "grad/enc.0.b", "z"]
    text = str(report)
    assert text.index("rec ") < text.index("grad/enc.0.b") < text.index("z ")
    assert text.splitlines()[-1].startswith("FAIL: 3 of 16 compared tensors differ")


def test_fail_counts_only_compared_tensors_and_says_1_gradient(fixture):
    cand = {k: v for k, v in own_values(fixture).items() if k not in ("rec", "kl", "mu")}
    cand["grad/enc.0.b"] = cand["grad/enc.0.b"] * 1.01
    verdict = compare(fixture, cand).verdict()
    assert verdict.startswith("FAIL: 1 of 13 compared tensors differ") and \
        "1 gradient (worst grad/enc.0.b)" in verdict and "1 gradients" not in verdict


def test_nested_grads_dict_is_accepted(fixture):
    cand = {k: v for k, v in own_values(fixture).items() if not k.startswith("grad/")}
    cand["grads"] = {k[len("grad/"):]: v for k, v in own_values(fixture).items()
                     if k.startswith("grad/")}
    report = compare(fixture, cand)
    assert report.passed and not report.missing


def test_pytorch_layout_is_transposed(fixture):
    cand = own_values(fixture)
    for k in list(cand):
        if k.endswith(".W"):
            cand[k] = np.ascontiguousarray(cand[k].T)  # (out, in), as nn.Linear.weight.grad
    assert compare(fixture, cand, pytorch_layout=True).passed
    report = compare(fixture, cand)
    assert not report.passed and report["grad/enc.0.W"].status == "shape"
    assert "pass pytorch_layout=True" in report["grad/enc.0.W"].hint
    assert "pass pytorch_layout=True" in str(report)


def test_square_weight_in_pytorch_layout_gets_a_hint():
    cfg = VAEConfig(input_dim=6, latent_dim=3, encoder_hidden=(6,), decoder_hidden=(3,))
    fixture = make_fixture(cfg, batch=3, seed=0)
    cand = own_values(fixture)
    cand["grad/enc.0.W"] = cand["grad/enc.0.W"].T  # (6, 6): the shape cannot tell
    entry = compare(fixture, cand)["grad/enc.0.W"]
    assert entry.status == "FAIL" and "agrees when transposed" in entry.hint


# --- the verdict: PASS only when the loss and every gradient were compared ------------------

def grads_only(fixture):
    return {k: v for k, v in own_values(fixture).items() if k.startswith("grad/")}


def test_loss_and_gradients_alone_pass(fixture):
    report = compare(fixture, {"loss": fixture["loss"], **grads_only(fixture)})
    assert report.status == "PASS" and report.passed
    assert report.missing == ["rec", "kl", "z", "mu", "logvar"]  # optional: listed, not needed
    assert "Not given (optional): rec, kl, z, mu, logvar" in report.verdict()


def test_only_a_loss_is_incomplete(fixture):
    report = compare(fixture, {"loss": fixture["loss"]})
    assert report.status == "INCOMPLETE" and not report.passed and report.failing == []
    assert len(report.missing_required) == 10
    verdict = report.verdict()
    assert verdict.startswith("INCOMPLETE: nothing compared disagrees (1 tensor agree")
    assert "10 gradients missing (enc.0.W, enc.0.b, enc.mu.W, enc.mu.b, ...)" in verdict
    assert "missing (required)" in str(report)


@pytest.mark.parametrize("drop", ["loss", "grad/enc.0.W", "grad/dec.out.b"])
def test_every_missing_required_tensor_is_incomplete(fixture, drop):
    cand = own_values(fixture)
    del cand[drop]
    report = compare(fixture, cand)
    assert report.status == "INCOMPLETE" and report.missing_required == [drop]
    assert report.failing == [] and not report.passed


def test_missing_loss_says_how_to_supply_it(fixture):
    cand = grads_only(fixture)
    report = compare(fixture, cand)
    assert report.status == "INCOMPLETE"
    assert "the loss is missing (hand over 'loss'" in report.verdict()


def test_pytorch_named_gradients_are_incomplete_not_pass(fixture):
    r"""Gradients keyed by named_parameters() names: nothing matches a fixture gradient."""
    cand = {"loss": fixture["loss"], "rec": fixture["rec"], "kl": fixture["kl"],
            "z": fixture["z"]}
    cand["grads"] = {"fc1.weight": fixture["grad/enc.0.W"].T, "fc1.bias": fixture["grad/enc.0.b"]}
    report = compare(fixture, cand)
    assert report.status == "INCOMPLETE" and report.ignored == ["grad/fc1.bias",
                                                                "grad/fc1.weight"]
    assert "vae_numpy.crosscheck.interop.torch_grads" in report.verdict()
    assert "not recognised (not fixture names): grad/fc1.bias, grad/fc1.weight" in str(report)


def test_a_raw_flax_gradient_tree_is_incomplete_not_pass(fixture):
    tree = {"params": {"encoder": {"fc1": {"kernel": fixture["grad/enc.0.W"],
                                           "bias": fixture["grad/enc.0.b"]}}}}
    report = compare(fixture, {"loss": fixture["loss"], "grads": tree})
    assert report.status == "INCOMPLETE"
    assert "grad/params/encoder/fc1/kernel" in report.ignored
    assert "vae_numpy.crosscheck.interop.tree_grads" in report.verdict()


def test_an_unrecognised_key_alone_makes_it_incomplete(fixture):
    cand = own_values(fixture)
    cand["fc1.weight"] = np.zeros((8, 12))
    report = compare(fixture, cand)
    assert report.status == "INCOMPLETE" and report.ignored == ["fc1.weight"]
    assert "1 candidate key not recognised (fc1.weight)" in report.verdict()


def test_fixture_inputs_handed_back_are_not_unrecognised(fixture):
    cand = {**own_values(fixture), "x": fixture["x"], "eps": fixture["eps"],
            "param/enc.0.W": fixture["param/enc.0.W"]}
    assert compare(fixture, cand).status == "PASS"


def test_fail_wins_over_missing(fixture):
    cand = {"loss": fixture["loss"] * 2, "fc1.weight": np.zeros(3)}
    report = compare(fixture, cand)
    assert report.status == "FAIL" and report.failing == ["loss"]
    verdict = report.verdict()
    assert verdict.startswith("FAIL: 1 of 1 compared tensors differ")
    assert "10 gradients missing" in verdict and "not recognised" in verdict


def test_require_all_is_a_no_op_kept_for_old_callers(fixture):
    only_loss = {"loss": fixture["loss"]}
    for flag in (True, False):
        assert compare(fixture, only_loss, require_all=flag).status == "INCOMPLETE"
        assert compare(fixture, own_values(fixture), require_all=flag).status == "PASS"


def test_nan_fails_and_shows_as_nan(fixture):
    cand = own_values(fixture)
    cand["z"] = cand["z"].copy()
    cand["z"][0, 0] = np.nan
    cand["grad/dec.out.b"] = cand["grad/dec.out.b"] * (1 + 1e-3)
    report = compare(fixture, cand)
    assert report.failing == ["z", "grad/dec.out.b"]  # not finite is the worst of all
    row = next(line for line in str(report).splitlines() if line.startswith("z "))
    assert "nan" in row and "inf" not in row and "not finite: 1 NaN of 12 entries" in row


# --- old fixtures, and mu / logvar as reference values -----------------------------------------

def test_a_fixture_without_mu_and_logvar_still_reads_and_compares(tmp_path, fixture):
    old = {k: v for k, v in fixture.items() if k not in ("mu", "logvar")}  # as 0.1.0 wrote
    np.savez(tmp_path / "old.npz", **old)
    back = read_fixture(tmp_path / "old.npz")
    assert "mu" not in back
    assert compare(back, own_values(fixture)).status == "PASS"  # mu, logvar recomputed
    cand = own_values(fixture)
    cand["mu"] = cand["mu"] + 1e-3
    report = compare(back, cand)
    assert report.failing == ["mu"] and "the encoder" in report.diagnoses[0]


def test_reference_mu_logvar_are_the_encoder_outputs(fixture):
    mu, logvar = encode(fixture_params(fixture), fixture["x"], SMALL)
    assert np.array_equal(fixture["mu"], mu) and np.array_equal(fixture["logvar"], logvar)


def test_float32_candidate_uses_the_float32_tolerance():
    r"""A real float32 run (vae_numpy in float32, inputs rounded) against the float64
    fixture of the 784-400-20 model: passes at TOLERANCE_FLOAT32, fails at float64's."""
    cfg = VAEConfig(input_dim=784, latent_dim=20, likelihood="continuous_bernoulli")
    fixture = make_fixture(cfg, batch=32, seed=0)
    cfg32 = VAEConfig.from_dict({**cfg.to_dict(), "dtype": "float32"})
    p32 = {k: v.astype(np.float32) for k, v in fixture_params(fixture).items()}
    loss, grads, terms = loss_and_grads(p32, fixture["x"].astype(np.float32),
                                        fixture["eps"].astype(np.float32), cfg32)
    cand = {"loss": loss, "rec": terms["rec"], "kl": terms["kl"], "z": terms["z"],
            "grads": grads}
    report = compare(fixture, cand)
    assert report.dtype == "float32" and report.tolerance == COMPARE_TOLERANCE_FLOAT32
    assert any("float32 candidate against a float64 fixture" in n for n in report.notes)
    assert "note: a float32 candidate" in str(report)
    assert report.passed, str(report)
    assert report.entries[0].rel_error < COMPARE_TOLERANCE_FLOAT32 / 10  # the stated 10x margin
    assert not compare(fixture, cand, dtype="float64").passed
    assert COMPARE_TOLERANCE_FLOAT64 < COMPARE_TOLERANCE_FLOAT32


def test_compare_rejects_an_unknown_dtype(fixture):
    with pytest.raises(ValueError, match="dtype"):
        compare(fixture, own_values(fixture), dtype="float16")


# --- diagnoses from NumPy-made mistakes (no torch needed) ----------------------------------

def test_diagnoses_name_the_known_mistakes(fixture):
    mu, logvar = encode(fixture_params(fixture), fixture["x"], SMALL)
    cases = {
        "z": ("variance as the standard deviation", mu + np.exp(logvar) * fixture["eps"]),
        "kl": ("wrong sign", -fixture["kl"]),
        "rec": ("averaged over the D data dimensions", fixture["rec"] / SMALL.input_dim),
    }
    for key, (words, wrong) in cases.items():
        cand = own_values(fixture)
        cand[key] = wrong
        report = compare(fixture, cand)
        assert report.failing == [key]
        assert len(report.diagnoses) == 1 and words in report.diagnoses[0]
        assert f"likely cause: {report.diagnoses[0]}" in str(report)


def test_diagnoses_of_other_known_mistakes(fixture):
    mu, _ = encode(fixture_params(fixture), fixture["x"], SMALL)
    cases = {"z": ("noise eps is not applied", mu),
             "kl": ("averaged over the J latent", fixture["kl"] / SMALL.latent_dim)}
    for key, (words, wrong) in cases.items():
        cand = own_values(fixture)
        cand[key] = wrong
        report = compare(fixture, cand)
        assert report.failing == [key] and words in report.diagnoses[0]


@pytest.mark.parametrize("rec_weight", [1.0, 0.5])
def test_diagnosis_of_a_loss_without_beta(rec_weight):
    cfg = VAEConfig(input_dim=12, latent_dim=3, encoder_hidden=(8,), decoder_hidden=(8,),
                    beta=3.0, rec_weight=rec_weight)
    fixture = make_fixture(cfg, batch=4, seed=0)
    cand = own_values(fixture)
    cand["loss"] = np.mean(rec_weight * fixture["rec"] + fixture["kl"])
    report = compare(fixture, cand)
    assert report.failing == ["loss"] and "ignores beta" in report.diagnoses[0]


def test_no_diagnosis_for_an_unknown_mistake(fixture):
    cand = own_values(fixture)
    cand["rec"] = fixture["rec"] * 1.01
    report = compare(fixture, cand)
    assert report.failing == ["rec"] and report.diagnoses == []


def test_diagnosis_of_a_batch_reduction_mismatch(fixture):
    cand = own_values(fixture)
    cand["loss"] = np.sum(fixture["rec"] + fixture["kl"])  # summed; the fixture means
    report = compare(fixture, cand)
    assert report.failing == ["loss"] and "reduction" in report.diagnoses[0]


# --- planted bugs in a PyTorch VAE ------------------------------------------------------------

# bug -> (the tensor it names, the forward values that must fail). The std bug changes z and
# so also rec, which is computed from z; kl uses the true std and still agrees.
PLANTED = {"std": ("z", {"z", "rec"}), "kl_sign": ("kl", {"kl"}), "bce_mean": ("rec", {"rec"})}


@pytest.mark.torch
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_report_catches_planted_bugs_and_names_the_tensor(reduction):
    pytest.importorskip("torch", reason="planted-bug tests need torch (pip install -e '.[torch]')")
    from torch_vae import run_on_fixture
    cfg = VAEConfig(input_dim=12, latent_dim=3, encoder_hidden=(8,), decoder_hidden=(8,))
    fixture = make_fixture(cfg, batch=4, seed=0, reduction=reduction)

    correct = compare(fixture, run_on_fixture(fixture, pytorch_layout=True),
                      pytorch_layout=True, require_all=True)
    assert correct.passed, str(correct)

    forward_terms = {"z", "kl", "rec"}
    for bug, (tensor, failing_terms) in PLANTED.items():
        cand = run_on_fixture(fixture, bug=bug, pytorch_layout=True)
        report = compare(fixture, cand, pytorch_layout=True, require_all=True)
        assert not report.passed, f"bug {bug} passed:\n{report}"
        # exactly the forward terms the bug touches fail, the others agree
        assert forward_terms & set(report.failing) == failing_terms, f"bug {bug}:\n{report}"
        assert report[tensor].rel_error > 1e3 * COMPARE_TOLERANCE_FLOAT64
        assert "loss" in report.failing
        # the verdict names the tensor first among the forward values, and so does the diagnosis
        verdict = str(report).splitlines()[-1]
        assert verdict.startswith("FAIL: ") and verdict.split(": ")[2].startswith(tensor)
        assert len(report.diagnoses) == 1 and report.diagnoses[0].startswith(tensor)


def test_tolerance_table_is_complete():
    assert set(crosscheck.TOLERANCES) == {"float64", "float32"}


def test_write_report(tmp_path, fixture):
    report = compare(fixture, own_values(fixture))
    path = crosscheck.write_report(tmp_path / "report.txt", report)
    assert open(path).read() == str(report) + "\n"
    assert os.listdir(tmp_path) == ["report.txt"]


# --- causes: encoder or sampler, log sigma, scalar terms, the loss alone, ties -------------------

def test_z_differs_with_mu_and_logvar_agreeing_blames_the_sampler(fixture):
    cand = own_values(fixture)
    cand["z"] = cand["z"] + 1e-3  # not a known mistake
    report = compare(fixture, cand)
    assert report.failing == ["z"]
    assert report.diagnoses[0].startswith("z differs while mu and logvar agree: the sampler "
                                          "is wrong, not the encoder")
    del cand["mu"], cand["logvar"]
    assert "while kl agrees" in compare(fixture, cand).diagnoses[0]  # kl rules out the encoder
    del cand["kl"]
    assert "hand over mu and logvar" in compare(fixture, cand).diagnoses[0]


def test_an_encoder_bug_is_not_blamed_on_the_sampler(fixture):
    cand = own_values(fixture)
    cand["mu"] = cand["mu"] * 1.01
    cand["z"] = cand["z"] + 0.01 * fixture["mu"]
    report = compare(fixture, cand)
    assert len(report.diagnoses) == 1 and "the encoder" in report.diagnoses[0]
    assert "the sampler is not the cause" in report.diagnoses[0]


def test_a_log_sigma_encoder_is_recognised_and_the_option_passes_it(fixture):
    mu, logvar = fixture["mu"], fixture["logvar"]
    # the fixture's weights loaded unchanged into a head that means log sigma:
    cand = own_values(fixture)
    cand["z"] = mu + np.exp(logvar) * fixture["eps"]
    cand["kl"] = 0.5 * np.sum(mu**2 + np.exp(2 * logvar) - 1 - 2 * logvar, axis=1)
    report = compare(fixture, cand)
    assert len(report.diagnoses) == 1
    assert "second head outputs log sigma" in report.diagnoses[0]
    assert "variance as the standard deviation" not in report.diagnoses[0]
    # loaded with 0.5 W, 0.5 b: right values, logvar reported as log sigma, head grads doubled
    right = own_values(fixture)
    right["logvar"] = 0.5 * logvar
    right["grad/enc.logvar.W"] = 2 * right["grad/enc.logvar.W"]
    right["grad/enc.logvar.b"] = 2 * right["grad/enc.logvar.b"]
    assert compare(fixture, right, logvar_head="log_sigma").status == "PASS"
    plain = compare(fixture, right)
    assert plain.status == "FAIL" and "logvar is half the reference" in plain.diagnoses[0]
    with pytest.raises(ValueError, match="logvar_head"):
        compare(fixture, right, logvar_head="sigma")


def test_scalar_rec_and_kl_are_compared_with_their_batch_reduction(fixture):
    B, D, J = 4, SMALL.input_dim, SMALL.latent_dim
    cand = own_values(fixture)
    cand["rec"], cand["kl"] = np.mean(fixture["rec"]), np.mean(fixture["kl"])  # mean fixture
    report = compare(fixture, cand)
    assert report.status == "PASS" and report["rec"].shape == ()
    cand["rec"] = np.sum(fixture["rec"]) / (B * D)  # BCE with reduction="mean"
    cand["kl"] = np.sum(fixture["kl"]) / (B * J)  # torch.mean of the KL terms
    report = compare(fixture, cand)
    assert set(report.failing) == {"rec", "kl"} and len(report.diagnoses) == 2
    assert "mean over all B*D entries" in report.diagnoses[0]
    assert "mean over all B*J entries" in report.diagnoses[1]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("mistake,words", [
    ("kl_sign", "wrong sign"), ("bce_mean", "mean over all B*D entries"),
    ("kl_mean", "mean over all B*J entries"), ("kl_mean_j", "J latent dimensions"),
    ("rec_mean_d", "D data dimensions"), ("batch", "over the batch")])
def test_the_loss_alone_names_each_recombination(reduction, mistake, words):
    r"""Each loss is written from its formula on the fixture's own rec and kl; the report must
    find it among all the recombinations, and only it."""
    fixture = make_fixture(SMALL, batch=4, seed=0, reduction=reduction)
    R, K = np.sum(fixture["rec"]), np.sum(fixture["kl"])
    B, D, J = 4, SMALL.input_dim, SMALL.latent_dim
    n = B if reduction == "mean" else 1
    loss = {"kl_sign": (R - K) / n, "bce_mean": R / (B * D) + K, "kl_mean": R + K / (B * J),
            "kl_mean_j": (R + K / J) / n, "rec_mean_d": (R / D + K) / n,
            "batch": (R + K) * n / B if reduction == "sum" else R + K}[mistake]
    report = compare(fixture, {"loss": loss, **grads_only(fixture)})
    assert report.failing == ["loss"] and len(report.diagnoses) == 1
    assert words in report.diagnoses[0] and "from the loss alone" in report.diagnoses[0]


def test_two_recombinations_that_fit_equally_are_both_reported():
    r"""With B = D, averaging rec over the pixels (sum_b rec_b / D) and over the batch
    (sum_b rec_b / B) give the same number: the loss cannot tell them apart, and says so."""
    cfg = VAEConfig(input_dim=4, latent_dim=2, encoder_hidden=(3,), decoder_hidden=(3,))
    fixture = make_fixture(cfg, batch=4, seed=0, reduction="sum")
    loss = np.sum(fixture["rec"]) / 4 + np.sum(fixture["kl"])
    report = compare(fixture, {"loss": loss, **grads_only(fixture)})
    cause = report.diagnoses[0]
    assert "the loss fits 2 recombinations equally well" in cause
    assert "(1) loss = " in cause and "(2) loss = " in cause
    assert "averaged over the D data dimensions" in cause and "rec is averaged over the batch" \
        in cause


def test_a_float32_loss_is_matched_at_the_float32_fit_tolerance():
    cfg = VAEConfig(input_dim=784, latent_dim=20)
    fixture = make_fixture(cfg, batch=32, seed=0, reduction="sum")
    cfg32 = VAEConfig.from_dict({**cfg.to_dict(), "dtype": "float32"})
    p32 = {k: v.astype(np.float32) for k, v in fixture_params(fixture).items()}
    _, grads, terms = loss_and_grads(p32, fixture["x"].astype(np.float32),
                                     fixture["eps"].astype(np.float32), cfg32, reduction="sum")
    loss = np.sum(terms["rec"]) - np.sum(terms["kl"])  # the sign bug, in float32 arithmetic
    report = compare(fixture, {"loss": loss, "grads": grads})
    assert report.dtype == "float32" and "wrong sign" in report.diagnoses[0]
    assert "equally" not in report.diagnoses[0]


def test_old_tolerance_names_are_aliases():
    assert crosscheck.TOLERANCE_FLOAT64 == COMPARE_TOLERANCE_FLOAT64 == 1e-10
    assert crosscheck.TOLERANCE_FLOAT32 == COMPARE_TOLERANCE_FLOAT32 == 1e-4


# --- the KL's form and the noise: mistakes named from the candidate's own formulas ------------

KL_FORMULA = "KL = 0.5 * sum_j (mu_j**2 + exp(logvar_j) - 1 - logvar_j)"
# each wrong KL as a user would write it, per example (B,), from the fixture's mu and logvar
WRONG_KLS = {
    "the KL lacks its factor 0.5":
        lambda mu, lv: np.sum(mu**2 + np.exp(lv) - 1 - lv, axis=1),
    "mu is not squared in the KL":
        lambda mu, lv: -0.5 * np.sum(1 + lv - mu - np.exp(lv), axis=1)}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("cause", sorted(WRONG_KLS))
def test_a_wrong_kl_is_named_with_the_formula_from_the_loss_and_from_kl(reduction, cause):
    fixture = make_fixture(SMALL, batch=4, seed=0, reduction=reduction)
    kl = WRONG_KLS[cause](fixture["mu"], fixture["logvar"])
    per_example = fixture["rec"] + kl
    loss = per_example.mean() if reduction == "mean" else per_example.sum()
    for candidate in ({"loss": loss, **grads_only(fixture)},  # the loss alone
                      {**own_values(fixture), "loss": loss, "kl": kl}):  # and the per-example kl
        report = compare(fixture, candidate)
        assert report.status == "FAIL" and len(report.diagnoses) == 1, str(report)
        assert cause in report.diagnoses[0] and KL_FORMULA in report.diagnoses[0], str(report)
        assert "equally" not in report.diagnoses[0]


def test_a_z_drawn_with_noise_of_its_own_is_named():
    r"""B*J = 40 entries: an independent draw looks explained by (1, eps, mu / std) with
    probability 3e-6 (causes.FRESH_MAX_EXPLAINED), so each of 20 draws must be named."""
    fixture = make_fixture(VAEConfig(input_dim=12, latent_dim=5, encoder_hidden=(8,),
                                     decoder_hidden=(8,)), batch=8, seed=0)
    mu, std = fixture["mu"], np.exp(0.5 * fixture["logvar"])
    cand = own_values(fixture)
    for seed in range(20):
        cand["z"] = mu + std * np.random.default_rng(seed).standard_normal(mu.shape)
        report = compare(fixture, cand)
        assert report.failing == ["z"] and len(report.diagnoses) == 1, str(report)
        assert "the model draws its own noise" in report.diagnoses[0]
        assert "z = mu + exp(0.5 * logvar) * eps needs the fixture's eps" in report.diagnoses[0]
    for wrong in (2 * fixture["z"], fixture["z"] + mu, mu + std * (fixture["eps"] + 0.5)):
        cand["z"] = wrong  # made from the fixture's own draw: the general sentence
        assert "the sampler is wrong, not the encoder" in compare(fixture, cand).diagnoses[0]
