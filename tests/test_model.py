"""The whole model: every parameter's gradient against finite differences, the loss's
composition, dtypes, and clear errors for bad input."""
import itertools
import pathlib

import numpy as np
import pytest

import vae_numpy as vn
from vae_numpy import model
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, check_params, check_vjp, failures
from vae_numpy.layers import ACTIVATIONS
from vae_numpy.likelihoods import LIKELIHOODS

D, J, B = 6, 3, 4  # small, so the finite-difference loop over every parameter is quick
BETA = 0.7  # != 1, so a gradient that ignores beta fails
KINKED = ("relu", "leaky_relu")
# ReLU pre-activations stay this far from 0: a step h = 1e-5 in any parameter moves a
# pre-activation by at most ~1e-5 * (sum of |inputs|) ~ 1e-4, so no kink is crossed.
KINK_MARGIN = 1e-3
FLOAT32_RTOL = 1e-4  # float32 round-off (6e-8) grown through a few layers and sums over D


def make_case(likelihood, activation, hidden, seed=0):
    cfg = vn.VAEConfig(input_dim=D, latent_dim=J, encoder_hidden=hidden,
                       decoder_hidden=hidden[::-1], activation=activation,
                       likelihood=likelihood, beta=BETA, sigma=0.8)
    rng = np.random.default_rng(seed)
    params = vn.init_params(cfg, rng)
    if likelihood == "bernoulli":
        x = (rng.random((B, D)) < 0.5).astype(float)
    elif likelihood == "continuous_bernoulli":
        x = rng.random((B, D))
    else:
        x = rng.standard_normal((B, D))
    eps = rng.standard_normal((B, J))
    return cfg, params, x, eps


def min_abs_preactivation(params, x, eps, cfg):
    """Smallest |a| over every kinked hidden unit (the kink is at a = 0)."""
    (mu, logvar), (enc_hidden, _, _) = model.encoder_forward(params, x, cfg)
    z = mu + np.exp(logvar / 2) * eps
    _, (dec_hidden, _) = model.decoder_forward(params, z, cfg)
    return min(np.abs(act_cache).min() for _, act_cache in enc_hidden + dec_hidden)


def case_away_from_kinks(likelihood, activation, hidden):
    for seed in range(20):  # deterministic: the first seed whose units are all off the kink
        case = make_case(likelihood, activation, hidden, seed)
        if activation not in KINKED or min_abs_preactivation(*case[1:], case[0]) > KINK_MARGIN:
            return case
    raise AssertionError("no seed kept every ReLU pre-activation off the kink")


# every likelihood x every activation (identity included) x 1-2 hidden layers x 2 reductions
CONFIGS = list(itertools.product(sorted(LIKELIHOODS), sorted(ACTIVATIONS),
                                 [(5,), (5, 4)], ["mean", "sum"]))


def test_the_readme_counts_these_configurations():
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    claim = (f"every parameter gradient of {len(CONFIGS)} configurations ({len(LIKELIHOODS)} "
             f"likelihoods x {len(ACTIVATIONS)} activations x 1-2 hidden layers x 2 reductions")
    assert claim in readme


@pytest.mark.parametrize("likelihood, activation, hidden, reduction", CONFIGS)
def test_every_parameter_gradient_matches_finite_differences(likelihood, activation, hidden,
                                                             reduction):
    cfg, params, x, eps = case_away_from_kinks(likelihood, activation, hidden)
    _, grads, _ = vn.loss_and_grads(params, x, eps, cfg, reduction)
    assert list(grads) == list(params)
    errors = check_params(lambda: vn.loss_and_grads(params, x, eps, cfg, reduction)[0],
                          params, grads, entries=None)
    assert not failures(errors, TOLERANCE_FLOAT64), failures(errors, TOLERANCE_FLOAT64)


