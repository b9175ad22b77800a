r"""The IWAE estimators' mistakes, named (vae_numpy.crosscheck.estimator_causes).

Each mistake is planted in a PyTorch IWAE written here (autograd, .detach() where the
stop-gradients go, log q as the density at z), run on an IWAE fixture's weights, x and eps, and
handed to ``compare(..., estimator=...)``: the report must FAIL and name that mistake, and only
it. The correct STL and DReG of the same code PASS. The predictions themselves are checked in
NumPy first: the three estimators' own predictions are the fixture's gradients, and the
predictions of the mistakes are what the module docstring's algebra says (Q + S = (0, 1/2)).
"""
import math

import numpy as np
import pytest

import vae_numpy as vn
from vae_numpy.crosscheck import compare, fixture_config, fixture_params, make_fixture
from vae_numpy.crosscheck import estimator_causes as ec
from vae_numpy.gradcheck import rel_error
from vae_numpy.model import encoder_backward, encoder_forward, reduction_weights

CFG = vn.VAEConfig(input_dim=12, latent_dim=3, encoder_hidden=(8,), decoder_hidden=(8,))
K = 5


def iwae_fixture(reduction="mean", seed=0):
    return make_fixture(CFG, 4, seed, reduction=reduction, objective="iwae", k=K)


def fixture_predictions(fixture):
    cfg, reduction = fixture_config(fixture)
    params = fixture_params(fixture)
    enc = [k for k in params if k.startswith("enc.")]
    grads = {"iwae": {k: fixture[f"grad/{k}"] for k in enc}}
    grads.update({e: {k: fixture[f"grad_{e}/{k}"] for k in enc} for e in ("stl", "dreg")})
    return ec.predictions(grads, params, fixture["x"], fixture["eps"], fixture["log_weights"],
                          cfg, reduction), params


# --- the predictions, in NumPy -----------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_log_q_path_and_score_add_up_to_the_eps_forms_constant(reduction):
    r"""Q(a) + S(a) = sum_k a_k (0, 1/2): nothing to mu, a_k / 2 to each logvar, through the
    encoder's backward (the identity behind the IWAE gradient's direct 1/2)."""
    fixture = iwae_fixture(reduction)
    cfg, _ = fixture_config(fixture)
    params = fixture_params(fixture)
    for weights in (lambda s: s, lambda s: s**2):
        Q, S = ec.log_q_terms(params, fixture["x"], fixture["eps"], fixture["log_weights"], cfg,
                              reduction, weights)
        lw = fixture["log_weights"]
        s = np.exp(lw - lw.max(axis=0))
        s /= s.sum(axis=0)
        (mu, _), cache = encoder_forward(params, fixture["x"], cfg)
        dper = -reduction_weights(4, reduction, mu.dtype)[:, None]
        want = {}
        encoder_backward(np.zeros_like(mu), dper * 0.5 * weights(s).sum(axis=0)[:, None]
                         * np.ones_like(mu), cache, cfg, want)
        for k in want:
            assert rel_error(Q[k] + S[k], want[k]) < 1e-13, k


def test_the_predictions_of_the_three_estimators_are_the_fixtures_gradients():
    fixture = iwae_fixture()
    predicted, params = fixture_predictions(fixture)
    for name in ("iwae", "stl", "dreg"):
        key = "grad/" if name == "iwae" else f"grad_{name}/"
        for k in predicted[name]:
            np.testing.assert_array_equal(predicted[name][k], fixture[key + k])


def test_the_mistakes_predictions_differ_from_each_other_and_from_the_estimators():
    r"""On the default fixture (K = 5, weights far from one-hot) every prediction is at least
    1e-2 from every other in some tensor: the diagnoses cannot be confused at 1e-10."""
    predicted, _ = fixture_predictions(iwae_fixture())
    names = list(predicted)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            worst = max(rel_error(predicted[a][k], predicted[b][k]) for k in predicted[a])
            assert worst > 1e-2, (a, b, worst)


def test_numpy_candidates_built_from_the_predictions_are_named():
    r"""A candidate whose encoder gradient is a mistake's prediction (decoder and loss right)
    fails and is diagnosed with that mistake's sentence alone, for every estimator."""
    fixture = iwae_fixture()
    predicted, params = fixture_predictions(fixture)
    for estimator, mistakes in ec.MISTAKES.items():
        for mistake, sentence in mistakes:
            grads = {k: fixture[f"grad/{k}"] for k in params}
            grads.update(predicted[mistake])
            report = compare(fixture, {"loss": fixture["loss"], "grads": grads},
                             estimator=estimator)
            assert report.status == "FAIL"
            assert report.diagnoses == [sentence], (estimator, mistake, report.diagnoses)


