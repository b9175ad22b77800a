r"""The fixture: one test case of vae_numpy's VAE that any framework can load.

Shape letters: B batch, D data dimensions, J latent dimensions, K importance samples.

A fixture holds the configuration, every parameter, an input batch ``x``, the noise ``eps``,
and what vae_numpy computes from them (the loss, the per-example terms, ``z`` and every
gradient). Load the same parameters into your model, feed the same ``x`` and ``eps``, and hand
your numbers to :func:`vae_numpy.crosscheck.compare` (:mod:`vae_numpy.crosscheck.comparison`).

Fixture layout (keys of the dict and of the ``.npz`` file):

    config        0-d string array: JSON of the VAEConfig fields plus "reduction" and
                  "vae_numpy_version"
    param/<name>  every parameter; W is (in, out), so PyTorch's nn.Linear.weight is W.T
    x (B, D), eps (B, J)
    loss ()       reduce_b(rec_weight * rec_b + beta * kl_b), reduce = mean or sum over the
                  batch (rec_weight = 1, the default, is the beta-weighted -ELBO)
    rec (B,), kl (B,), z (B, J)
    mu (B, J), logvar (B, J)  the encoder's outputs (since 0.2; older fixtures lack them)
    grad/<name>   d loss / d param, the same shapes as param/<name>

An IWAE fixture (``objective="iwae"``, since 0.2) holds the importance-weighted bound of
:mod:`vae_numpy.iwae` with K samples instead, and its config records ``"objective": "iwae"``
and ``"k"``:

    x (B, D), eps (K, B, J)   the sample axis first
    loss ()                   reduce_b(-L_K(x_b)), L_K = logsumexp_k(log w_k) - log K
    iw_bound (B,)             L_K per example
    log_weights (K, B)        log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)
    mu (B, J), logvar (B, J)  the encoder's outputs
    grad/<name>               d loss / d param with the exact gradient (estimator "iwae")
    grad_stl/enc.<...>        the encoder's gradient with sticking the landing (STL)
    grad_dreg/enc.<...>       the encoder's gradient with the doubly reparameterized (DReG)

The decoder's gradient is the same under the three estimators (``grad/dec.*``).
:func:`vae_numpy.crosscheck.compare` with ``estimator="stl"`` or ``"dreg"`` compares the
candidate's encoder gradients with ``grad_stl/`` or ``grad_dreg/``.
"""
import json
import os
from collections.abc import Mapping

import numpy as np

from .._version import __version__
from ..data.npfiles import json_entry, read_npz
from ..files.atomic import atomic_write
from ..files.errors import FileFormatError
from ..iwae import ESTIMATORS, iwae_loss_and_grads
from ..model import REDUCTIONS, VAEConfig, init_params, loss_and_grads, param_shapes

# Entries of the fixture layout written since 0.2; fixtures without them still read (their
# reference mu and logvar are recomputed from the parameters).
OPTIONAL_FIXTURE_KEYS = ("mu", "logvar")
OBJECTIVES = ("vae", "iwae")
IWAE_FORWARD_KEYS = ("loss", "iw_bound", "log_weights", "mu", "logvar")


def draw_data(cfg, batch, rng):
    r"""An input batch x (B, D) of cfg.dtype that suits the likelihood.

    bernoulli: binary, each pixel 1 with probability 1/2; continuous_bernoulli: uniform on
    [0, 1]; gaussian and gaussian_learned: standard normal (real valued).
    """
    shape = (batch, cfg.input_dim)
    if cfg.likelihood == "bernoulli":
        x = rng.random(shape) < 0.5
    elif cfg.likelihood == "continuous_bernoulli":
        x = rng.random(shape)
    else:
        x = rng.standard_normal(shape)
    return x.astype(cfg.dtype)  # (B, D)


