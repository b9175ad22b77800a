r"""vae_numpy equals an independent PyTorch VAE (tests/torch_vae.py) to relative 1e-10 in float64.

Same parameters (nn.Linear.weight = W.T), same x, same eps: the loss, rec, kl, z and every
gradient must agree. The PyTorch side uses torch's own BCE-with-logits, Normal.log_prob,
ContinuousBernoulli.log_prob and Normal-Normal kl_divergence, and autograd for the gradients.
"""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch equivalence tests need torch "
                                             "(pip install -e '.[torch]')")
from hypothesis import given, strategies as st  # noqa: E402

from torch_vae import TorchVAE, run_on_fixture  # noqa: E402
from vae_numpy.crosscheck import fixture_params, make_fixture  # noqa: E402
from vae_numpy.gradcheck import rel_error  # noqa: E402
from vae_numpy.layers import ACTIVATIONS  # noqa: E402
from vae_numpy.likelihoods import LIKELIHOODS  # noqa: E402
from vae_numpy.model import VAEConfig, loss_and_grads  # noqa: E402

pytestmark = pytest.mark.torch

# Two float64 implementations of the same formulas differ by round-off only (~1e-15 measured;
# the continuous Bernoulli reaches ~3e-12 because torch switches to its Taylor series only
# within 0.499 < sigmoid(l) < 0.501, where the closed form has lost ~4 digits). Every real
# formula mistake is wrong by 1e-3 or more.
REL_TOL = 1e-10

widths = st.lists(st.integers(1, 8), min_size=0, max_size=3).map(tuple)
configs = st.builds(
    VAEConfig,
    input_dim=st.integers(1, 10),
    latent_dim=st.integers(1, 4),
    encoder_hidden=widths,
    decoder_hidden=widths,
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    likelihood=st.sampled_from(sorted(LIKELIHOODS)),
    beta=st.floats(0.0, 4.0),
    sigma=st.floats(0.2, 3.0),
    rec_weight=st.just(1.0) | st.floats(0.0, 2.0),
)


def errors(fixture, candidate):
    r"""``{tensor: rel_error}`` of a torch candidate against a vae_numpy fixture."""
    out = {k: rel_error(candidate[k], fixture[k]) for k in ("loss", "rec", "kl", "z")}
    out.update({f"grad/{k}": rel_error(g, fixture[f"grad/{k}"])
                for k, g in candidate["grads"].items()})
    return out


def assert_equivalent(cfg, batch, seed, reduction):
    fixture = make_fixture(cfg, batch, seed, reduction)
    candidate = run_on_fixture(fixture)
    errs = errors(fixture, candidate)
    assert len(errs) == 4 + len([k for k in fixture if k.startswith("grad/")])
    bad = {k: f"{e:.1e}" for k, e in errs.items() if not e <= REL_TOL}
    assert not bad, f"{cfg}, reduction={reduction}: rel errors above {REL_TOL:.0e}: {bad}"


@given(cfg=configs, batch=st.integers(1, 6), seed=st.integers(0, 2**31 - 1),
       reduction=st.sampled_from(["mean", "sum"]))
def test_random_configurations_agree(cfg, batch, seed, reduction):
    assert_equivalent(cfg, batch, seed, reduction)


@pytest.mark.parametrize("activation,likelihood",
                         list(itertools.product(sorted(ACTIVATIONS), sorted(LIKELIHOODS))))
def test_every_activation_and_likelihood_agree(activation, likelihood):
    cfg = VAEConfig(input_dim=10, latent_dim=3, encoder_hidden=(8, 6), decoder_hidden=(7,),
                    activation=activation, likelihood=likelihood, beta=0.7, sigma=0.6)
    for reduction in ("mean", "sum"):
        assert_equivalent(cfg, batch=5, seed=3, reduction=reduction)


def test_mnist_sized_model_agrees():
    r"""The pytorch/examples architecture, 784-400-20, summed over the batch as there."""
    cfg = VAEConfig(input_dim=784, latent_dim=20, encoder_hidden=(400,), decoder_hidden=(400,))
    assert_equivalent(cfg, batch=16, seed=0, reduction="sum")


def test_weights_are_loaded_transposed():
    r"""nn.Linear computes x @ weight.T + bias, so weight must be W.T: check the first layer."""
    cfg = VAEConfig(input_dim=5, latent_dim=2, encoder_hidden=(3,), decoder_hidden=(4,))
    fixture = make_fixture(cfg, batch=2, seed=1)
    params = fixture_params(fixture)
    model = TorchVAE(cfg).load_vae_numpy(params)
    x = fixture["x"]
    h_torch = model.encoder[0](torch.from_numpy(x)).detach().numpy()
    h_numpy = x @ params["enc.0.W"] + params["enc.0.b"]
    assert rel_error(h_torch, h_numpy) <= REL_TOL
    assert model.encoder[0].weight.shape == (3, 5)  # (out, in)


def test_comparison_can_fail():
    r"""The helper sees a difference: a change of 1e-8 in one bias breaks the agreement."""
    cfg = VAEConfig(input_dim=6, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,))
    fixture = make_fixture(cfg, batch=3, seed=2)
    fixture["param/dec.out.b"] = fixture["param/dec.out.b"] + 1e-8  # torch sees this one
    candidate = run_on_fixture(fixture)
    assert errors(fixture, candidate)["rec"] > REL_TOL


def test_fixture_matches_a_fresh_vae_numpy_run():
    r"""The fixture stores what loss_and_grads computes (so the torch tests test vae_numpy)."""
    cfg = VAEConfig(input_dim=6, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,),
                    likelihood="gaussian")
    fixture = make_fixture(cfg, batch=3, seed=5, reduction="sum")
    loss, grads, terms = loss_and_grads(fixture_params(fixture), fixture["x"], fixture["eps"],
                                        cfg, reduction="sum")
    assert float(fixture["loss"]) == float(loss)
    assert all(np.array_equal(fixture[f"grad/{k}"], g) for k, g in grads.items())
    assert np.array_equal(fixture["z"], terms["z"])