def test_no_diagnosis_when_the_encoder_agrees_or_matches_nothing_known():
    fixture = iwae_fixture()
    _, params = fixture_predictions(fixture)
    grads = {k: fixture[f"grad_dreg/{k}"] if k.startswith("enc.") else fixture[f"grad/{k}"]
             for k in params}
    assert compare(fixture, {"loss": fixture["loss"], "grads": grads},
                   estimator="dreg").diagnoses == []
    grads = {k: 1.1 * v for k, v in grads.items()}
    report = compare(fixture, {"loss": fixture["loss"], "grads": grads}, estimator="dreg")
    assert report.status == "FAIL" and report.diagnoses == []


# --- the mistakes, planted in PyTorch ----------------------------------------------------------

TORCH_REASON = "the planted mistakes are written in PyTorch: pip install vae_numpy[torch]"


def torch_iwae(fixture, estimator, mistake=None, form="surrogate"):
    r"""A PyTorch STL/DReG IWAE (relu MLPs, Bernoulli decoder, the fixture's layout h @ W + b)
    with an optional planted mistake, run on the fixture; returns the candidate dict.

    form "surrogate": the encoder's gradient from ``-mean_b sum_k stop(a_k) log w_k`` with
      a = s (STL) or s**2 (DReG), the decoder's from -L_K.
    form "hook": one backward of ``-mean_b sum_k stop(s_k) log w_k``, with a hook on z that
      multiplies its gradient by s_k (DReG's second factor), the way many DReG codes do it.
    mistake: None; "not_squared" (DReG with the weights s); "no_stop" (log q = log N(z; mu,
      std)); "stop_on_z" (log q = log N(stop(z); mu, std)).
    """
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    Normal, Bernoulli = torch.distributions.Normal, torch.distributions.Bernoulli
    p = {k: torch.tensor(v, requires_grad=True) for k, v in fixture_params(fixture).items()}
    x, eps = torch.tensor(fixture["x"]), torch.tensor(fixture["eps"])     # (B, D), (K, B, J)
    h = torch.relu(x @ p["enc.0.W"] + p["enc.0.b"])
    mu, logvar = h @ p["enc.mu.W"] + p["enc.mu.b"], h @ p["enc.logvar.W"] + p["enc.logvar.b"]
    std = torch.exp(0.5 * logvar)
    z = mu + std * eps                                                    # (K, B, J)
    logits = torch.relu(z @ p["dec.0.W"] + p["dec.0.b"]) @ p["dec.out.W"] + p["dec.out.b"]
    log_px_z = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).sum(-1)   # (K, B)
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(-1)
    q = Normal(mu, std) if mistake in ("no_stop", "stop_on_z") else Normal(mu.detach(),
                                                                           std.detach())
    log_q = q.log_prob(z.detach() if mistake == "stop_on_z" else z).sum(-1)
    log_w = log_px_z + log_pz - log_q
    s = torch.softmax(log_w, dim=0).detach()
    loss = -(torch.logsumexp(log_w, dim=0) - math.log(eps.shape[0])).mean()
    enc = [k for k in p if k.startswith("enc.")]
    dec = [k for k in p if k.startswith("dec.")]
    squared = estimator == "dreg" and mistake != "not_squared"
    if form == "surrogate":
        a = s**2 if squared else s
        g_enc = torch.autograd.grad(-(a * log_w).sum(0).mean(), [p[k] for k in enc],
                                    retain_graph=True)
        g_dec = torch.autograd.grad(loss, [p[k] for k in dec])
        grads = dict(zip(enc + dec, g_enc + g_dec))
    else:
        if squared:
            z.register_hook(lambda g: g * s[..., None])
        (-(s * log_w).sum(0).mean()).backward()
        grads = {k: t.grad for k, t in p.items()}
    return {"loss": loss, "grads": grads, "log_weights": log_w, "mu": mu, "logvar": logvar}


@pytest.mark.torch
@pytest.mark.parametrize("estimator,form", [("stl", "surrogate"), ("dreg", "surrogate"),
                                            ("dreg", "hook")])
