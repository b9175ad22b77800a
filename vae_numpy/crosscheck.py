r"""Check another framework's VAE against vae_numpy: fixtures and the comparison report.

Shape letters: B batch, D data dimensions, J latent dimensions.

A *fixture* is one test case that any framework can load: the configuration, every parameter,
an input batch ``x``, the noise ``eps``, and what vae_numpy computes from them (the loss, the
per-example terms, ``z`` and every gradient). Load the same parameters into your model, feed
the same ``x`` and ``eps``, and hand your numbers to :func:`compare`:

    fixture = make_fixture(VAEConfig(input_dim=12, latent_dim=3, encoder_hidden=(8,),
                                     decoder_hidden=(8,)), batch=4, seed=0)
    report = compare(fixture, {"loss": loss, "rec": rec, "kl": kl, "z": z,
                               "grads": {"enc.0.W": ..., ...}})
    print(report)          # a table, worst tensor first, and a verdict line
    report.passed          # bool

Fixture layout (keys of the dict and of the ``.npz`` file):

    config        0-d string array: JSON of the VAEConfig fields plus "reduction" and
                  "vae_numpy_version"
    param/<name>  every parameter; W is (in, out), so PyTorch's nn.Linear.weight is W.T
    x (B, D), eps (B, J)
    loss ()       reduce_b(rec_weight * rec_b + beta * kl_b), reduce = mean or sum over the
                  batch (rec_weight = 1, the default, is the beta-weighted -ELBO)
    rec (B,), kl (B,), z (B, J)
    grad/<name>   d loss / d param, the same shapes as param/<name>

Error measure (the one of :func:`vae_numpy.gradcheck.rel_error`): for a tensor ``a`` from the
candidate and ``b`` from the fixture,

    rel = max_i |a_i - b_i| / max(max_i |a_i|, max_i |b_i|, 1e-30)

i.e. the worst entry's error relative to the tensor's scale. Entry-by-entry relative error
would flag entries that are zero up to round-off, where any two implementations disagree.
"""
import json
import os
from dataclasses import dataclass

import numpy as np

from ._version import __version__
from .atomic import atomic_write
from .errors import FileFormatError
from .gradcheck import rel_error
from .npfiles import check_finite, json_entry, read_npz
from .model import (REDUCTIONS, VAEConfig, encode, init_params, loss_and_grads, param_shapes,
                    reduce_batch)

# --- tolerances ---------------------------------------------------------------------------
#
# A tensor passes when rel (above) <= TOLERANCES[dtype], dtype being the less precise of the
# fixture and the candidate.
#
# float64: two float64 implementations of the same formulas differ only by round-off. Each
#   operation adds up to u = 1.1e-16 relative error; a sum of n terms adds up to ~n * u (about
#   sqrt(n) * u in practice), and a value passes through a few dozen operations and sums over
#   D, B and the hidden widths. For the 784-400-20 model that bounds the error near 1e-12, and
#   vae_numpy against an independent PyTorch model measures ~1e-15. 1e-10 leaves a wide margin
#   for deeper or wider models while every real bug we know of (a wrong constant, a missing
#   1/2, a transposed weight, a mean instead of a sum) is wrong by 1e-3 or far more.
# float32: u = 6.0e-8. Measured on the 784-400-20 model at batch 128 (float32 against the
#   float64 fixture): ~7e-7 for the Bernoulli and Gaussian likelihoods and up to ~1e-5 for the
#   continuous Bernoulli, whose normalizer gradient 1/l - 1/sinh(l) cancels two numbers of
#   size 1/|l| near l = 0 (about 100 * u at the series switch). 1e-4 is 10x above the worst
#   measured case and still 100x below the bugs above.
TOLERANCE_FLOAT64 = 1e-10
TOLERANCE_FLOAT32 = 1e-4
TOLERANCES = {"float64": TOLERANCE_FLOAT64, "float32": TOLERANCE_FLOAT32}

