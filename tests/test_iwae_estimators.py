"""The three estimators of the IWAE encoder's gradient (vae_numpy.iwae, estimator="iwae" |
"stl" | "dreg"): each is the exact gradient of its surrogate function (finite differences of
the surrogate written out here, the stop-gradients as held-fixed copies), DReG = STL at K = 1,
DReG is unbiased for the IWAE gradient and STL is not (paired Monte Carlo, with teeth), both
vanish draw by draw when q is the true posterior, and all three equal PyTorch's autograd with
.detach() where the stop-gradients go (tests/torch_iwae.py)."""
import itertools

import numpy as np
import pytest

import vae_numpy as vn
from vae_numpy import iwae, model
from vae_numpy import linear_gaussian as lg
from vae_numpy.gaussian import log_normal_diag, log_standard_normal
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, check_params, failures, rel_error
from vae_numpy.likelihoods import LIKELIHOODS, get_likelihood

from test_iwae import B, D, J, make_case  # the IWAE gradient tests' small cases
ESTIMATORS = ("iwae", "stl", "dreg")
ENCODER = ("enc.",)  # parameter-name prefix of the encoder: the only gradients that differ


def is_encoder(name):
    return name.startswith(ENCODER)


# --- (i) each estimator is the exact gradient of its surrogate ------------------------------
#
# The surrogates, with stop(.) a copy held fixed at the point where the gradient is taken:
#     log v_k = log p(x|z_k) + log p(z_k) - log N(z_k; stop(mu), stop(logvar))
#     F_STL   = -reduce_b sum_k stop(s_kb) log v_kb
#     F_DReG  = -reduce_b sum_k [stop(s_kb**2) log v_kb(encoder; stop(decoder))
#                                + stop(s_kb) log v_kb(stop(encoder); decoder)]
# written here from the model's forward pieces, with log q as the density at z (the z - mu
# form; vae_numpy's backward never evaluates it).

def log_v(params, x, eps, cfg, held):
    """log p(x|z_k) + log p(z_k) - log N(z_k; held mu, held logvar), (K, B)."""
    (mu, logvar), _ = model.encoder_forward(params, x, cfg)
    z = mu + np.exp(0.5 * logvar) * eps  # (K, B, J)
    K = eps.shape[0]
    outs, _ = model.decoder_forward(params, z.reshape(K * B, J), cfg)
    x_k = np.broadcast_to(x, (K,) + x.shape).reshape(K * B, D)
    log_px_z = -get_likelihood(cfg.likelihood).nll(x_k, outs, cfg.sigma).reshape(K, B)
    return log_px_z + log_standard_normal(z) - log_normal_diag(z, held["mu"], held["logvar"])


def held_copies(params, x, eps, cfg, reduction):
    """stop(mu), stop(logvar), stop(s) and a copy of every parameter, at the current params."""
    loss, _, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction)
    s = np.exp(terms["log_weights"] - terms["log_weights"].max(axis=0))
    return {"mu": terms["mu"].copy(), "logvar": terms["logvar"].copy(),
            "s": s / s.sum(axis=0), "params": {k: v.copy() for k, v in params.items()}}


def surrogate(estimator, params, x, eps, cfg, reduction, held):
    reduce = np.mean if reduction == "mean" else np.sum
    s = held["s"]
    if estimator == "stl":
        return -reduce(np.sum(s * log_v(params, x, eps, cfg, held), axis=0))
    fixed = held["params"]
    encoder_moves = {k: (v if is_encoder(k) else fixed[k]) for k, v in params.items()}
    decoder_moves = {k: (fixed[k] if is_encoder(k) else v) for k, v in params.items()}
    return -reduce(np.sum(s**2 * log_v(encoder_moves, x, eps, cfg, held)
                          + s * log_v(decoder_moves, x, eps, cfg, held), axis=0))


# With K = 3 at least two examples have no normalized weight above this, so s_k and s_k**2
# differ and the checks see the weighting (as in tests/test_iwae.py).
MAX_WEIGHT = 0.9
SURROGATE_CONFIGS = list(itertools.product(["bernoulli", "gaussian_learned"],
                                           [("tanh", (5,)), ("softplus", (5, 4))],
                                           ["mean", "sum"], [1, 3]))