def test_free_bits_gradient_matches_finite_differences():
    cfg, params, x, eps = case_away_from_kinks("bernoulli", "tanh", (5,))
    _, _, terms = vn.loss_and_grads(params, x, eps, cfg)
    per_dim = (0.5 * (terms["mu"] ** 2 + np.exp(terms["logvar"]) - 1 - terms["logvar"])).mean(0)
    low, mid = np.sort(per_dim)[:2]
    floor = float(low + mid) / 2  # one dimension below the floor, the others above (no kink)
    assert (per_dim < floor).any() and (per_dim > floor).any()
    _, grads, terms = vn.loss_and_grads(params, x, eps, cfg, free_bits=floor)
    errors = check_params(lambda: vn.loss_and_grads(params, x, eps, cfg, free_bits=floor)[0],
                          params, grads, entries=None)
    assert not failures(errors), failures(errors)
    expected = np.maximum(per_dim, floor).sum()
    np.testing.assert_allclose(terms["kl_objective"].mean(), expected, rtol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
def test_loss_is_reduced_rec_plus_beta_kl_exactly(likelihood, reduction):
    cfg, params, x, eps = make_case(likelihood, "relu", (5,))
    loss, _, terms = vn.loss_and_grads(params, x, eps, cfg, reduction)
    per_example = terms["rec"] + BETA * terms["kl"]
    assert loss == (per_example.mean() if reduction == "mean" else per_example.sum())
    assert terms["rec"].shape == terms["kl"].shape == (B,)


@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
def test_loss_terms_is_the_forward_of_loss_and_grads(likelihood):
    """loss_terms has its own copy of the forward; it must give the same rec and kl, bit for bit."""
    cfg, params, x, eps = make_case(likelihood, "relu", (5,))
    _, _, terms = vn.loss_and_grads(params, x, eps, cfg)
    rec, kl = vn.loss_terms(params, x, eps, cfg)
    np.testing.assert_array_equal(rec, terms["rec"])
    np.testing.assert_array_equal(kl, terms["kl"])


def test_terms_are_the_formulas_written_out():
    """rec and kl recomputed from the returned mu, logvar, z with scipy, independently."""
    from scipy import special
    cfg, params, x, eps = make_case("bernoulli", "tanh", (5,))
    _, _, terms = vn.loss_and_grads(params, x, eps, cfg)
    mu, logvar = terms["mu"], terms["logvar"]
    np.testing.assert_allclose(terms["z"], mu + np.sqrt(np.exp(logvar)) * eps, rtol=1e-14)
    h = np.tanh(terms["z"] @ params["dec.0.W"] + params["dec.0.b"])
    logits = h @ params["dec.out.W"] + params["dec.out.b"]
    rec = -(x * special.log_expit(logits) + (1 - x) * special.log_expit(-logits)).sum(-1)
    kl = -0.5 * (1 + logvar - mu**2 - np.exp(logvar)).sum(-1)
    np.testing.assert_allclose(terms["rec"], rec, rtol=1e-13)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-13)


