r"""The PyTorch recipe of docs/crosscheck.md, run as written there, on a model written the way
pytorch/examples' VAE is (tests/examples_style_torch.py): it passes in float64 and in float32;
every planted bug fails and is named, from the loss alone and with per-example terms; every
partial hand-over is INCOMPLETE; the log-sigma recipe passes a log-sigma encoder."""
import functools
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch recipe needs torch "
                                            "(pip install -e '.[torch]')")
pytestmark = pytest.mark.torch

from examples_style_torch import BUGS, VAE, loss_function, loss_terms  # noqa: E402

from vae_numpy import VAEConfig  # noqa: E402
from vae_numpy.crosscheck import compare, make_fixture, write_fixture  # noqa: E402
from vae_numpy.crosscheck.interop import (PYTORCH_EXAMPLES_NAMES, NoiseDrawWarning,  # noqa: E402
                                          load_torch, torch_grads, torch_noise)
from vae_numpy.crosscheck.testing import assert_matches_fixture  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "crosscheck.md"
# The pytorch/examples layout (one hidden layer each side, ReLU, Bernoulli), small. D, J and B
# are chosen so that no two recombinations of the terms coincide (D != B*J, D != B, ...).
INPUT_DIM, HIDDEN, LATENT, BATCH = 20, 8, 3, 5
CFG = VAEConfig(input_dim=INPUT_DIM, latent_dim=LATENT, encoder_hidden=(HIDDEN,),
                decoder_hidden=(HIDDEN,))

# bug -> words its likely cause must contain
CAUSES = {"kl_sign": "wrong sign", "bce_mean": "mean over all B*D entries",
          "kl_mean": "mean over all B*J entries",
          "kl_mean_j": "averaged over the J latent dimensions",
          "rec_mean_d": "averaged over the D data dimensions",
          "std": "variance as the standard deviation", "no_noise": "noise eps is not applied",
          "log_sigma": "second head outputs log sigma",
          "kl_no_half": "the KL lacks its factor 0.5", "kl_mu": "mu is not squared in the KL"}
# bugs the loss does not show (logvar detached: every forward value is right) or shows only as
# a random change (a noise of its own): named from the encoder heads' gradients, with the formula
GRADIENT_CAUSES = {
    "detach_logvar": ("logvar is detached where z is drawn", "d loss/d logvar = d loss/dz * 0.5 "
                      "* exp(0.5 * logvar) * eps + beta * 0.5 * (exp(logvar) - 1)"),
    "fresh_noise": ("the model draws its own noise",
                    "z = mu + exp(0.5 * logvar) * eps needs the fixture's eps")}
KL_FORMULA = "KL = 0.5 * sum_j (mu_j**2 + exp(logvar_j) - 1 - logvar_j)"
assert set(CAUSES) | set(GRADIENT_CAUSES) == set(BUGS) - {None}


