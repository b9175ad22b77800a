r"""Check another framework's VAE against vae_numpy: the comparison and its report.

Shape letters: B batch, D data dimensions, J latent dimensions.

A *fixture* is one test case that any framework can load: the configuration, every parameter,
an input batch ``x``, the noise ``eps``, and what vae_numpy computes from them (the loss, the
per-example terms, ``z`` and every gradient). Load the same parameters into your model, feed
the same ``x`` and ``eps``, and hand your numbers to :func:`compare`:

    fixture = make_fixture(VAEConfig(input_dim=12, latent_dim=3, encoder_hidden=(8,),
                                     decoder_hidden=(8,)), batch=4, seed=0)
    report = compare(fixture, {"loss": loss, "grads": {"enc.0.W": ..., ...},
                               "rec": rec, "kl": kl, "z": z, "mu": mu, "logvar": logvar})
    print(report)          # a table, worst tensor first, and a verdict line
    report.status          # "PASS", "FAIL" or "INCOMPLETE"; report.passed is a bool

The loss and every gradient are required; rec, kl, z, mu and logvar are optional and only
sharpen the diagnosis (:mod:`vae_numpy.crosscheck.causes`). Moving parameters into a PyTorch or
Flax model and gradients out of it: :mod:`vae_numpy.crosscheck.interop`; under pytest:
:func:`vae_numpy.crosscheck.testing.assert_matches_fixture`.

The fixture itself (its layout; making, writing and reading it):
:mod:`vae_numpy.crosscheck.fixture`.

Error measure (the one of :func:`vae_numpy.gradcheck.rel_error`): for a tensor ``a`` from the
candidate and ``b`` from the fixture,

    rel = max_i |a_i - b_i| / max(max_i |a_i|, max_i |b_i|, 1e-30)

i.e. the worst entry's error relative to the tensor's scale. Entry-by-entry relative error
would flag entries that are zero up to round-off, where any two implementations disagree.
"""
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..data.npfiles import read_npz
from ..files.atomic import atomic_write
from ..gradcheck import rel_error
from ..model import encode, reduce_batch
from ..iwae import ESTIMATORS
from .causes import HEAD_GRADS, find_causes
from .estimator_causes import find_estimator_causes
from .fixture import (IWAE_FORWARD_KEYS, OPTIONAL_FIXTURE_KEYS, fixture_config,
                      fixture_objective, fixture_params, read_fixture, validate_fixture)

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
COMPARE_TOLERANCE_FLOAT64 = 1e-10
COMPARE_TOLERANCE_FLOAT32 = 1e-4
TOLERANCES = {"float64": COMPARE_TOLERANCE_FLOAT64, "float32": COMPARE_TOLERANCE_FLOAT32}
# The names of 0.1.0 (they clash with gradcheck.TOLERANCE_FLOAT64 = 1e-7, another bar).
TOLERANCE_FLOAT64 = COMPARE_TOLERANCE_FLOAT64
TOLERANCE_FLOAT32 = COMPARE_TOLERANCE_FLOAT32

# What a candidate may hand over besides the gradients. The loss and every gradient are
# required for a PASS; the others only sharpen the diagnosis of a failure. (iw_bound and
# log_weights are those of an IWAE fixture.)
FORWARD_KEYS = ("loss", "rec", "kl", "z", "mu", "logvar", "iw_bound", "log_weights")
REQUIRED_KEYS = ("loss",)
LOGVAR_HEADS = ("logvar", "log_sigma")


# --- the candidate: another implementation's numbers -----------------------------------------

def to_numpy(a):
    r"""An array from a NumPy / PyTorch / JAX / TensorFlow value (torch: detached, on CPU)."""
    if hasattr(a, "detach"):  # torch.Tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def from_pytorch_layout(name, a):
    r"""PyTorch's nn.Linear.weight (and its .grad) is (out, in) = W.T; return W's (in, out)."""
    return a.T if name.endswith(".W") else a