def test_correct_torch_stl_and_dreg_pass(estimator, form):
    fixture = iwae_fixture()
    report = compare(fixture, torch_iwae(fixture, estimator, form=form), estimator=estimator)
    assert report.passed, str(report)


PLANTED = [
    # (estimator, mistake, form, the mistake of ec.MISTAKES it must be named as)
    ("dreg", "not_squared", "surrogate", "stl"),
    ("stl", "no_stop", "surrogate", "iwae"),
    ("dreg", "no_stop", "surrogate", "dreg_no_stop"),
    ("dreg", "no_stop", "hook", "dreg_no_stop_hook"),
    ("stl", "stop_on_z", "surrogate", "stl_stop_on_z"),
    ("dreg", "stop_on_z", "surrogate", "dreg_stop_on_z"),
    ("dreg", "stop_on_z", "hook", "dreg_stop_on_z_hook"),
]


@pytest.mark.torch
@pytest.mark.parametrize("estimator,mistake,form,named", PLANTED)
def test_a_planted_torch_mistake_fails_and_is_named(estimator, mistake, form, named):
    fixture = iwae_fixture()
    report = compare(fixture, torch_iwae(fixture, estimator, mistake, form), estimator=estimator)
    assert report.status == "FAIL"
    assert not [e for e in report.failing if not e.startswith("grad/enc.")], str(report)
    sentence = dict(ec.MISTAKES[estimator])[named]
    assert report.diagnoses == [sentence], str(report)


@pytest.mark.torch
def test_a_dreg_candidate_compared_as_iwae_is_told_to_pass_estimator_dreg():
    fixture = iwae_fixture()
    report = compare(fixture, torch_iwae(fixture, "dreg"))
    assert report.status == "FAIL"
    assert report.diagnoses == [dict(ec.MISTAKES["iwae"])["dreg"]]
    assert "estimator='dreg'" in report.diagnoses[0]


# --- the DReG recipe of docs/crosscheck.md, as written and with the table's edits --------------

DOC = __import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "crosscheck.md"
RECIPE_EDITS = {   # the table's second column -> the mistake it must be named as
    "no hook": ([("    z.register_hook(lambda g: g * s[..., None])       "
                  "# DReG: z's path weighted by s_k twice\n", "")], "stl"),
    "no stop in log q": ([("Normal(mu.detach(), std.detach()).log_prob(z)",
                           "Normal(mu, std).log_prob(z)")], "dreg_no_stop_hook"),
    "stop on z": ([("Normal(mu.detach(), std.detach()).log_prob(z)",
                    "Normal(mu, std).log_prob(z.detach())")], "dreg_stop_on_z_hook"),
}


def run_dreg_recipe(tmp_path, monkeypatch, edits=()):
    import re
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- recipe: pytorch-dreg -->\n```python\n(.*?)```", text, re.S)
    assert match, "docs/crosscheck.md has no '<!-- recipe: pytorch-dreg -->' python block"
    code = match.group(1)
    for old, new in edits:
        assert old in code, f"the recipe no longer has {old!r}"
        code = code.replace(old, new)
    from vae_numpy.crosscheck import write_fixture
    write_fixture(tmp_path / "iwae.npz", make_fixture(CFG, 4, 0, objective="iwae", k=K))
    monkeypatch.chdir(tmp_path)
    namespace = {"print": lambda *args: None}
    exec(compile(code, f"{DOC}#recipe-pytorch-dreg", "exec"), namespace)
    return namespace["report"]


@pytest.mark.torch
def test_the_dreg_recipe_of_the_docs_passes(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason=TORCH_REASON)
    report = run_dreg_recipe(tmp_path, monkeypatch)
    assert report.passed, str(report)
    assert max(e.rel_error for e in report.entries if e.status == "ok") < 1e-13


@pytest.mark.torch
@pytest.mark.parametrize("edit", list(RECIPE_EDITS))
def test_the_dreg_recipe_with_a_mistake_fails_and_names_it(tmp_path, monkeypatch, edit):
    pytest.importorskip("torch", reason=TORCH_REASON)
    edits, named = RECIPE_EDITS[edit]
    report = run_dreg_recipe(tmp_path, monkeypatch, edits)
    assert report.status == "FAIL"
    assert report.diagnoses == [dict(ec.MISTAKES["dreg"])[named]], str(report)