def recipe(name):
    r"""The Python block after ``<!-- recipe: name -->`` in docs/crosscheck.md."""
    text = DOC.read_text()
    match = re.search(rf"<!-- recipe: {name} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"docs/crosscheck.md has no '<!-- recipe: {name} -->' python block"
    return match.group(1)


def run_recipe(tmp_path, monkeypatch, bug=None, reduction="sum", edits=()):
    r"""Write case.npz, run the documented recipe on VAE(bug) in tmp_path; its namespace."""
    write_fixture(tmp_path / "case.npz", make_fixture(CFG, BATCH, seed=0, reduction=reduction))
    monkeypatch.chdir(tmp_path)
    code = recipe("pytorch")
    for old, new in edits:
        assert old in code, f"the recipe no longer has {old!r}"
        code = code.replace(old, new)
    namespace = {"VAE": functools.partial(VAE, INPUT_DIM, HIDDEN, LATENT, bug=bug),
                 "loss_function": functools.partial(loss_function, bug=bug),
                 "print": lambda *args: None}
    torch.manual_seed(0)  # the fresh_noise bug's own draw
    if bug in ("no_noise", "fresh_noise"):  # randn_like never called: the patch says so
        with pytest.warns(NoiseDrawWarning, match="never called torch.randn_like"):
            exec(compile(code, f"{DOC}#recipe-pytorch", "exec"), namespace)
    else:
        exec(compile(code, f"{DOC}#recipe-pytorch", "exec"), namespace)
    return namespace


def without_terms(ns):
    r"""What a user with only the scalar loss hands over: the loss and the gradients."""
    return {"loss": ns["loss"], "grads": torch_grads(ns["model"], PYTORCH_EXAMPLES_NAMES)}


def with_terms(ns, bug):
    r"""The same plus the per-example terms as the model's loss forms them, mu and logvar."""
    rec, kl = loss_terms(ns["recon_batch"], ns["x"], ns["mu"], ns["logvar"], bug)
    return {**without_terms(ns), "rec": rec, "kl": kl, "mu": ns["mu"], "logvar": ns["logvar"]}


# --- the recipe passes a correct model ----------------------------------------------------------

def test_recipe_passes_the_examples_model_in_float64(tmp_path, monkeypatch):
    report = run_recipe(tmp_path, monkeypatch)["report"]
    assert report.status == "PASS", str(report)
    assert report.dtype == "float64" and max(e.rel_error for e in report.entries
                                             if e.status == "ok") < 1e-13
    assert not report.notes


def test_recipe_passes_a_float32_model_and_says_it_is_a_float32_check(tmp_path, monkeypatch):
    ns = run_recipe(tmp_path, monkeypatch, edits=[("VAE().double()", "VAE().float()")])
    report = ns["report"]
    assert ns["x"].dtype == torch.float32 and ns["mu"].dtype == torch.float32
    assert report.status == "PASS" and report.dtype == "float32", str(report)
    assert "float32 candidate against a float64 fixture" in report.notes[0]
    # a float32 model does not pass at float64's tolerance: the note is not decoration
    assert compare(ns["fixture"], with_terms(ns, None), dtype="float64").status == "FAIL"


def test_only_the_noise_draw_is_patched(tmp_path, monkeypatch):
    ns = run_recipe(tmp_path, monkeypatch)
    assert ns["model"].reparameterize.__func__ is VAE.reparameterize  # the user's sampler ran
    assert torch.randn_like is not None and "patch" not in repr(torch.randn_like)


# --- every planted bug fails and is named, with and without per-example terms ------------------

@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("bug", sorted(CAUSES))
def test_planted_bug_is_named_from_the_loss_alone(tmp_path, monkeypatch, bug, reduction):
    ns = run_recipe(tmp_path, monkeypatch, bug=bug, reduction=reduction)
    report = compare(ns["fixture"], without_terms(ns))
    assert report.status == "FAIL" and "loss" in report.failing, str(report)
    assert len(report.diagnoses) == 1, str(report)
    cause = report.diagnoses[0]
    assert CAUSES[bug] in cause and "equally" not in cause, str(report)
    if bug in ("kl_no_half", "kl_mu"):  # the cause and the formula the code should compute
        assert KL_FORMULA in cause, cause
    if reduction == "mean":  # the published loss sums over the batch: that is named too
        assert "'mean'" in cause, cause
    # the recipe's own hand-over (loss, mu, logvar, grads) names it the same way
    assert CAUSES[bug] in " ".join(ns["report"].diagnoses), str(ns["report"])


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("bug", sorted(CAUSES))
def test_planted_bug_is_named_with_per_example_terms(tmp_path, monkeypatch, bug, reduction):
    ns = run_recipe(tmp_path, monkeypatch, bug=bug, reduction=reduction)
    report = compare(ns["fixture"], with_terms(ns, bug))
    assert report.status == "FAIL", str(report)
    assert any(CAUSES[bug] in d for d in report.diagnoses), str(report)
    assert not any("equally" in d for d in report.diagnoses)


@pytest.mark.parametrize("terms", [False, True], ids=["loss and gradients", "with terms"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("bug", sorted(GRADIENT_CAUSES))
def test_planted_bug_is_named_from_the_encoder_heads_gradients(tmp_path, monkeypatch, bug,
                                                                reduction, terms):
    ns = run_recipe(tmp_path, monkeypatch, bug=bug, reduction=reduction)
    report = compare(ns["fixture"], with_terms(ns, bug) if terms else without_terms(ns))
    assert report.status == "FAIL" and "grad/enc.logvar.W" in report.failing, str(report)
    if bug == "detach_logvar":  # every forward value is right (up to the published batch sum)
        assert not {"mu", "logvar", "rec", "kl"} & set(report.failing), str(report)
        assert ("loss" in report.failing) == (reduction == "mean"), str(report)
    named = [d for d in report.diagnoses if GRADIENT_CAUSES[bug][0] in d]
    assert len(named) == 1 and GRADIENT_CAUSES[bug][1] in named[0], str(report)
    others = [d for d in report.diagnoses if d not in named]  # only the batch sum, if anything
    assert all("summed over the batch" in d for d in others), str(report)
    assert ns["report"].diagnoses == compare(ns["fixture"], {**without_terms(ns), "mu": ns[
        "mu"], "logvar": ns["logvar"]}).diagnoses  # the recipe's own hand-over: the same


def test_the_published_loss_against_a_mean_fixture_is_named_as_the_batch_reduction(
        tmp_path, monkeypatch):
    ns = run_recipe(tmp_path, monkeypatch, reduction="mean")
    for candidate in (without_terms(ns), with_terms(ns, None)):
        report = compare(ns["fixture"], candidate)
        assert "loss" in report.failing and len(report.diagnoses) == 1
        assert "the loss is summed over the batch, B * the fixture's" in report.diagnoses[0]


def test_log_sigma_encoder_passes_through_the_log_sigma_recipe(tmp_path, monkeypatch):
    ns = run_recipe(tmp_path, monkeypatch, bug="log_sigma", edits=[
        ("load_torch(model, fixture, PYTORCH_EXAMPLES_NAMES)",
         "load_torch(model, fixture, PYTORCH_EXAMPLES_NAMES, logvar_head='log_sigma')"),
        ('"grads": torch_grads(model, PYTORCH_EXAMPLES_NAMES)})',
         '"grads": torch_grads(model, PYTORCH_EXAMPLES_NAMES)}, logvar_head="log_sigma")')])
    assert ns["report"].status == "PASS", str(ns["report"])
    assert "logvar_head='log_sigma'" in ns["report"].notes[0]


# --- partial hand-overs are INCOMPLETE, never PASS ----------------------------------------------

def test_every_partial_hand_over_is_incomplete(tmp_path, monkeypatch):
    ns = run_recipe(tmp_path, monkeypatch)
    fixture, model, loss = ns["fixture"], ns["model"], ns["loss"]
    grads = torch_grads(model, PYTORCH_EXAMPLES_NAMES)
    named = {name: p.grad for name, p in model.named_parameters()}  # fc1.weight, ...
    one_short = {k: v for k, v in grads.items() if k != "dec.out.b"}
    cases = {"loss only": {"loss": loss},
             "gradients only": {"grads": grads},
             "named_parameters() gradients": {"loss": loss, "grads": named},
             "one gradient short": {"loss": loss, "grads": one_short},
             "terms without gradients": {"loss": loss, "mu": ns["mu"], "logvar": ns["logvar"]}}
    for what, candidate in cases.items():
        report = compare(fixture, candidate)
        assert report.status == "INCOMPLETE", f"{what}:\n{report}"
        assert report.verdict().startswith("INCOMPLETE: nothing compared disagrees")
    assert compare(fixture, {"loss": loss, "grads": grads}).status == "PASS"


# --- the pytest assertion ---------------------------------------------------------------

def test_assert_matches_fixture(tmp_path, monkeypatch):
    ns = run_recipe(tmp_path, monkeypatch)
    report = assert_matches_fixture("case.npz", without_terms(ns))  # a path works too
    assert report.status == "PASS"
    with pytest.raises(AssertionError, match=r"\(INCOMPLETE\)") as info:
        assert_matches_fixture(ns["fixture"], {"loss": ns["loss"]})
    assert "10 gradients missing" in str(info.value)
    bad = run_recipe(tmp_path, monkeypatch, bug="kl_sign")
    with pytest.raises(AssertionError, match=r"\(FAIL\)") as info:
        assert_matches_fixture(bad["fixture"], without_terms(bad))
    assert "likely cause: loss = sum_b rec_b - sum_b kl_b" in str(info.value)


# --- the helpers' errors ---------------------------------------------------------------------

def test_load_torch_names_what_is_wrong():
    fixture = make_fixture(CFG, BATCH, seed=0)
    model = VAE(INPUT_DIM, HIDDEN, LATENT).double()
    short = {k: v for k, v in PYTORCH_EXAMPLES_NAMES.items() if k != "fc4"}
    with pytest.raises(ValueError, match=r"no model layer is mapped to \['dec.out'\]"):
        load_torch(model, fixture, short)
    with pytest.raises(ValueError, match="has no submodule 'fc9'"):
        load_torch(model, fixture, {**short, "fc9": "dec.out"})
    with pytest.raises(ValueError, match=r"fc1.weight has shape \(8, 20\)"):
        load_torch(model, make_fixture(VAEConfig(input_dim=INPUT_DIM, latent_dim=LATENT,
                                                 encoder_hidden=(7,), decoder_hidden=(HIDDEN,)),
                                       BATCH, seed=0))
    with pytest.raises(ValueError, match="call loss.backward"):
        torch_grads(load_torch(model, fixture))


def test_load_torch_writes_the_transpose_and_torch_grads_reads_it_back():
    fixture = make_fixture(CFG, BATCH, seed=0)
    model = load_torch(VAE(INPUT_DIM, HIDDEN, LATENT).double(), fixture)
    assert np.array_equal(model.fc21.weight.detach().numpy(), fixture["param/enc.mu.W"].T)
    half = load_torch(VAE(INPUT_DIM, HIDDEN, LATENT).double(), fixture, logvar_head="log_sigma")
    assert np.array_equal(half.fc22.bias.detach().numpy(), 0.5 * fixture["param/enc.logvar.b"])
    for p in model.parameters():
        p.grad = p.detach().clone()  # a gradient equal to the parameter: easy to check
    grads = torch_grads(model)
    assert np.array_equal(grads["enc.0.W"], fixture["param/enc.0.W"])  # (in, out) again


def test_torch_noise_warns_about_a_model_that_never_draws_and_checks_shapes():
    with pytest.warns(NoiseDrawWarning, match="never called torch.randn_like"):
        with torch_noise(np.zeros((BATCH, LATENT))):
            pass
    with torch_noise(np.ones((BATCH, LATENT))) as draws:
        eps = torch.randn_like(torch.zeros(BATCH, LATENT, dtype=torch.float32))
    assert draws == [(BATCH, LATENT)] and eps.dtype == torch.float32 and bool((eps == 1).all())
    with pytest.raises(ValueError, match=r"asked for shape \(2, 3\)"):
        with torch_noise(np.zeros((BATCH, LATENT))):
            torch.randn_like(torch.zeros(2, 3))
