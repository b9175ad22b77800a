r"""The JAX and Flax recipes of docs/crosscheck.md, run as written there. The Flax model is
written here the way the google/flax examples' VAE is (an Encoder with fc1, fc2_mean,
fc2_logvar and a Decoder with fc1, fc2 as submodules ``encoder`` and ``decoder``; the noise from
``random.normal`` inside ``reparameterize``; per-example losses by ``jax.vmap``, averaged over the
batch), at a small size. Skipped without jax and flax (pip install jax flax)."""
import functools
import re
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX/Flax recipes need jax (pip install jax flax)")
pytest.importorskip("flax", reason="the Flax recipe needs flax (pip install jax flax)")

import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import random  # noqa: E402

from vae_numpy import VAEConfig  # noqa: E402
from vae_numpy.crosscheck import compare, make_fixture, write_fixture  # noqa: E402
from vae_numpy.crosscheck.interop import (FLAX_EXAMPLES_NAMES, NoiseDrawWarning,  # noqa: E402
                                          jax_noise, tree_grads, tree_params)

pytestmark = pytest.mark.jax

DOC = Path(__file__).resolve().parents[1] / "docs" / "crosscheck.md"
INPUT_DIM, HIDDEN, LATENT, BATCH = 20, 8, 3, 5
CFG = VAEConfig(input_dim=INPUT_DIM, latent_dim=LATENT, encoder_hidden=(HIDDEN,),
                decoder_hidden=(HIDDEN,))


# --- the model under test, in the style of the google/flax examples' VAE ---------------------

class Encoder(nn.Module):
    latents: int
    hidden: int

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.hidden, name="fc1")(x))
        mean_x = nn.Dense(self.latents, name="fc2_mean")(x)
        logvar_x = nn.Dense(self.latents, name="fc2_logvar")(x)
        return mean_x, logvar_x


class Decoder(nn.Module):
    hidden: int
    features: int

    @nn.compact
    def __call__(self, z):
        z = nn.relu(nn.Dense(self.hidden, name="fc1")(z))
        return nn.Dense(self.features, name="fc2")(z)


def reparameterize(rng, mean, logvar, std_bug=False):
    std = jnp.exp(logvar) if std_bug else jnp.exp(0.5 * logvar)  # std_bug: the variance
    eps = random.normal(rng, logvar.shape)
    return mean + eps * std


class VAE(nn.Module):
    latents: int = LATENT
    hidden: int = HIDDEN
    features: int = INPUT_DIM
    std_bug: bool = False

    def setup(self):
        self.encoder = Encoder(self.latents, self.hidden)
        self.decoder = Decoder(self.hidden, self.features)

    def __call__(self, x, z_rng):
        mean, logvar = self.encoder(x)
        z = reparameterize(z_rng, mean, logvar, self.std_bug)
        return self.decoder(z), mean, logvar


@jax.vmap
def kl_divergence(mean, logvar):
    return -0.5 * jnp.sum(1 + logvar - jnp.square(mean) - jnp.exp(logvar))


@jax.vmap
def binary_cross_entropy_with_logits(logits, labels):
    return -jnp.sum(labels * nn.log_sigmoid(logits) + (1.0 - labels) * nn.log_sigmoid(-logits))


# --- running the documented recipes ------------------------------------------------------------

@pytest.fixture(autouse=True)
def float32_after_each_test():
    yield
    jax.config.update("jax_enable_x64", False)  # the recipes turn float64 on globally