FORWARD_KEYS = ("loss", "rec", "kl", "z")


# --- making, writing and reading fixtures -------------------------------------------------

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


def make_fixture(cfg, batch, seed, reduction="mean"):
    r"""Build a fixture: parameters, x, eps and vae_numpy's loss, terms, z and gradients.

    Everything is drawn from ``numpy.random.default_rng(seed)``, in this order: the parameters
    (:func:`vae_numpy.init_params`, PyTorch's nn.Linear initialization), x (:func:`draw_data`),
    then eps ~ N(0, I) of shape (B, J).

    Parameters
    ----------
    cfg : VAEConfig (its dtype is the fixture's dtype)
    batch : B, number of examples
    seed : int
    reduction : "mean" or "sum" over the batch

    Returns
    -------
    dict in the fixture layout of the module docstring.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if int(batch) != batch or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    x = draw_data(cfg, batch, rng)  # (B, D)
    eps = rng.standard_normal((batch, cfg.latent_dim)).astype(cfg.dtype)  # (B, J)
    loss, grads, terms = loss_and_grads(params, x, eps, cfg, reduction=reduction)
    fixture = {"config": np.array(_config_json(cfg, reduction))}
    fixture.update({f"param/{k}": v for k, v in params.items()})
    fixture.update({"x": x, "eps": eps, "loss": np.asarray(loss, dtype=cfg.dtype),
                    "rec": terms["rec"], "kl": terms["kl"], "z": terms["z"]})
    fixture.update({f"grad/{k}": v for k, v in grads.items()})
    return fixture


def _config_json(cfg, reduction):
    return json.dumps({**cfg.to_dict(), "reduction": reduction,
                       "vae_numpy_version": __version__}, sort_keys=True)


def fixture_config(fixture):
    r"""The fixture's ``(VAEConfig, reduction)``, parsed from its ``config`` entry."""
    d = json.loads(str(fixture["config"]))
    reduction = d.pop("reduction")
    d.pop("vae_numpy_version", None)
    return VAEConfig.from_dict(d), reduction


def fixture_params(fixture):
    r"""``{name: array}`` of the parameters (W as (in, out)), in vae_numpy's order."""
    cfg, _ = fixture_config(fixture)
    return {k: fixture[f"param/{k}"] for k in param_shapes(cfg)}


def expected_shapes(cfg, batch):
    r"""``{key: shape}`` of every array entry of a fixture for cfg and B = batch."""
    shapes = {f"param/{k}": s for k, s in param_shapes(cfg).items()}
    shapes.update({"x": (batch, cfg.input_dim), "eps": (batch, cfg.latent_dim), "loss": (),
                   "rec": (batch,), "kl": (batch,), "z": (batch, cfg.latent_dim)})
    shapes.update({f"grad/{k}": s for k, s in param_shapes(cfg).items()})
    return shapes


def validate_fixture(fixture):
    r"""Raise ValueError naming any entry that is missing or has the wrong shape."""
    if "config" not in fixture:
        raise ValueError("not a vae_numpy fixture: no 'config' entry; make one with "
                         "`python -m vae_numpy fixture --out case.npz`")
    cfg, _ = fixture_config(fixture)
    if "x" not in fixture:
        raise ValueError("fixture has no 'x' entry")
    expected = expected_shapes(cfg, np.shape(fixture["x"])[0])
    missing = [k for k in expected if k not in fixture]
    if missing:
        raise ValueError(f"fixture is missing entries {missing}")
    for key, shape in expected.items():
        if np.shape(fixture[key]) != shape:
            raise ValueError(f"fixture entry {key!r} has shape {np.shape(fixture[key])}, "
                             f"expected {shape} for its config")


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
    check_finite(fixture, path, "fixture entry", "a fixture holds finite numbers only; make a "
                 "new one with `python -m vae_numpy fixture`")
    return fixture