def make_fixture(cfg, batch, seed, reduction="mean", objective="vae", k=None):
    r"""Build a fixture: parameters, x, eps and vae_numpy's loss, terms, z and gradients.

    Everything is drawn from ``numpy.random.default_rng(seed)``, in this order: the parameters
    (:func:`vae_numpy.init_params`, PyTorch's nn.Linear initialization), x (:func:`draw_data`),
    then eps ~ N(0, I) of shape (B, J), or (K, B, J) for the IWAE objective.

    Parameters
    ----------
    cfg : VAEConfig (its dtype is the fixture's dtype)
    batch : B, number of examples
    seed : int
    reduction : "mean" or "sum" over the batch
    objective : "vae" (the -ELBO of :func:`vae_numpy.loss_and_grads`) or "iwae" (the
        negative bound -L_K of :func:`vae_numpy.iwae_loss_and_grads`, with the encoder's
        gradient under each estimator; cfg.beta and cfg.rec_weight must then be 1)
    k : K, the importance samples of an IWAE fixture (required there, refused for "vae")

    Returns
    -------
    dict in the fixture layout of the module docstring.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if int(batch) != batch or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    check_objective(objective, k)
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    x = draw_data(cfg, batch, rng)  # (B, D)
    if objective == "iwae":
        eps = rng.standard_normal((k, batch, cfg.latent_dim)).astype(cfg.dtype)  # (K, B, J)
        return _iwae_fixture(cfg, params, x, eps, reduction)
    eps = rng.standard_normal((batch, cfg.latent_dim)).astype(cfg.dtype)  # (B, J)
    loss, grads, terms = loss_and_grads(params, x, eps, cfg, reduction=reduction)
    fixture = {"config": np.array(_config_json(cfg, reduction))}
    fixture.update({f"param/{k}": v for k, v in params.items()})
    fixture.update({"x": x, "eps": eps, "loss": np.asarray(loss, dtype=cfg.dtype),
                    "rec": terms["rec"], "kl": terms["kl"], "z": terms["z"],
                    "mu": terms["mu"], "logvar": terms["logvar"]})
    fixture.update({f"grad/{k}": v for k, v in grads.items()})
    return fixture


def check_objective(objective, k):
    r"""Raise ValueError unless (objective, k) is ("vae", None) or ("iwae", K >= 1)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "vae" and k is not None:
        raise ValueError(f"k = {k!r} is the number of importance samples of an IWAE fixture; "
                         "pass objective='iwae' with it, or leave k out for a VAE fixture")
    if objective == "iwae" and (k is None or int(k) != k or k < 1):
        raise ValueError(f"an IWAE fixture needs k, a positive number of importance samples, "
                         f"got {k!r}")


def _iwae_fixture(cfg, params, x, eps, reduction):
    r"""The IWAE fixture's entries: the bound, its terms and the three estimators' gradients."""
    grads = {}
    for name in ESTIMATORS:
        loss, grads[name], terms = iwae_loss_and_grads(params, x, eps, cfg, reduction, name)
    fixture = {"config": np.array(_config_json(cfg, reduction, "iwae", eps.shape[0]))}
    fixture.update({f"param/{k}": v for k, v in params.items()})
    fixture.update({"x": x, "eps": eps, "loss": np.asarray(loss, dtype=cfg.dtype),
                    "iw_bound": terms["iw_bound"], "log_weights": terms["log_weights"],
                    "mu": terms["mu"], "logvar": terms["logvar"]})
    fixture.update({f"grad/{k}": v for k, v in grads["iwae"].items()})
    for name in ESTIMATORS[1:]:
        fixture.update({f"grad_{name}/{k}": v for k, v in grads[name].items()
                        if k.startswith("enc.")})
    return fixture


def _config_json(cfg, reduction, objective="vae", k=None):
    extra = {"objective": objective, "k": k} if objective == "iwae" else {}
    return json.dumps({**cfg.to_dict(), "reduction": reduction, **extra,
                       "vae_numpy_version": __version__}, sort_keys=True)


def fixture_config(fixture):
    r"""The fixture's ``(VAEConfig, reduction)``, parsed from its ``config`` entry.

    Raises TypeError for a fixture that is not a dict, ValueError naming what is wrong with
    its ``config`` entry (missing, not JSON, no reduction, not a valid VAEConfig).
    """
    if not isinstance(fixture, Mapping):
        raise TypeError(f"a fixture is a dict of arrays (make_fixture, read_fixture), got "
                        f"{type(fixture).__name__}")
    if "config" not in fixture:
        raise ValueError("not a vae_numpy fixture: no 'config' entry; make one with "
                         "`python -m vae_numpy fixture --out case.npz`")
    try:
        d = json.loads(str(fixture["config"]))
    except ValueError as err:
        raise ValueError(f"the fixture's 'config' entry is not JSON: {err}") from None
    if not isinstance(d, dict) or d.get("reduction") not in REDUCTIONS:
        raise ValueError(f"the fixture's 'config' entry must be a JSON object with a "
                         f"'reduction' in {list(REDUCTIONS)} and the VAEConfig fields, got "
                         f"{str(fixture['config'])[:80]!r}")
    reduction = d.pop("reduction")
    for key in ("vae_numpy_version", "objective", "k"):
        d.pop(key, None)
    return VAEConfig.from_dict(d), reduction


