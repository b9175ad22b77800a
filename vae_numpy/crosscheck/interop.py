r"""Moving a fixture into a PyTorch or Flax/JAX model and its gradients back, one call each.

Every user of :mod:`vae_numpy.crosscheck` maps names twice: the fixture's parameters into the
model, the model's gradients back to vae_numpy names. ``names`` says once which layer of the
model is which vae_numpy layer (``enc.0``, ``enc.mu``, ``enc.logvar``, ``dec.0``, ...,
``dec.out``); the functions here do the rest, with the layouts written out:

    PyTorch nn.Linear        weight (out, in) = W.T, bias = b; weight.grad is (out, in) too
    Flax linen.Dense, Haiku  kernel (in, out) = W, bias = b: no transpose

    load_torch(model, fixture, PYTORCH_EXAMPLES_NAMES)       # parameters in
    grads = torch_grads(model, PYTORCH_EXAMPLES_NAMES)      # gradients out, W as (in, out)
    params = tree_params(fixture, FLAX_EXAMPLES_NAMES)      # {"params": {"encoder": {...}}}
    grads = tree_grads(grad_tree, FLAX_EXAMPLES_NAMES)      # {"enc.0.W": ..., ...}

The fixture's noise goes in by replacing only the framework's noise draw, never the model's own
sampler (a bug in the sampler must stay in the check):

    with torch_noise(fixture["eps"]):      # torch.randn_like returns the fixture's eps
        recon, mu, logvar = model(x)
    with jax_noise(fixture["eps"]):        # jax.random.normal returns it
        loss, grads = jax.value_and_grad(loss_fn)(params, x, key)

An encoder whose second head outputs log sigma (the IWAE code's convention) is the same model
as vae_numpy's with that head's weights halved: ``logvar_head="log_sigma"`` loads
``0.5 * W`` and ``0.5 * b`` into it; compare with ``logvar_head="log_sigma"`` too, which halves
the gradients of that head (d loss / d (W / 2) = 2 * d loss / dW).
"""
import contextlib
import warnings
from collections.abc import Mapping
from unittest import mock

import numpy as np

from ..model import param_shapes
from .comparison import LOGVAR_HEADS, to_numpy
from .fixture import fixture_config, fixture_params

# The layer names of pytorch/examples' vae/main.py (784-400-20) and of the google/flax
# examples' VAE (784-500-20, an Encoder and a Decoder submodule), by vae_numpy prefix.
PYTORCH_EXAMPLES_NAMES = {"fc1": "enc.0", "fc21": "enc.mu", "fc22": "enc.logvar",
                          "fc3": "dec.0", "fc4": "dec.out"}
FLAX_EXAMPLES_NAMES = {"encoder/fc1": "enc.0", "encoder/fc2_mean": "enc.mu",
                       "encoder/fc2_logvar": "enc.logvar", "decoder/fc1": "dec.0",
                       "decoder/fc2": "dec.out"}




class NoiseDrawWarning(UserWarning):
    r"""A noise patch was never called: the fixture's eps may not have reached the model."""


def _warn_if_unused(calls, draw):
    if not calls:
        warnings.warn(f"the model never called {draw} inside the noise patch: either it applies "
                      f"no noise (z = mu, eval mode: the report will say so) or it draws its "
                      f"noise another way, and then pass eps into it instead",
                      NoiseDrawWarning, stacklevel=3)


# --- names and parameters ----------------------------------------------------------------------

def _params(source):
    r"""``{name: array}`` from a fixture (it has a ``config``) or a params dict as it is."""
    if not isinstance(source, Mapping):
        raise TypeError(f"fixture must be a fixture dict or {{vae_numpy name: array}}, got "
                        f"{type(source).__name__}")
    return fixture_params(source) if "config" in source else dict(source)


def _layer_prefixes(params):
    return list(dict.fromkeys(k.rsplit(".", 1)[0] for k in params))


def _check_names_type(names):
    if not isinstance(names, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in names.items()):
        raise TypeError(f"names must be a dict {{model layer: vae_numpy prefix}} of strings, "
                        f"e.g. {PYTORCH_EXAMPLES_NAMES}; got {names!r}")


def check_names(names, params):
    r"""Raise ValueError unless ``names`` maps one model layer to each vae_numpy layer.

    names : ``{model layer: vae_numpy prefix}``, e.g. ``{"fc1": "enc.0", ...}``
    params : ``{vae_numpy name: array}`` (the fixture's parameters)
    """
    _check_names_type(names)
    prefixes = _layer_prefixes(params)
    targets = list(names.values())
    unknown = [p for p in targets if p not in prefixes]
    unmapped = [p for p in prefixes if p not in targets]
    twice = sorted({p for p in targets if targets.count(p) > 1})
    if unknown or unmapped or twice:
        problems = []
        if unknown:
            problems.append(f"{unknown} are not layers of the fixture")
        if unmapped:
            problems.append(f"no model layer is mapped to {unmapped}")
        if twice:
            problems.append(f"{twice} are mapped more than once")
        raise ValueError(f"names {names}: {'; '.join(problems)}. The fixture's layers are "
                         f"{prefixes}; names maps each model layer to one of them")