def test_mean_reduction_is_sum_divided_by_batch():
    cfg, params, x, eps = make_case("gaussian", "softplus", (5, 4))
    loss_mean, g_mean, _ = vn.loss_and_grads(params, x, eps, cfg, "mean")
    loss_sum, g_sum, _ = vn.loss_and_grads(params, x, eps, cfg, "sum")
    np.testing.assert_allclose(loss_sum, B * loss_mean, rtol=1e-14)
    for k in params:
        np.testing.assert_allclose(g_sum[k], B * g_mean[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
def test_float32_agrees_with_float64(likelihood):
    cfg, params, x, eps = make_case(likelihood, "relu", (5, 4))
    cfg32 = vn.VAEConfig(**{**cfg.to_dict(), "dtype": "float32"})
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    loss32, g32, t32 = vn.loss_and_grads(p32, x.astype(np.float32), eps.astype(np.float32), cfg32)
    loss64, g64, _ = vn.loss_and_grads(params, x, eps, cfg)
    assert loss32.dtype == np.float32 and t32["rec"].dtype == np.float32
    assert all(g.dtype == np.float32 for g in g32.values())
    np.testing.assert_allclose(loss32, loss64, rtol=FLOAT32_RTOL)
    for k in params:
        scale = np.abs(g64[k]).max()
        np.testing.assert_allclose(g32[k], g64[k], rtol=0, atol=FLOAT32_RTOL * scale, err_msg=k)


# --- parameters -----------------------------------------------------------------------------

def test_parameter_names_and_layout():
    cfg = vn.VAEConfig(input_dim=784, latent_dim=20, encoder_hidden=(400, 300),
                       decoder_hidden=(300,), likelihood="gaussian_learned")
    assert vn.param_shapes(cfg) == {
        "enc.0.W": (784, 400), "enc.0.b": (400,), "enc.1.W": (400, 300), "enc.1.b": (300,),
        "enc.mu.W": (300, 20), "enc.mu.b": (20,), "enc.logvar.W": (300, 20),
        "enc.logvar.b": (20,), "dec.0.W": (20, 300), "dec.0.b": (300,),
        "dec.out.W": (300, 784), "dec.out.b": (784,),
        "dec.out_logvar.W": (300, 784), "dec.out_logvar.b": (784,)}


def test_init_is_pytorch_linear_default():
    cfg = vn.VAEConfig(input_dim=784, latent_dim=20, encoder_hidden=(400,),
                       decoder_hidden=(400,))
    params = vn.init_params(cfg, np.random.default_rng(0))
    for name, W in params.items():
        fan_in = vn.param_shapes(cfg)[name.rsplit(".", 1)[0] + ".W"][0]
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(W).max() <= bound
        if W.size > 1000:  # U(-a, a) has variance a**2 / 3; 4 SE of a sample variance
            assert abs(W.var() - bound**2 / 3) <= 4 * (bound**2 / 3) * np.sqrt(0.8 / W.size)
        assert W.dtype == np.float64


def test_init_respects_dtype_and_seed():
    cfg = vn.VAEConfig(input_dim=10, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,),
                       dtype="float32")
    a, b = (vn.init_params(cfg, np.random.default_rng(7)) for _ in range(2))
    assert all(v.dtype == np.float32 for v in a.values())
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_no_hidden_layers_is_allowed():
    cfg = vn.VAEConfig(input_dim=D, latent_dim=J, encoder_hidden=(), decoder_hidden=(),
                       activation="identity", likelihood="gaussian")
    params = vn.init_params(cfg, np.random.default_rng(0))
    assert sorted(params) == ["dec.out.W", "dec.out.b", "enc.logvar.W", "enc.logvar.b",
                              "enc.mu.W", "enc.mu.b"]
    rng = np.random.default_rng(1)
    x, eps = rng.standard_normal((B, D)), rng.standard_normal((B, J))
    _, grads, _ = vn.loss_and_grads(params, x, eps, cfg)
    errors = check_params(lambda: vn.loss_and_grads(params, x, eps, cfg)[0], params, grads,
                          entries=None)
    assert not failures(errors), failures(errors)


def test_config_round_trips_through_json():
    cfg = vn.VAEConfig(input_dim=5, latent_dim=2, encoder_hidden=[7, 3], decoder_hidden=4,
                       beta=2.0, likelihood="continuous_bernoulli")
    import json
    assert vn.VAEConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert cfg.encoder_hidden == (7, 3) and cfg.decoder_hidden == (4,)


# --- using a trained model -----------------------------------------------------------------

def test_encode_decode_reconstruct_sample_shapes_and_ranges():
    cfg, params, x, eps = make_case("bernoulli", "relu", (5,))
    mu, logvar = vn.encode(params, x, cfg)
    assert mu.shape == logvar.shape == (B, J)
    x_mean = vn.reconstruct(params, x, cfg)
    assert x_mean.shape == (B, D) and (x_mean > 0).all() and (x_mean < 1).all()
    np.testing.assert_array_equal(x_mean, vn.decode(params, mu, cfg))
    samples = vn.sample(params, 9, cfg, np.random.default_rng(3))
    assert samples.shape == (9, D)
    z = np.random.default_rng(3).standard_normal((9, J))
    np.testing.assert_array_equal(samples, vn.decode(params, z, cfg))


# --- bad input ----------------------------------------------------------------------------

@pytest.fixture
def small():
    return make_case("bernoulli", "relu", (5,))


def test_wrong_x_width_names_x(small):
    cfg, params, x, eps = small
    with pytest.raises(ValueError, match=r"x has shape \(4, 5\), expected \(B, 6\)"):
        vn.loss_and_grads(params, x[:, :5], eps, cfg)


def test_image_shaped_x_says_how_to_flatten(small):
    cfg, params, x, eps = small
    with pytest.raises(ValueError, match="reshape"):
        vn.loss_and_grads(params, x.reshape(B, 2, 3), eps, cfg)


def test_eps_batch_mismatch_names_eps(small):
    cfg, params, x, eps = small
    with pytest.raises(ValueError, match=r"eps has shape \(3, 3\), expected \(4, 3\)"):
        vn.loss_and_grads(params, x, eps[:3], cfg)


def test_dtype_mismatch_is_an_error_not_a_cast(small):
    cfg, params, x, eps = small
    with pytest.raises(TypeError, match="x has dtype uint8 but the parameters are float64"):
        vn.loss_and_grads(params, x.astype(np.uint8), eps, cfg)
    with pytest.raises(TypeError, match="eps has dtype float32"):
        vn.loss_and_grads(params, x, eps.astype(np.float32), cfg)


def test_nan_input_is_reported(small):
    cfg, params, x, eps = small
    x = x.copy()
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        vn.loss_and_grads(params, x, eps, cfg)


def test_params_mismatch_lists_names(small):
    cfg, params, x, eps = small
    bad = dict(params)
    del bad["enc.mu.b"]
    with pytest.raises(ValueError, match=r"missing \['enc.mu.b'\]"):
        vn.loss_and_grads(bad, x, eps, cfg)
    bad = dict(params, **{"dec.out.W": params["dec.out.W"].T})
    with pytest.raises(ValueError, match="must be transposed"):
        vn.loss_and_grads(bad, x, eps, cfg)


def test_bad_reduction_and_config_values(small):
    cfg, params, x, eps = small
    with pytest.raises(ValueError, match="reduction must be one of"):
        vn.loss_and_grads(params, x, eps, cfg, reduction="batchmean")
    with pytest.raises(ValueError, match="beta must be >= 0"):
        vn.VAEConfig(input_dim=4, beta=-1)
    with pytest.raises(ValueError, match="choose one of"):
        vn.VAEConfig(input_dim=4, activation="swish")
    with pytest.raises(ValueError, match="dtype must be one of"):
        vn.VAEConfig(input_dim=4, dtype="float16")
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        vn.init_params(cfg, 0)


@pytest.mark.parametrize("kw,match", [
    (dict(free_bits=-1.0), r"loss_and_grads.free_bits must be >= 0, got -1.0"),
    (dict(free_bits=float("nan")), r"loss_and_grads.free_bits must be a finite number"),
    (dict(beta=-1.0), r"loss_and_grads.beta must be >= 0, got -1.0"),
    (dict(beta=float("inf")), r"loss_and_grads.beta must be a finite number"),
])
def test_a_negative_or_non_finite_free_bits_or_beta_is_refused(small, kw, match):
    """As VAEConfig and train refuse them: free_bits=-1 would optimize the plain objective
    (no dimension is below a negative floor) and beta=-1 would reward the KL."""
    cfg, params, x, eps = small
    with pytest.raises(ValueError, match=match):
        vn.loss_and_grads(params, x, eps, cfg, **kw)


def test_a_per_call_beta_of_zero_and_free_bits_of_zero_are_accepted(small):
    cfg, params, x, eps = small
    loss, _, terms = vn.loss_and_grads(params, x, eps, cfg, free_bits=0, beta=0)
    assert loss == terms["rec"].mean()


def test_rec_weight_scales_the_reconstruction_term_and_its_gradient():
    cfg, params, x, eps = case_away_from_kinks("bernoulli", "tanh", (5,))
    cfg = vn.VAEConfig(**{**cfg.to_dict(), "rec_weight": 0.4})
    loss, grads, terms = vn.loss_and_grads(params, x, eps, cfg)
    assert loss == (0.4 * terms["rec"] + BETA * terms["kl"]).mean()
    errors = check_params(lambda: vn.loss_and_grads(params, x, eps, cfg)[0], params, grads,
                          entries=None)
    assert not failures(errors), failures(errors)


def test_kl_only_objective_gives_the_decoder_no_gradient():
    cfg, params, x, eps = make_case("bernoulli", "relu", (5,))
    cfg = vn.VAEConfig(**{**cfg.to_dict(), "rec_weight": 0.0})
    _, grads, _ = vn.loss_and_grads(params, x, eps, cfg)
    assert all(not grads[k].any() for k in grads if k.startswith("dec."))
    assert grads["enc.mu.W"].any()


@pytest.mark.parametrize("hidden", [(), (5,), (5, 4)])
def test_encoder_input_gradient_on_request(hidden):
    """Training skips d/dx (the data needs none); with input_grad=True it is exact."""
    cfg, params, x, _ = make_case("gaussian", "tanh", hidden)
    dout = np.random.default_rng(5).standard_normal((2, B, J))  # upstream for (mu, logvar)
    _, cache = model.encoder_forward(params, x, cfg)

    def forward(x):
        return np.stack(model.encoder_forward(params, x, cfg)[0])

    def backward(d):
        return model.encoder_backward(d[0], d[1], cache, cfg, {}, input_grad=True)

    [error] = check_vjp(forward, [x], backward, dout)
    assert error <= TOLERANCE_FLOAT64
    assert model.encoder_backward(dout[0], dout[1], cache, cfg, {}) is None