@pytest.mark.parametrize("estimator", ["stl", "dreg"])
@pytest.mark.parametrize("likelihood, net, reduction, k", SURROGATE_CONFIGS)
def test_stl_and_dreg_are_the_exact_gradients_of_their_surrogates(estimator, likelihood, net,
                                                                   reduction, k):
    activation, hidden = net
    cfg, params, x, eps = make_case(likelihood, activation, hidden, k)
    held = held_copies(params, x, eps, cfg, reduction)
    if k > 1:
        assert np.sum(held["s"].max(axis=0) <= MAX_WEIGHT) >= 2
    _, grads, _ = iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction, estimator)
    errors = check_params(lambda: surrogate(estimator, params, x, eps, cfg, reduction, held),
                          params, grads, entries=None)
    assert not failures(errors, TOLERANCE_FLOAT64), failures(errors, TOLERANCE_FLOAT64)


def test_the_surrogate_check_tells_the_estimators_apart():
    """Teeth, at K = 3: the IWAE gradient fails STL's surrogate, STL's fails DReG's (the
    missing square), and each estimator's encoder gradient differs from the others'."""
    cfg, params, x, eps = make_case("bernoulli", "tanh", (5,), 3)
    held = held_copies(params, x, eps, cfg, "mean")
    grads = {e: iwae.iwae_loss_and_grads(params, x, eps, cfg, "mean", e)[1] for e in ESTIMATORS}
    for wrong, surrogate_of in (("iwae", "stl"), ("stl", "dreg")):
        errors = check_params(lambda: surrogate(surrogate_of, params, x, eps, cfg, "mean", held),
                              params, grads[wrong], keys=["enc.mu.b", "enc.logvar.b"],
                              entries=None)
        assert min(errors.values()) > 100 * TOLERANCE_FLOAT64, (wrong, surrogate_of, errors)


@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
def test_loss_terms_and_decoder_gradient_are_iwae_for_every_estimator(likelihood):
    """Bit for bit: only the encoder's gradient depends on the estimator."""
    cfg, params, x, eps = make_case(likelihood, "relu", (5, 4), 3)
    loss, grads, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg)
    for estimator in ESTIMATORS:
        loss_e, grads_e, terms_e = iwae.iwae_loss_and_grads(params, x, eps, cfg, "mean",
                                                            estimator)
        assert loss_e == loss and list(grads_e) == list(params)
        assert all(np.array_equal(terms_e[k], terms[k]) for k in terms)
        assert all(np.array_equal(grads_e[k], grads[k]) for k in params if not is_encoder(k))
        if estimator != "iwae":
            assert not np.allclose(grads_e["enc.mu.b"], grads["enc.mu.b"], rtol=1e-3)


# --- (ii) DReG = STL at K = 1 -----------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
def test_dreg_equals_stl_bit_for_bit_at_k1(likelihood, reduction):
    """With one sample s = 1 exactly, so s**2 = s and the two estimators are one."""
    cfg, params, x, eps = make_case(likelihood, "softplus", (5, 4), 1)
    _, stl, _ = iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction, "stl")
    _, dreg, _ = iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction, "dreg")
    for k in params:
        assert np.array_equal(dreg[k], stl[k]), k


# --- (iii), (iv) unbiasedness of DReG, bias of STL: paired Monte Carlo -----------------------
#
# A stated small model with q away from the posterior: the linear-Gaussian VAE of
# linear_gaussian_case (D = 5, J = 2, sigma = 0.7, orthogonal decoder rows of norms 2 and 1),
# its encoder the exact posterior with the mean shifted by +1 and logvar by +1 (q wider than
# p(z|x) and off centre), 400 examples drawn from the model, K = 5, reduction "mean". Each draw
# is one batch gradient of all 400 examples under fresh eps, the same eps for every estimator
# (paired: the SE is that of the difference). Checked: the 24 encoder entries.