def _head_scale(prefix, logvar_head):
    if logvar_head not in LOGVAR_HEADS:
        raise ValueError(f"logvar_head must be one of {LOGVAR_HEADS}, got {logvar_head!r}")
    return 0.5 if logvar_head == "log_sigma" and prefix == "enc.logvar" else 1.0


# --- PyTorch -----------------------------------------------------------------------------------

def _torch_layer(model, attr):
    try:
        return model.get_submodule(attr)
    except AttributeError:
        have = [n for n, _ in model.named_modules() if n]
        raise ValueError(f"the model has no submodule {attr!r}; it has {have}") from None


def load_torch(model, fixture, names=None, logvar_head="logvar"):
    r"""Copy a fixture's parameters into a PyTorch model's nn.Linear layers; returns the model.

    ``layer.weight = W.T`` (W is (in, out), weight (out, in)) and ``layer.bias = b``, each cast
    to that layer's own dtype and device (a float32 model gets rounded parameters).

    Parameters
    ----------
    model : torch.nn.Module
    fixture : a fixture dict, or ``{vae_numpy name: array}``
    names : ``{attribute path: vae_numpy prefix}``; attribute paths may be dotted
        (``"encoder.0"``). Default: PYTORCH_EXAMPLES_NAMES (fc1, fc21, fc22, fc3, fc4).
    logvar_head : "log_sigma" loads 0.5 * W and 0.5 * b into the ``enc.logvar`` layer, for a
        model whose second head outputs log sigma.
    """
    import torch
    names = PYTORCH_EXAMPLES_NAMES if names is None else names
    params = _params(fixture)
    check_names(names, params)
    with torch.no_grad():
        for attr, prefix in names.items():
            layer = _torch_layer(model, attr)
            scale = _head_scale(prefix, logvar_head)
            W, b = params[prefix + ".W"], params[prefix + ".b"]  # (in, out), (out,)
            if tuple(layer.weight.shape) != W.T.shape:
                raise ValueError(f"{attr}.weight has shape {tuple(layer.weight.shape)}, the "
                                 f"fixture's {prefix}.W.T is {W.T.shape}: a different "
                                 f"architecture or the wrong names entry")
            for target, value in ((layer.weight, W.T), (layer.bias, b)):
                target.copy_(torch.as_tensor(scale * np.ascontiguousarray(value),
                                             dtype=target.dtype, device=target.device))
    return model


def torch_grads(model, names=None):
    r"""The model's ``.grad`` by vae_numpy names, ``{prefix.W: (in, out), prefix.b: (out,)}``.

    ``W``'s gradient is ``weight.grad.T`` (so compare without pytorch_layout). Raises when a
    gradient is absent (no ``loss.backward()`` yet, or a detached layer).
    """
    names = PYTORCH_EXAMPLES_NAMES if names is None else names
    grads = {}
    for attr, prefix in names.items():
        layer = _torch_layer(model, attr)
        for pname, key, transpose in (("weight", ".W", True), ("bias", ".b", False)):
            g = getattr(layer, pname).grad
            if g is None:
                raise ValueError(f"{attr}.{pname}.grad is None: call loss.backward() first "
                                 f"(is the layer used in the loss, and not detached?)")
            g = to_numpy(g)
            grads[prefix + key] = g.T if transpose else g
    return grads


@contextlib.contextmanager
def torch_noise(eps):
    r"""Within the block, ``torch.randn_like(t)`` returns the fixture's ``eps`` (B, J).

    Only the noise draw is replaced: the model's own sampler runs unchanged, so a mistake in
    it (``std = exp(logvar)``) still shows. eps is cast to t's dtype and device; a draw of
    another shape raises. Warns (NoiseDrawWarning) on exit when the model never called
    torch.randn_like: it applies no noise, or draws it another way (then pass eps into it).
    Yields the list of the shapes drawn.
    """
    import torch
    eps = np.asarray(eps)
    calls = []

    def randn_like(t, *args, **kwargs):
        if tuple(t.shape) != eps.shape:
            raise ValueError(f"torch.randn_like was asked for shape {tuple(t.shape)}, the "
                             f"fixture's eps is {eps.shape}")
        calls.append(tuple(t.shape))
        return torch.as_tensor(eps, dtype=kwargs.get("dtype") or t.dtype, device=t.device)

    with mock.patch.object(torch, "randn_like", randn_like):
        yield calls
    _warn_if_unused(calls, "torch.randn_like")