def recipe(name):
    text = DOC.read_text()
    match = re.search(rf"<!-- recipe: {name} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"docs/crosscheck.md has no '<!-- recipe: {name} -->' python block"
    return match.group(1)


def run_recipe(name, tmp_path, monkeypatch, reduction="mean", edits=(), **names):
    write_fixture(tmp_path / "case.npz", make_fixture(CFG, BATCH, seed=0, reduction=reduction))
    monkeypatch.chdir(tmp_path)
    code = recipe(name)
    for old, new in edits:
        assert old in code, f"the recipe no longer has {old!r}"
        code = code.replace(old, new)
    namespace = {"print": lambda *args: None, **names}
    exec(compile(code, f"{DOC}#recipe-{name}", "exec"), namespace)
    return namespace


def run_flax(tmp_path, monkeypatch, std_bug=False, edits=()):
    return run_recipe("flax", tmp_path, monkeypatch, edits=edits,
                      VAE=functools.partial(VAE, std_bug=std_bug),
                      binary_cross_entropy_with_logits=binary_cross_entropy_with_logits,
                      kl_divergence=kl_divergence)


NO_X64 = [('jax.config.update("jax_enable_x64", True)', "")]


def test_tree_params_has_the_structure_flax_itself_builds():
    fixture = make_fixture(CFG, BATCH, seed=0)
    with jax.enable_x64(False):
        real = VAE().init(random.key(0), jnp.zeros((1, INPUT_DIM)), random.key(1))
    ours = tree_params(fixture, FLAX_EXAMPLES_NAMES)
    shapes = jax.tree_util.tree_map(lambda a: tuple(a.shape), real)
    assert jax.tree_util.tree_map(lambda a: tuple(a.shape), ours) == shapes
    assert shapes["params"]["encoder"]["fc2_logvar"]["kernel"] == (HIDDEN, LATENT)


def test_flax_recipe_passes_in_float64(tmp_path, monkeypatch):
    ns = run_flax(tmp_path, monkeypatch)
    report = ns["report"]
    assert report.status == "PASS" and report.dtype == "float64", str(report)
    assert max(e.rel_error for e in report.entries if e.status == "ok") < 1e-13
    assert report["mu"].status == "ok" and report["logvar"].status == "ok"


def test_flax_recipe_without_x64_is_a_float32_check_and_says_so(tmp_path, monkeypatch):
    ns = run_flax(tmp_path, monkeypatch, edits=NO_X64)
    report = ns["report"]
    assert ns["loss"].dtype == jnp.float32
    assert report.status == "PASS" and report.dtype == "float32", str(report)
    assert "float32 candidate against a float64 fixture" in report.notes[0]


def test_a_bug_in_the_users_sampler_is_not_patched_away(tmp_path, monkeypatch):
    r"""Only jax.random.normal is replaced, so a std = exp(logvar) in the user's own
    reparameterize fails, and is named from the loss (mu and logvar agree: not the encoder)."""
    report = run_flax(tmp_path, monkeypatch, std_bug=True)["report"]
    assert report.status == "FAIL" and report["mu"].status == "ok", str(report)
    assert len(report.diagnoses) == 1
    assert "variance as the standard deviation" in report.diagnoses[0]


def test_a_raw_flax_gradient_tree_is_incomplete(tmp_path, monkeypatch):
    ns = run_flax(tmp_path, monkeypatch)
    report = compare(ns["fixture"], {"loss": ns["loss"], "grads": ns["grads"]})
    assert report.status == "INCOMPLETE", str(report)
    assert "vae_numpy.crosscheck.interop.tree_grads" in report.verdict()
    assert compare(ns["fixture"], {"loss": ns["loss"]}).status == "INCOMPLETE"
    assert compare(ns["fixture"], {"grads": tree_grads(ns["grads"])}).status == "INCOMPLETE"


def test_tree_grads_names_a_missing_path():
    with pytest.raises(ValueError, match="no 'encoder' under the top level"):
        tree_grads({"params": {"enc": {}}})


def test_jax_recipe_passes(tmp_path, monkeypatch):
    report = run_recipe("jax", tmp_path, monkeypatch)["report"]
    assert report.status == "PASS" and report.dtype == "float64", str(report)
    assert all(report[k].status == "ok" for k in ("rec", "kl", "z", "mu", "logvar"))


def test_jax_recipe_sum_reduction_and_float32(tmp_path, monkeypatch):
    report = run_recipe("jax", tmp_path, monkeypatch, reduction="sum", edits=NO_X64)["report"]
    assert report.status == "PASS" and report.dtype == "float32", str(report)


def test_jax_noise_casts_and_warns_when_unused():
    eps = np.arange(6.0).reshape(2, 3)
    with jax.enable_x64(True):
        with jax_noise(eps) as draws:
            drawn = random.normal(random.key(0), (2, 3))
        assert draws == [(2, 3)] and drawn.dtype == jnp.float64
        assert np.array_equal(np.asarray(drawn), eps)
    with pytest.warns(NoiseDrawWarning, match="never called jax.random.normal"):
        with jax_noise(eps):
            pass