Z_BOUND = 4   # |mean difference| <= 4 paired SE: a correct estimator fails w.p. ~6e-5 per entry
Z_BIAS = 6    # STL's bias must exceed 6 paired SE
DRAWS = 400   # enough that a 1% error (DReG * 1.01) is > 4 SE
ENCODER_PARAMS = ("enc.mu.W", "enc.mu.b", "enc.logvar.W", "enc.logvar.b")


def linear_gaussian_case(mean_shift, logvar_shift, n=400, seed=0):
    D_, J_, sigma = 5, 2, 0.7
    rng = np.random.default_rng(seed)
    W = lg.orthogonal_decoder(J_, D_, [2.0, 1.0], rng)
    b = rng.standard_normal(D_)
    enc_W, enc_b, logvar_b = lg.posterior_encoder(W, b, sigma)
    params = lg.vae_params(W, b, enc_W, enc_b + mean_shift, logvar_b + logvar_shift)
    x = lg.sample_data(n, W, b, sigma, rng)
    return lg.linear_gaussian_config(D_, J_, sigma), params, x, rng


def encoder_vector(grads):
    return np.concatenate([grads[k].ravel() for k in ENCODER_PARAMS])


@pytest.fixture(scope="module")
def paired_draws():
    """{estimator: (DRAWS, 24) encoder gradients}, the same eps for the three estimators."""
    cfg, params, x, rng = linear_gaussian_case(1.0, 1.0)
    draws = {e: [] for e in ESTIMATORS}
    for _ in range(DRAWS):
        eps = rng.standard_normal((5, len(x), 2))
        for e in ESTIMATORS:
            draws[e].append(encoder_vector(iwae.iwae_loss_and_grads(params, x, eps, cfg,
                                                                    "mean", e)[1]))
    return {e: np.array(g) for e, g in draws.items()}


def paired_z(a, b):
    """Per-entry mean of a - b over the draws, in paired standard errors."""
    d = a - b
    return d.mean(axis=0) / (d.std(axis=0, ddof=1) / np.sqrt(len(d)))


def test_dreg_is_unbiased_for_the_iwae_gradient(paired_draws):
    """Every entry within 4 paired SE (measured 3.7 SE at the worst of the 24 entries; 2.8 in
    a one-off run of 3,000 draws)."""
    z = paired_z(paired_draws["dreg"], paired_draws["iwae"])
    assert np.abs(z).max() <= Z_BOUND, f"DReG - IWAE up to {np.abs(z).max():.1f} paired SE"


def test_the_unbiasedness_check_fails_a_one_percent_error(paired_draws):
    """Teeth: DReG * 1.01 fails the same check (measured 6.5 SE, on d/d enc.mu.b[0])."""
    z = paired_z(1.01 * paired_draws["dreg"], paired_draws["iwae"])
    assert np.abs(z).max() > Z_BOUND, f"1.01 * DReG passes: {np.abs(z).max():.1f} SE"


def test_stl_is_biased_for_k_above_one(paired_draws):
    """s instead of s**2 (which is STL) fails the unbiasedness check, by far more than 6 paired
    SE: the bias E[sum_k s_k score_k] is not 0 for K = 5. Measured on d loss / d enc.mu.b[0]:
    mean(STL - IWAE) = 1.724 +- 0.003 (546 paired SE), against a mean IWAE gradient of 4.476
    (STL 6.200, DReG 4.473): STL overstates that entry by 39%."""
    z = paired_z(paired_draws["stl"], paired_draws["iwae"])
    assert np.abs(z).max() > Z_BIAS, f"STL - IWAE at most {np.abs(z).max():.1f} paired SE"


# --- (v) the exact case: q is the true posterior ------------------------------------------

# With q = p(z|x), log v_k = log p(x, z_k) - log p(z_k|x) = log p(x) for every z_k, so its
# derivative along the sample is 0: STL's and DReG's encoder gradients are 0 for every draw.
# In floating point the decoder, prior and q terms of d log v / dz cancel to round-off of
# their size (measured 3e-15 relative to the IWAE gradient of the same draw).
EXACT_ZERO = 1e-12