def fixture_objective(fixture):
    r"""``("vae", None)`` or ``("iwae", K)``: what the fixture's loss is (VAE fixtures written
    before IWAE fixtures existed have no "objective" in their config and are "vae")."""
    d = json.loads(str(fixture["config"]))
    return d.get("objective", "vae"), d.get("k")


def fixture_params(fixture):
    r"""``{name: array}`` of the parameters (W as (in, out)), in vae_numpy's order."""
    cfg, _ = fixture_config(fixture)
    missing = [f"param/{k}" for k in param_shapes(cfg) if f"param/{k}" not in fixture]
    if missing:
        raise ValueError(f"fixture is missing entries {missing[:4]} that its config needs")
    return {k: fixture[f"param/{k}"] for k in param_shapes(cfg)}


def expected_shapes(cfg, batch, objective="vae", k=None):
    r"""``{key: shape}`` of every array entry of a fixture for cfg and B = batch (and K = k
    importance samples for ``objective="iwae"``)."""
    K, J = k, cfg.latent_dim
    shapes = {f"param/{name}": s for name, s in param_shapes(cfg).items()}
    if objective == "iwae":
        shapes.update({"x": (batch, cfg.input_dim), "eps": (K, batch, J), "loss": (),
                       "iw_bound": (batch,), "log_weights": (K, batch),
                       "mu": (batch, J), "logvar": (batch, J)})
    else:
        shapes.update({"x": (batch, cfg.input_dim), "eps": (batch, J), "loss": (),
                       "rec": (batch,), "kl": (batch,), "z": (batch, J),
                       "mu": (batch, J), "logvar": (batch, J)})
    shapes.update({f"grad/{name}": s for name, s in param_shapes(cfg).items()})
    if objective == "iwae":
        for estimator in ESTIMATORS[1:]:
            shapes.update({f"grad_{estimator}/{name}": s
                           for name, s in param_shapes(cfg).items() if name.startswith("enc.")})
    return shapes


def validate_fixture(fixture):
    r"""Raise ValueError naming any entry that is missing, has the wrong shape, or is not finite."""
    cfg, _ = fixture_config(fixture)
    objective, k = fixture_objective(fixture)
    check_objective(objective, k)
    if "x" not in fixture or np.ndim(fixture["x"]) != 2:
        raise ValueError("fixture has no 'x' entry of shape (B, D)")
    expected = expected_shapes(cfg, np.shape(fixture["x"])[0], objective, k)
    optional = OPTIONAL_FIXTURE_KEYS if objective == "vae" else ()
    missing = [k for k in expected if k not in fixture and k not in optional]
    if missing:
        raise ValueError(f"fixture is missing entries {missing}")
    for key, shape in expected.items():
        if key in fixture and np.shape(fixture[key]) != shape:
            raise ValueError(f"fixture entry {key!r} has shape {np.shape(fixture[key])}, "
                             f"expected {shape} for its config")
    non_finite = [k for k in expected if k in fixture and not np.all(np.isfinite(fixture[k]))]
    if non_finite:   # NaN params would compare as PASS: nothing computed from them is checked
        raise ValueError(f"fixture entries {non_finite[:4]} hold NaN or inf; a fixture holds "
                         "finite numbers only (make a new one with `python -m vae_numpy "
                         "fixture`)")


def write_fixture(path, fixture):
    r"""Write a fixture to ``path`` (an ``.npz``) atomically: a temp file, then os.replace."""
    validate_fixture(fixture)
    with atomic_write(path) as f:
        np.savez(f, **fixture)
    return os.fspath(path)


def read_fixture(path):
    r"""Read a fixture written by :func:`write_fixture` (no pickles), validated and finite.

    Raises OSError when the file cannot be opened and :class:`vae_numpy.errors.FileFormatError`
    (a ValueError naming the file) for any problem of its content: not an .npz, a bad
    ``config`` entry, a missing entry or wrong shape, NaN or inf anywhere (docs/files.md).
    """
    fixture = read_npz(path)
    config = json_entry(fixture, "config", path, dict)
    if config.get("reduction") not in REDUCTIONS:
        raise FileFormatError(path, f"the config's reduction must be one of {REDUCTIONS}, "
                                    f"found {config.get('reduction')!r}")
    try:
        validate_fixture(fixture)
    except (TypeError, ValueError, IndexError, KeyError) as err:
        raise FileFormatError(path, f"not a valid fixture: {err}") from err
    return fixture