# --- the candidate: another implementation's numbers -----------------------------------------

def to_numpy(a):
    r"""An array from a NumPy / PyTorch / JAX / TensorFlow value (torch: detached, on CPU)."""
    if hasattr(a, "detach"):  # torch.Tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def from_pytorch_layout(name, a):
    r"""PyTorch's nn.Linear.weight (and its .grad) is (out, in) = W.T; return W's (in, out)."""
    return a.T if name.endswith(".W") else a


def normalize_candidate(candidate, pytorch_layout=False):
    r"""Flatten a candidate dict to fixture keys: ``{"grads": {n: g}}`` becomes ``grad/<n>``."""
    flat = {}
    for key, value in candidate.items():
        if key == "grads":
            flat.update({f"grad/{n}": g for n, g in value.items()})
        else:
            flat[key] = value
    flat = {k: to_numpy(v) for k, v in flat.items()}
    if pytorch_layout:
        flat = {k: from_pytorch_layout(k, v) if k.startswith("grad/") else v
                for k, v in flat.items()}
    return flat


# --- the report ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    r"""One tensor's comparison.

    status : "ok", "FAIL" (beyond tolerance or not finite), "shape" (wrong shape) or
        "missing" (not in the candidate).
    """
    name: str
    shape: tuple
    status: str
    abs_error: float = float("nan")
    rel_error: float = float("nan")
    hint: str = ""


@dataclass
class Report:
    r"""The comparison of a candidate with a fixture; ``str(report)`` is the table.

    entries : list of Entry, worst first.
    dtype, tolerance : the precision compared at and its relative tolerance.
    ignored : candidate keys that are not fixture keys (e.g. PyTorch names like fc1.weight).
    diagnoses : sentences about likely causes of failures.
    require_all : whether a tensor missing from the candidate fails the check.
    """
    entries: list
    dtype: str
    tolerance: float
    ignored: list
    diagnoses: list
    require_all: bool = False

    def __getitem__(self, name):
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(f"no tensor {name!r} in the report; have {[e.name for e in self.entries]}")

    @property
    def failing(self):
        r"""Names of the tensors that fail, worst first."""
        bad = ("FAIL", "shape", "missing") if self.require_all else ("FAIL", "shape")
        return [e.name for e in self.entries if e.status in bad]

    @property
    def missing(self):
        return [e.name for e in self.entries if e.status == "missing"]

    @property
    def passed(self):
        r"""True when no compared tensor fails (and, with require_all, none is missing)."""
        return not self.failing and any(e.status == "ok" for e in self.entries)

    def verdict(self):
        r"""One line: PASS or FAIL, how many tensors, and the worst one."""
        checked = [e for e in self.entries if e.status != "missing"]
        where = f"relative tolerance {self.tolerance:.0e} ({self.dtype})"
        if self.passed:
            worst = checked[0]
            line = (f"PASS: {len(checked)} tensors agree within {where}; worst "
                    f"{worst.name} at {worst.rel_error:.1e}")
            if self.missing:
                line += f". Not checked (not given): {len(self.missing)} tensors"
            return line + "."
        if not checked:
            return "FAIL: the candidate has none of the fixture's tensors (see 'ignored')."
        failing = self.failing
        # forward values in data-flow order first: the earliest one that fails is nearest the bug
        forward = [k for k in ("z", "kl", "rec", "loss") if k in failing]
        grads = [k for k in failing if k not in forward]
        parts = forward + ([f"{len(grads)} gradients (worst {grads[0]})"] if grads else [])
        return (f"FAIL: {len(failing)} of {len(self.entries)} tensors differ beyond {where}: "
                f"{', '.join(parts)}.")

    def __str__(self):
        rows = [("tensor", "shape", "max abs err", "max rel err", "status")]
        for e in self.entries:
            rows.append((e.name, str(e.shape), _fmt(e.abs_error), _fmt(e.rel_error),
                         e.status + (f"  {e.hint}" if e.hint else "")))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        if self.ignored:
            lines.append(f"ignored (not fixture names): {', '.join(self.ignored)}")
        lines.extend(f"likely cause: {d}" for d in self.diagnoses)
        lines.append(self.verdict())
        return "\n".join(lines)


def _fmt(v):
    return "-" if np.isnan(v) else f"{v:.2e}"


def _compare_one(name, a, b, tol, pytorch_layout):
    r"""Entry for one tensor: candidate ``a`` against fixture ``b``."""
    if a is None:
        return Entry(name, b.shape, "missing")
    if a.shape != b.shape:
        hint = ""
        if a.ndim == 2 and a.shape == b.shape[::-1]:
            hint = ("looks like (in, out) already: drop pytorch_layout" if pytorch_layout else
                    "looks like (out, in): PyTorch layout? pass pytorch_layout=True")
        return Entry(name, a.shape, "shape", hint=hint or f"expected shape {b.shape}")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not np.all(np.isfinite(a64)):
        return Entry(name, b.shape, "FAIL", float("inf"), float("inf"), "NaN or inf in candidate")
    err, rel = float(np.max(np.abs(a64 - b64), initial=0)), rel_error(a64, b64)
    if rel <= tol:
        return Entry(name, b.shape, "ok", err, rel)
    hint = ""
    if a.ndim == 2 and a.shape[0] == a.shape[1] and rel_error(a64.T, b64) <= tol:
        hint = "agrees when transposed: PyTorch layout? pass pytorch_layout=True"
    return Entry(name, b.shape, "FAIL", err, rel, hint)


def _sort_key(e):
    rank = {"shape": 0, "FAIL": 1, "ok": 2, "missing": 3}[e.status]
    return rank, -e.rel_error if not np.isnan(e.rel_error) else 0.0


def _candidate_dtype(flat):
    floats = [a.dtype for a in flat.values() if a.dtype.kind == "f"]
    return "float32" if any(d.itemsize < 8 for d in floats) else "float64"


def compare(fixture, candidate, pytorch_layout=False, dtype=None, require_all=False):
    r"""Compare a candidate's loss, terms, z and gradients with a fixture.

    Parameters
    ----------
    fixture : dict from :func:`make_fixture` or :func:`read_fixture`.
    candidate : dict of arrays (NumPy, or anything ``numpy.asarray`` takes; torch tensors are
        detached) by fixture names: ``loss`` and optionally ``rec`` (B,), ``kl`` (B,),
        ``z`` (B, J), and gradients either as ``grad/<name>`` keys or as a nested
        ``{"grads": {name: array}}``.
    pytorch_layout : if True, the ``*.W`` gradients are given as (out, in), PyTorch's
        ``nn.Linear.weight.grad``, and are transposed before comparing.
    dtype : "float64" or "float32", the precision whose tolerance applies. Default: the less
        precise of the fixture and the candidate's arrays.
    require_all : if True, a fixture tensor missing from the candidate fails the check;
        otherwise it is listed as missing and not checked (``loss`` is always required).

    Returns
    -------
    Report (``print(report)``, ``report.passed``, ``report.failing``, ``report["z"]``).
    """
    validate_fixture(fixture)
    flat = normalize_candidate(candidate, pytorch_layout)
    if dtype is None:
        dtype = ("float32" if fixture_config(fixture)[0].dtype == "float32"
                 else _candidate_dtype(flat))
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype must be one of {sorted(TOLERANCES)}, got {dtype!r}")
    tol = TOLERANCES[dtype]
    names = list(FORWARD_KEYS) + [k for k in fixture if k.startswith("grad/")]
    entries = [_compare_one(n, flat.get(n), fixture[n], tol, pytorch_layout) for n in names]
    if entries[0].status == "missing":  # a loss is the least a candidate must give
        entries[0] = Entry("loss", (), "FAIL", hint="the candidate has no 'loss'")
    entries.sort(key=_sort_key)
    ignored = sorted(k for k in flat if k not in fixture)  # fixture inputs (x, param/...) are fine
    report = Report(entries, dtype, tol, ignored, [], require_all)
    report.diagnoses = diagnose(fixture, flat, report)
    return report


# --- likely causes ---------------------------------------------------------------------------

def _close(a, b, tol):
    return a is not None and b.shape == a.shape and rel_error(a, b) <= max(tol, 1e-6)


def diagnose(fixture, flat, report):
    r"""Sentences naming likely causes, from the known mistakes' exact signatures.

    Each test recomputes what a candidate with that mistake would give from the fixture
    (e.g. ``rec * D`` for a reconstruction averaged over pixels) and checks it matches.
    """
    failing = {e.name for e in report.entries if e.status in ("FAIL", "shape") and e.name in flat}
    out = []
    cfg, reduction = fixture_config(fixture)
    tol = report.tolerance
    if "z" in failing:
        params = {k: v.astype(np.float64) for k, v in fixture_params(fixture).items()}
        cfg64 = VAEConfig.from_dict({**cfg.to_dict(), "dtype": "float64"})
        mu, logvar = encode(params, fixture["x"].astype(np.float64), cfg64)
        eps = fixture["eps"]
        if _close(flat["z"], mu + np.exp(logvar) * eps, tol):
            out.append("z = mu + exp(logvar) * eps: the sampler uses the variance as the "
                       "standard deviation; std = exp(0.5 * logvar)")
        elif _close(flat["z"], mu, tol):
            out.append("z = mu: the noise eps is not applied (eval mode?); z = mu + std * eps")
        else:
            out.append("z differs: check z = mu + exp(0.5 * logvar) * eps with the fixture's "
                       "eps, and the encoder")
    if "kl" in failing:
        if _close(flat["kl"], -fixture["kl"], tol):
            out.append("kl = -KL: the KL has the wrong sign; "
                       "KL = 0.5 * sum_j (mu**2 + exp(logvar) - 1 - logvar) >= 0")
        elif _close(flat["kl"], fixture["kl"] / cfg.latent_dim, tol):
            out.append("kl is averaged over the J latent dimensions; sum it")
    if "rec" in failing:
        if _close(flat["rec"], fixture["rec"] / cfg.input_dim, tol):
            out.append("rec is averaged over the D data dimensions; -log p(x|z) sums over "
                       "them (e.g. BCE with reduction='none' then .sum(-1))")
    if "loss" in failing and not failing & {"rec", "kl", "z"} and "rec" in flat:
        B = fixture["x"].shape[0]
        other = B if reduction == "mean" else 1 / B
        if _close(flat["loss"], fixture["loss"] * other, tol):
            out.append(f"rec and kl agree but loss is {'B *' if other == B else '1/B *'} the "
                       f"fixture's: the fixture's reduction over the batch is {reduction!r}")
        elif cfg.beta != 1 and _close(flat["loss"], reduce_batch(
                cfg.rec_weight * fixture["rec"] + fixture["kl"], reduction), tol):
            out.append(f"rec and kl agree but the loss ignores beta = {cfg.beta}")
    return out


def write_report(path, report):
    r"""Write ``str(report)`` and a newline to a text file, atomically."""
    with atomic_write(path, "w") as f:
        f.write(str(report) + "\n")
    return os.fspath(path)


def compare_files(fixture_path, candidate_path, pytorch_layout=False, dtype=None,
                  require_all=False):
    r""":func:`compare` for a fixture ``.npz`` and a candidate ``.npz`` (keys loss, rec, kl, z,
    grad/<name>)."""
    candidate = read_npz(candidate_path)   # the reader contract of docs/files.md
    return compare(read_fixture(fixture_path), candidate, pytorch_layout, dtype, require_all)