@pytest.mark.parametrize("k", [1, 3, 5])
def test_stl_and_dreg_vanish_for_every_draw_when_q_is_the_posterior(k):
    cfg, params, x, rng = linear_gaussian_case(0.0, 0.0, n=50)
    for _ in range(10):
        eps = rng.standard_normal((k, len(x), 2))
        iwae_grad = encoder_vector(iwae.iwae_loss_and_grads(params, x, eps, cfg, "sum")[1])
        scale = np.abs(iwae_grad).max()
        assert scale > 1.0, "the IWAE gradient is not 0 draw by draw"
        for estimator in ("stl", "dreg"):
            g = encoder_vector(iwae.iwae_loss_and_grads(params, x, eps, cfg, "sum",
                                                        estimator)[1])
            assert np.abs(g).max() <= EXACT_ZERO * scale, (estimator, np.abs(g).max(), scale)


# --- bad input ------------------------------------------------------------------------------

def test_an_unknown_estimator_is_refused():
    cfg, params, x, eps = make_case("bernoulli", "tanh", (5,), 2)
    for call in (iwae.iwae_loss_and_grads, iwae._iwae_step):
        with pytest.raises(ValueError, match=r"estimator must be one of \('iwae', 'stl', "
                                             r"'dreg'\).*got 'STL'"):
            call(params, x, eps, cfg, "mean", "STL")


# --- (vi) an independent PyTorch implementation (tests/torch_iwae.py) ---------------------------

# As in tests/test_iwae.py: two float64 implementations differ by round-off (torch's
# continuous-Bernoulli normalizer loses ~4 digits near logit 0: 2.7e-12 worst measured there).
TORCH_REL_TOL = 1e-10
TORCH_CONFIGS = list(itertools.product(ESTIMATORS, sorted(LIKELIHOODS), ["tanh", "relu"],
                                       [(), (5, 4)], [1, 3, 8]))


@pytest.fixture
def torch_iwae():
    pytest.importorskip("torch", reason="the PyTorch comparison needs torch==2.13.0")
    import torch_iwae
    return torch_iwae


@pytest.mark.torch
@pytest.mark.parametrize("estimator, likelihood, activation, hidden, k", TORCH_CONFIGS)
def test_every_estimator_equals_pytorch_with_detach(torch_iwae, estimator, likelihood,
                                                    activation, hidden, k):
    cfg, params, x, eps = make_case(likelihood, activation, hidden, k)
    for reduction in ("mean", "sum"):
        loss, grads, terms = iwae.iwae_loss_and_grads(params, x, eps, cfg, reduction, estimator)
        t_loss, t_grads, t_bound, _ = torch_iwae.iwae_loss_and_grads(params, x, eps, cfg,
                                                                     reduction, estimator)
        errors = {"loss": rel_error(loss, t_loss), "iw_bound": rel_error(terms["iw_bound"],
                                                                         t_bound)}
        errors.update({f"grad/{n}": rel_error(grads[n], t_grads[n]) for n in params})
        bad = {n: f"{e:.1e}" for n, e in errors.items() if not e <= TORCH_REL_TOL}
        assert not bad, f"{estimator} {likelihood} {activation} {hidden} K={k} {reduction}: {bad}"


@pytest.mark.torch
def test_the_torch_comparison_tells_the_estimators_apart(torch_iwae):
    """Teeth: at K = 3 torch's DReG differs from vae_numpy's STL, and torch's STL from
    vae_numpy's IWAE, far above the tolerance."""
    cfg, params, x, eps = make_case("bernoulli", "tanh", (5,), 3)
    for ours, theirs in (("stl", "dreg"), ("iwae", "stl")):
        grads = iwae.iwae_loss_and_grads(params, x, eps, cfg, "mean", ours)[1]
        t_grads = torch_iwae.iwae_loss_and_grads(params, x, eps, cfg, "mean", theirs)[1]
        assert rel_error(grads["enc.mu.b"], t_grads["enc.mu.b"]) > 1e-3, (ours, theirs)