@contextlib.contextmanager
def jax_noise(eps):
    r"""Within the block, ``jax.random.normal(key, shape)`` returns the fixture's ``eps``.

    Only the noise draw is replaced, never the model's sampler. eps is cast to the requested
    dtype (jax's default float when none is given: float32 unless jax_enable_x64). Works for
    code that calls ``jax.random.normal`` or ``random.normal`` after ``from jax import random``
    (not for a name imported before the block with ``from jax.random import normal``). Warns
    (NoiseDrawWarning) on exit when it was never called. Yields the list of the shapes drawn.
    """
    import jax
    import jax.numpy as jnp
    eps = np.asarray(eps)
    calls = []

    def normal(key, shape=(), dtype=None, *args, **kwargs):
        if tuple(shape) != eps.shape:
            raise ValueError(f"jax.random.normal was asked for shape {tuple(shape)}, the "
                             f"fixture's eps is {eps.shape}")
        calls.append(tuple(shape))
        return jnp.asarray(eps, dtype=dtype if dtype is not None else jnp.asarray(0.0).dtype)

    with mock.patch.object(jax.random, "normal", normal):
        yield calls
    _warn_if_unused(calls, "jax.random.normal")


# --- nested trees: Flax, Haiku, plain JAX dicts ----------------------------------------------

def tree_params(fixture, names=None, weight="kernel", bias="bias", root="params",
                logvar_head="logvar"):
    r"""A nested parameter tree for a Flax/JAX model, from a fixture.

    ``{root: {"encoder": {"fc1": {weight: W, bias: b}, ...}, "decoder": {...}}}`` with W as
    (in, out), Flax's ``Dense.kernel`` layout (no transpose). NumPy arrays of the fixture's
    dtype; JAX converts them on use (enable jax_enable_x64 for a float64 check).

    Parameters
    ----------
    fixture : a fixture dict, or ``{vae_numpy name: array}``
    names : ``{"encoder/fc1": "enc.0", ...}``, paths joined with "/". Default:
        FLAX_EXAMPLES_NAMES (the google/flax examples VAE).
    weight, bias : the leaf names ("kernel", "bias" for Flax; "w", "b" for Haiku)
    root : the top key (Flax's "params"), or None for no top level
    logvar_head : "log_sigma" puts 0.5 * W, 0.5 * b into the ``enc.logvar`` layer.
    """
    names = FLAX_EXAMPLES_NAMES if names is None else names
    params = _params(fixture)
    check_names(names, params)
    tree = {}
    for path, prefix in names.items():
        node = tree
        for part in path.split("/"):
            node = node.setdefault(part, {})
        scale = _head_scale(prefix, logvar_head)
        node[weight] = scale * params[prefix + ".W"]  # (in, out): no transpose
        node[bias] = scale * params[prefix + ".b"]
    return {root: tree} if root is not None else tree


def tree_grads(tree, names=None, weight="kernel", bias="bias", root="params"):
    r"""``{vae_numpy name: array}`` from a nested gradient tree (what jax.grad returns for
    :func:`tree_params`' tree); with or without the top ``root`` level. Kernels are (in, out)
    already: no transpose."""
    names = FLAX_EXAMPLES_NAMES if names is None else names
    _check_names_type(names)
    if root is not None and isinstance(tree, Mapping) and root in tree:
        tree = tree[root]
    grads = {}
    for path, prefix in names.items():
        node = tree
        for depth, part in enumerate(path.split("/")):
            if not isinstance(node, Mapping) or part not in node:
                have = sorted(node) if isinstance(node, Mapping) else type(node).__name__
                where = "/".join(path.split("/")[:depth]) or "the top level"
                raise ValueError(f"the gradient tree has no {part!r} under {where} (looking "
                                 f"for {path!r}); it has {have}")
            node = node[part]
        for leaf in (weight, bias):
            if not isinstance(node, Mapping) or leaf not in node:
                have = sorted(node) if isinstance(node, Mapping) else type(node).__name__
                raise ValueError(f"the gradient tree has no {leaf!r} under {path!r} (pass "
                                 f"weight= and bias= with its leaf names); it has {have}")
        grads[prefix + ".W"] = to_numpy(node[weight])
        grads[prefix + ".b"] = to_numpy(node[bias])
    return grads


def expected_layers(fixture):
    r"""The vae_numpy layer prefixes of a fixture, in order (what ``names`` must cover)."""
    cfg, _ = fixture_config(fixture)
    return _layer_prefixes(param_shapes(cfg))