def _flatten(tree, prefix):
    r"""``{"a": {"b": v}}`` -> ``{prefix + "a/b": v}`` for nested mappings (a Flax tree)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def normalize_candidate(candidate, pytorch_layout=False, logvar_head="logvar"):
    r"""Flatten a candidate dict to fixture keys: ``{"grads": {n: g}}`` becomes ``grad/<n>``.

    A nested gradient tree (e.g. Flax's ``{"params": {"encoder": {"fc1": {"kernel": ...}}}}``)
    is flattened to ``grad/params/encoder/fc1/kernel``: not a fixture name, so the report lists
    it as unrecognised (map it with :func:`vae_numpy.crosscheck.interop.tree_grads`).

    logvar_head="log_sigma": the candidate's encoder head outputs log sigma, with 0.5 * W and
    0.5 * b loaded into it; its ``logvar`` entry (log sigma) is doubled and the head's
    gradients ``grad/enc.logvar.*`` (d loss / d (W / 2) = 2 * d loss / dW) are halved.
    """
    if logvar_head not in LOGVAR_HEADS:
        raise ValueError(f"logvar_head must be one of {LOGVAR_HEADS}, got {logvar_head!r}")
    if not isinstance(candidate, Mapping):
        raise TypeError(f"candidate must be a dict of arrays by fixture names (loss, "
                        f"grad/<name>, ...), got {type(candidate).__name__}")
    flat = {}
    for key, value in candidate.items():
        if key == "grads":
            if not isinstance(value, Mapping):
                raise TypeError(f"candidate['grads'] must be a dict of arrays by vae_numpy "
                                f"names, got {type(value).__name__}")
            flat.update(_flatten(value, "grad/"))
        elif isinstance(value, Mapping):
            flat.update(_flatten(value, f"{key}/"))
        else:
            flat[key] = value
    flat = {str(k): _array(k, v) for k, v in flat.items()}
    if pytorch_layout:
        flat = {k: from_pytorch_layout(k, v) if k.startswith("grad/") else v
                for k, v in flat.items()}
    if logvar_head == "log_sigma":
        scale = {"logvar": 2.0, "grad/enc.logvar.W": 0.5, "grad/enc.logvar.b": 0.5}
        flat = {k: v * scale[k] if k in scale and v.dtype.kind in "iufc" else v
                for k, v in flat.items()}
    return flat


def _array(name, value):
    try:
        return to_numpy(value)
    except (ValueError, TypeError) as err:   # ragged lists, objects numpy cannot take
        raise ValueError(f"candidate[{name!r}] is not an array NumPy can read: {err}") from None


# --- the report ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    r"""One tensor's comparison.

    status : "ok", "FAIL" (beyond tolerance or not finite), "shape" (wrong shape) or
        "missing" (not in the candidate).
    required : whether the verdict needs this tensor (the loss and every gradient).
    """
    name: str
    shape: tuple
    status: str
    abs_error: float = float("nan")
    rel_error: float = float("nan")
    hint: str = ""
    required: bool = False


PASS, FAIL, INCOMPLETE = "PASS", "FAIL", "INCOMPLETE"


@dataclass
class Report:
    r"""The comparison of a candidate with a fixture; ``str(report)`` is the table.

    entries : list of Entry, worst first.
    dtype, tolerance : the precision compared at and its relative tolerance.
    ignored : candidate keys that are not fixture names (e.g. PyTorch names like fc1.weight);
        any makes the check INCOMPLETE.
    diagnoses : sentences about likely causes of failures.
    notes : remarks on how the check was made (e.g. a float32 candidate, a log-sigma head).
    require_all : kept for 0.1.0 callers; has no effect (the loss and every gradient are
        always required, the other tensors never).

    The verdict (``report.status``):
      FAIL        a compared tensor disagrees (or has the wrong shape), whatever is missing;
      INCOMPLETE  nothing compared disagrees, but the loss or a gradient is missing, or a
                  candidate key was not recognised;
      PASS        the loss and every gradient were compared and agree, and every candidate
                  key was recognised (rec, kl, z, mu, logvar are optional).
    """
    entries: list
    dtype: str
    tolerance: float
    ignored: list
    diagnoses: list
    require_all: bool = True
    notes: list = field(default_factory=list)

    def __getitem__(self, name):
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(f"no tensor {name!r} in the report; have {[e.name for e in self.entries]}")

    @property
    def failing(self):
        r"""Names of the compared tensors that disagree (FAIL or wrong shape), worst first."""
        return [e.name for e in self.entries if e.status in ("FAIL", "shape")]

    @property
    def missing(self):
        r"""Names of the fixture tensors the candidate did not give (required or not)."""
        return [e.name for e in self.entries if e.status == "missing"]

    @property
    def missing_required(self):
        r"""Names of the required tensors (loss, gradients) the candidate did not give."""
        return [e.name for e in self.entries if e.status == "missing" and e.required]

    @property
    def checked(self):
        r"""Names of the tensors that were compared (given with the right shape or not)."""
        return [e.name for e in self.entries if e.status != "missing"]

    @property
    def status(self):
        r"""``"PASS"``, ``"FAIL"`` or ``"INCOMPLETE"`` (rules in the class docstring)."""
        if self.failing:
            return FAIL
        if self.missing_required or self.ignored:
            return INCOMPLETE
        return PASS

    @property
    def passed(self):
        r"""True only for a PASS: everything required compared, and all of it agrees."""
        return self.status == PASS

    def verdict(self):
        r"""One line: PASS, FAIL or INCOMPLETE, with counts and what to do."""
        where = f"relative tolerance {self.tolerance:.0e} ({self.dtype})"
        checked = [e for e in self.entries if e.status != "missing"]
        optional_missing = [n for n in self.missing if n not in self.missing_required]
        status = self.status
        if status == PASS:
            worst = checked[0]
            n_grads = sum(e.name.startswith("grad/") for e in checked)
            extra = [k for k in FORWARD_KEYS if k in {e.name for e in checked}
                     and k not in REQUIRED_KEYS]
            line = (f"PASS: the loss and {_count(n_grads, 'gradient')} agree within {where}; "
                    f"worst {worst.name} at {worst.rel_error:.1e}")
            if extra:
                line += f". Also agree: {', '.join(extra)}"
            if optional_missing:
                line += f". Not given (optional): {', '.join(optional_missing)}"
            return line + "."
        if status == FAIL:
            failing = self.failing
            # forward values in data-flow order first: the earliest one failing is nearest the bug
            forward = [k for k in ("mu", "logvar", "z", "log_weights", "kl", "rec", "iw_bound",
                                   "loss") if k in failing]
            grads = [k for k in failing if k not in forward]
            parts = forward + ([f"{_count(len(grads), 'gradient')} (worst {grads[0]})"]
                               if grads else [])
            line = (f"FAIL: {len(failing)} of {len(checked)} compared tensors differ beyond "
                    f"{where}: {', '.join(parts)}.")
            if self.missing_required or self.ignored:
                line += " " + self._incomplete_clause()
            return line
        agree = f"{_count(len(checked), 'tensor')} agree within {where}" if checked else \
            "the candidate has none of the fixture's tensors"
        return f"INCOMPLETE: nothing compared disagrees ({agree}), but " \
               + self._incomplete_clause()

    def _incomplete_clause(self):
        r"""What is missing or unrecognised, and how to supply it."""
        parts = []
        missing = self.missing_required
        grads = [n for n in missing if n.startswith("grad/")]
        if "loss" in missing:
            parts.append("the loss is missing (hand over 'loss', the scalar your training "
                         "step minimizes)")
        if grads:
            shown = ", ".join(g[len("grad/"):] for g in grads[:4]) + (", ..." if len(grads) > 4
                                                                      else "")
            parts.append(f"{_count(len(grads), 'gradient')} missing ({shown}): hand over "
                         f"grads={{'enc.0.W': ..., ...}} by vae_numpy names")
        if self.ignored:
            shown = ", ".join(self.ignored[:4]) + (", ..." if len(self.ignored) > 4 else "")
            parts.append(f"{_count(len(self.ignored), 'candidate key')} not recognised "
                         f"({shown}){_mapping_advice(self.ignored)}")
        return "; ".join(parts) + "."

    def __str__(self):
        rows = [("tensor", "shape", "max abs err", "max rel err", "status")]
        for e in self.entries:
            status = e.status
            if e.status == "missing":
                status = "missing (required)" if e.required else "not given"
            rows.append((e.name, str(e.shape), _fmt(e.abs_error, e.status),
                         _fmt(e.rel_error, e.status), status + (f"  {e.hint}" if e.hint else "")))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        if self.ignored:
            lines.append(f"not recognised (not fixture names): {', '.join(self.ignored)}")
        lines.extend(f"note: {n}" for n in self.notes)
        lines.extend(f"likely cause: {d}" for d in self.diagnoses)
        lines.append(self.verdict())
        return "\n".join(lines)


def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _mapping_advice(keys):
    r"""How to map unrecognised keys, from what they look like."""
    text = " ".join(keys)
    if "kernel" in text or "params/" in text:
        return (": a Flax/JAX tree; map it with "
                "vae_numpy.crosscheck.interop.tree_grads(grads, names)")
    if "weight" in text or "bias" in text:
        return (": PyTorch names; map them with "
                "vae_numpy.crosscheck.interop.torch_grads(model, names)")
    return ": use fixture names (loss, rec, kl, z, mu, logvar, grad/<name>)"


def _fmt(v, status="ok"):
    if status == "missing":
        return "-"
    return "nan" if np.isnan(v) else f"{v:.2e}"


def _compare_one(name, a, b, tol, pytorch_layout, required):
    r"""Entry for one tensor: candidate ``a`` against fixture ``b``."""
    if a is None:
        return Entry(name, b.shape, "missing", required=required)
    if a.shape != b.shape:
        hint = ""
        if a.ndim == 2 and a.shape == b.shape[::-1]:
            hint = ("looks like (in, out) already: drop pytorch_layout" if pytorch_layout else
                    "looks like (out, in): PyTorch layout? pass pytorch_layout=True")
        return Entry(name, a.shape, "shape", hint=hint or f"expected shape {b.shape}",
                     required=required)
    if a.dtype.kind not in "biufc":
        return Entry(name, b.shape, "FAIL", float("nan"), float("nan"),
                     f"not numbers: the candidate's array has dtype {a.dtype}", required=required)
    if a.dtype.kind == "c":   # a real loss has real gradients
        imag = float(np.max(np.abs(a.imag), initial=0))
        if imag != 0 or not np.all(np.isfinite(a.real)):
            return Entry(name, b.shape, "FAIL", float("nan"), float("nan"),
                         f"complex values with an imaginary part up to {imag:.3g}: a real loss "
                         "has real gradients (a complex step or FFT left it?)", required=required)
        a = a.real
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not np.all(np.isfinite(a64)):
        n_nan, n_inf = int(np.isnan(a64).sum()), int(np.isinf(a64).sum())
        what = ", ".join(p for p in (f"{n_nan} NaN" if n_nan else "",
                                     f"{n_inf} inf" if n_inf else "") if p)
        return Entry(name, b.shape, "FAIL", float("nan"), float("nan"),
                     f"not finite: {what} of {a64.size} entries in the candidate",
                     required=required)
    err, rel = float(np.max(np.abs(a64 - b64), initial=0)), rel_error(a64, b64)
    if rel <= tol:
        return Entry(name, b.shape, "ok", err, rel, required=required)
    hint = ""
    if a.ndim == 2 and a.shape[0] == a.shape[1] and rel_error(a64.T, b64) <= tol:
        hint = "agrees when transposed: PyTorch layout? pass pytorch_layout=True"
    return Entry(name, b.shape, "FAIL", err, rel, hint, required=required)


def _sort_key(e):
    rank = {"shape": 0, "FAIL": 1, "ok": 2, "missing": 3}[e.status]
    if e.status == "FAIL" and np.isnan(e.rel_error):
        return rank, -np.inf, 0  # not finite: worst of all
    return rank, -e.rel_error if not np.isnan(e.rel_error) else 0.0, not e.required


def _candidate_dtype(flat):
    floats = [a.dtype for a in flat.values() if a.dtype.kind == "f"]
    return "float32" if any(d.itemsize < 8 for d in floats) else "float64"


def reference_values(fixture, estimator=None):
    r"""The fixture's values for every comparable name: loss, rec, kl, z, mu, logvar and
    grad/<name>. mu and logvar are recomputed from the parameters for a fixture written before
    they were stored (0.1.0), with the fixture's own dtype.

    An IWAE fixture's names are loss, iw_bound, log_weights, mu, logvar and grad/<name>; with
    ``estimator="stl"`` or ``"dreg"`` the encoder's ``grad/enc.*`` are the fixture's
    ``grad_stl/enc.*`` or ``grad_dreg/enc.*``."""
    if fixture_objective(fixture)[0] == "iwae":
        ref = {k: fixture[k] for k in IWAE_FORWARD_KEYS}
        ref.update({k: fixture[k] for k in fixture if k.startswith("grad/")})
        if estimator in ("stl", "dreg"):
            ref.update({k: fixture[f"grad_{estimator}/{k[len('grad/'):]}"] for k in ref
                        if k.startswith("grad/enc.")})
        return ref
    ref = {k: fixture[k] for k in ("loss", "rec", "kl", "z")}
    if all(k in fixture for k in OPTIONAL_FIXTURE_KEYS):
        ref.update({k: fixture[k] for k in OPTIONAL_FIXTURE_KEYS})
    else:
        cfg, _ = fixture_config(fixture)
        ref["mu"], ref["logvar"] = encode(fixture_params(fixture), fixture["x"], cfg)
    ref.update({k: fixture[k] for k in fixture if k.startswith("grad/")})
    return ref


def _scalar_term_reference(name, a, ref, reduction):
    r"""A rec or kl handed over as one number is compared with the batch reduction of the
    fixture's per-example values (the fixture's reduction: mean or sum)."""
    if name in ("rec", "kl") and a is not None and a.shape == () and ref.shape != ():
        return np.asarray(reduce_batch(ref.astype(np.float64), reduction))
    return ref


def compare(fixture, candidate, pytorch_layout=False, dtype=None, require_all=True,
            logvar_head="logvar", estimator=None):
    r"""Compare a candidate's loss, gradients (required) and terms (optional) with a fixture.

    Parameters
    ----------
    fixture : dict from :func:`make_fixture` or :func:`read_fixture`.
    candidate : dict of arrays (NumPy, or anything ``numpy.asarray`` takes; torch tensors are
        detached) by fixture names: ``loss`` () and every gradient, either as ``grad/<name>``
        keys or as a nested ``{"grads": {name: array}}``; optionally ``rec`` and ``kl`` (B,)
        (or each as one scalar, compared with its batch reduction), ``z``, ``mu`` and
        ``logvar`` (B, J), which sharpen the diagnosis of a failure.
    pytorch_layout : if True, the ``*.W`` gradients are given as (out, in), PyTorch's
        ``nn.Linear.weight.grad``, and are transposed before comparing.
    dtype : "float64" or "float32", the precision whose tolerance applies. Default: the less
        precise of the fixture and the candidate's arrays.
    require_all : no effect, kept for 0.1.0 callers: the loss and every gradient are always
        required (missing ones make the verdict INCOMPLETE), the other tensors never.
    logvar_head : "logvar" (the encoder's second head is log sigma**2, vae_numpy's convention)
        or "log_sigma" (it is log sigma, with 0.5 * W and 0.5 * b loaded into it: the
        candidate's ``logvar`` is doubled and that head's gradients halved before comparing).
    estimator : for an IWAE fixture (``make_fixture(..., objective="iwae", k=K)``), the
        estimator of the encoder's gradient the candidate implements: "iwae" (the default, the
        exact gradient of L_K), "stl" or "dreg" (:func:`vae_numpy.iwae_loss_and_grads`). The
        loss and the decoder's gradients are L_K's for all three. An IWAE candidate may also
        hand over ``iw_bound`` (B,), ``log_weights`` (K, B), ``mu`` and ``logvar`` (B, J).
        A failing encoder gradient that equals another estimator's, or a known stop-gradient
        mistake's, is named (:mod:`vae_numpy.crosscheck.estimator_causes`).

    Returns
    -------
    Report: ``print(report)``; ``report.status`` is "PASS", "FAIL" or "INCOMPLETE",
    ``report.passed`` True only for PASS; ``report.failing``, ``report.missing``,
    ``report["z"]``.
    """
    validate_fixture(fixture)
    estimator = check_fixture_estimator(fixture, estimator)
    flat = normalize_candidate(candidate, pytorch_layout, logvar_head)
    cfg, reduction = fixture_config(fixture)
    candidate_dtype = _candidate_dtype(flat) if flat else "float64"
    if dtype is None:
        dtype = "float32" if cfg.dtype == "float32" else candidate_dtype
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype must be one of {sorted(TOLERANCES)}, got {dtype!r}")
    tol = TOLERANCES[dtype]
    ref = reference_values(fixture, estimator)
    entries = []
    for name, b in ref.items():
        a = flat.get(name)
        b = _scalar_term_reference(name, a, b, reduction)
        required = name in REQUIRED_KEYS or name.startswith("grad/")
        entries.append(_compare_one(name, a, b, tol, pytorch_layout, required))
    entries.sort(key=_sort_key)
    ignored = sorted(k for k in flat if k not in ref and k not in fixture)  # inputs are fine
    report = Report(entries, dtype, tol, ignored, [], True, _notes(cfg, candidate_dtype,
                                                                     logvar_head, estimator))
    report.diagnoses = diagnose(fixture, flat, report, estimator)
    return report


def check_fixture_estimator(fixture, estimator):
    r"""The estimator to compare with: None for a VAE fixture, "iwae" by default for an IWAE
    fixture; a ValueError for an unknown name or an estimator with a VAE fixture."""
    if fixture_objective(fixture)[0] != "iwae":
        if estimator is not None:
            raise ValueError(f"estimator={estimator!r} applies to IWAE fixtures; this fixture "
                             "is the VAE's -ELBO (make one with `python -m vae_numpy fixture "
                             "--objective iwae --k 5`)")
        return None
    if estimator is None:
        return "iwae"
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    return estimator


def _notes(cfg, candidate_dtype, logvar_head, estimator=None):
    notes = []
    if estimator in ("stl", "dreg"):
        notes.append(f"estimator={estimator!r}: the encoder's gradients are compared with the "
                     f"fixture's grad_{estimator}/enc.*; the loss and the decoder's gradients "
                     "with the IWAE bound's")
    if cfg.dtype == "float64" and candidate_dtype == "float32":
        notes.append("a float32 candidate against a float64 fixture: checked at the float32 "
                     f"tolerance {COMPARE_TOLERANCE_FLOAT32:.0e}, not float64's "
                     f"{COMPARE_TOLERANCE_FLOAT64:.0e}; run your model in float64 "
                     "(model.double(), jax_enable_x64) for the full check")
    if logvar_head == "log_sigma":
        notes.append("logvar_head='log_sigma': the candidate's logvar was doubled and its "
                     "grad/enc.logvar.* halved before comparing")
    return notes


# --- likely causes ---------------------------------------------------------------------------

def diagnose(fixture, flat, report, estimator=None):
    r"""Sentences naming likely causes, from the known mistakes' exact signatures.

    See :mod:`vae_numpy.crosscheck.causes`: each known mistake's prediction is recomputed from the
    fixture (e.g. ``rec / D`` for a reconstruction averaged over pixels, or the loss
    ``sum rec / (B*D) + sum kl`` of ``binary_cross_entropy(..., reduction="mean")``) and
    compared with what the candidate handed over; from the loss alone when that is all there
    is. For an IWAE fixture: the estimator mistakes of
    :mod:`vae_numpy.crosscheck.estimator_causes`, read from the encoder's gradients.
    """
    if fixture_objective(fixture)[0] == "iwae":
        if not any(e.status == "FAIL" for e in report.entries if e.name.startswith("grad/enc.")):
            return []
        return find_estimator_causes(fixture, flat, estimator or "iwae", report.tolerance)
    cfg, reduction = fixture_config(fixture)
    read = FORWARD_KEYS + HEAD_GRADS  # the encoder heads' gradients tell the noise used
    status = {e.name: e.status for e in report.entries if e.name in read}
    # a tensor of the wrong shape, not real numbers or with NaN cannot match a prediction;
    # treat it as unknown
    usable = {k: v for k, v in flat.items() if k in read and status.get(k) != "shape"
              and v.dtype.kind in "biuf" and np.all(np.isfinite(v))}
    status = {k: ("FAIL" if v == "shape" else v) for k, v in status.items()}
    status = {k: (v if v != "FAIL" or k in usable else "missing") for k, v in status.items()}
    return find_causes(cfg, reduction, fixture_params(fixture), fixture["x"], fixture["eps"],
                       usable, status, report.dtype)


def write_report(path, report):
    r"""Write ``str(report)`` and a newline to a text file, atomically."""
    with atomic_write(path, "w") as f:
        f.write(str(report) + "\n")
    return os.fspath(path)


def compare_files(fixture_path, candidate_path, pytorch_layout=False, dtype=None,
                  require_all=True, logvar_head="logvar", estimator=None):
    r""":func:`compare` for a fixture ``.npz`` and a candidate ``.npz`` (keys loss, rec, kl, z,
    grad/<name>; for an IWAE fixture loss, iw_bound, log_weights, mu, logvar, grad/<name>)."""
    candidate = read_npz(candidate_path)   # the reader contract of docs/files.md
    return compare(read_fixture(fixture_path), candidate, pytorch_layout, dtype, require_all,
                   logvar_head, estimator)
