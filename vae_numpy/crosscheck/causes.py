r"""Likely causes of a failed cross-check, named from the numbers a candidate handed over.

Shape letters: B batch, D data dimensions, J latent dimensions.

Every known mistake leaves an exact signature. This module recomputes, from the fixture alone,
what a candidate with each mistake would report, and names the mistakes whose prediction
matches:

* *Sampler and encoder conventions* ("worlds"), each giving per-example ``rec`` (B,), ``kl``
  (B,) and ``z`` (B, J) from the fixture's parameters, x and eps:

      correct     z = mu + exp(0.5 * logvar) * eps,  kl = KL(mu, logvar)
      std         z = mu + exp(logvar) * eps (variance used as the std),  kl = KL(mu, logvar)
      no_noise    z = mu (eps never applied),  kl = KL(mu, logvar)
      log_sigma   the head is log sigma: z = mu + exp(s) * eps,  kl = KL(mu, 2 s), with s the
                  head's output, i.e. the fixture's logvar when the fixture's weights are
                  loaded unchanged (a correct model of another convention)

  where ``KL(mu, logvar) = 0.5 * sum_j (mu**2 + exp(logvar) - 1 - logvar)``.

* *Recombinations* of the per-example terms into one scalar: with ``R = sum_b rec_b`` and
  ``K = sum_b kl_b`` of a world,

      loss = w_r * R / (n_B * n_D) + sign * w_k * K / (m_B * m_J)

  where ``n_D`` is 1 (rec summed over D, right) or D (averaged), ``n_B`` is 1 or B (rec summed
  or averaged over the batch), likewise ``m_J`` in {1, J} and ``m_B`` in {1, B} for the KL,
  ``sign`` in {+1, -1}, ``w_r`` in {rec_weight, 1} and ``w_k`` in {beta, 1}. The fixture's own
  loss is ``n_D = m_J = 1``, ``n_B = m_B`` = 1 (sum) or B (mean), sign +1, both weights on.
  ``F.binary_cross_entropy(..., reduction="mean")`` is ``n_D = D, n_B = B``; a KL taken as
  ``torch.mean`` over everything is ``m_J = J, m_B = B``.

A scalar fits a prediction when

    |candidate - prediction| <= tol * max(|rec part| + |kl part|, |candidate|),
    tol = LOSS_FIT_TOLERANCES[dtype]

i.e. relative to the size of the terms (so a loss ``R - K`` that nearly cancels is judged by
the size of ``R`` and ``K``, not of their difference). All fits within the tolerance are
reported; when several fit, the report says that they fit equally.
"""
import itertools
from dataclasses import dataclass

import numpy as np

from ..gaussian import kl_standard_normal
from ..gradcheck import rel_error
from ..likelihoods import get_likelihood
from ..model import VAEConfig, decoder_outputs, encode

# --- tolerances ------------------------------------------------------------------------------
#
# A recombination is computed in float64 from the fixture's own rec and kl, so the only error
# is the candidate's round-off in forming its loss: ~n * u relative to the size of the terms
# for a sum of n numbers (u = 1.1e-16 in float64, 6.0e-8 in float32). Measured against the
# PyTorch models of the tests: ~1e-16 (float64) and ~1e-7 (float32, 784-400-20 at batch 32).
# float64: 1e-9 is 1e6 above that and far below the smallest gap between two different
#   recombinations we met (a KL averaged over J moves the loss by (1 - 1/J) * K / (R + K),
#   about 1e-3 on the 784-400-20 model at initialization).
# float32: 1e-4, the comparison's own float32 tolerance (crosscheck.COMPARE_TOLERANCE_FLOAT32):
#   100x the measured round-off, still 10x below that gap.
LOSS_FIT_TOLERANCE_FLOAT64 = 1e-9
LOSS_FIT_TOLERANCE_FLOAT32 = 1e-4
LOSS_FIT_TOLERANCES = {"float64": LOSS_FIT_TOLERANCE_FLOAT64,
                       "float32": LOSS_FIT_TOLERANCE_FLOAT32}

WORLDS = ("correct", "std", "no_noise", "log_sigma")
WORLD_CAUSES = {
    "std": "the sampler uses the variance as the standard deviation "
           "(z = mu + exp(logvar) * eps); std = exp(0.5 * logvar)",
    "no_noise": "z = mu: the noise eps is not applied (eval mode?); z = mu + std * eps",
    "log_sigma": "the encoder's second head outputs log sigma, not logvar = log sigma**2 "
                 "(a correct model in another convention): load 0.5 * W and 0.5 * b into that "
                 "head (vae_numpy.crosscheck.interop.load_torch / tree_params with "
                 "logvar_head='log_sigma') "
                 "and compare with logvar_head='log_sigma', which scales its gradients by 0.5",
}

LOG_SIGMA_SENTENCE = WORLD_CAUSES["log_sigma"]


# --- the worlds: per-example terms under each sampler / encoder convention --------------------

def worlds(params, x, eps, cfg):
    r"""``{world: {"rec": (B,), "kl": (B,), "z": (B, J), "mu": (B, J), "logvar": (B, J)}}``
    for each convention of :data:`WORLDS`, computed in float64 from the fixture's inputs.

    ``mu`` and ``logvar`` are the fixture encoder's outputs in every world (the encoder is the
    same; only what is made of its second head differs)."""
    cfg64 = VAEConfig.from_dict({**cfg.to_dict(), "dtype": "float64"})
    p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x64, eps64 = np.asarray(x, dtype=np.float64), np.asarray(eps, dtype=np.float64)
    mu, logvar = encode(p64, x64, cfg64)  # (B, J) each
    kl = kl_standard_normal(mu, logvar)  # (B,)
    plans = {"correct": (mu + np.exp(0.5 * logvar) * eps64, kl),
             "std": (mu + np.exp(logvar) * eps64, kl),
             "no_noise": (mu, kl),
             "log_sigma": (mu + np.exp(logvar) * eps64, kl_standard_normal(mu, 2 * logvar))}
    likelihood = get_likelihood(cfg.likelihood)
    out = {}
    for name, (z, kl_w) in plans.items():
        rec = likelihood.nll(x64, decoder_outputs(p64, z, cfg64), cfg.sigma)  # (B,)
        out[name] = {"rec": rec, "kl": kl_w, "z": z, "mu": mu, "logvar": logvar}
    return out


# --- recombinations of the terms into a scalar ----------------------------------------------

@dataclass(frozen=True)
class Recombination:
    r"""One way of making a scalar from per-example terms (see the module docstring).

    rec_d, rec_b : "sum" or "mean", rec over the D data dimensions and over the batch
    kl_j, kl_b : "sum" or "mean", the KL over the J latent dimensions and over the batch
    kl_sign : +1 or -1
    rec_weighted, beta_weighted : whether rec_weight and beta multiply their terms
    world : a name of :data:`WORLDS`
    """
    rec_d: str = "sum"
    rec_b: str = "sum"
    kl_j: str = "sum"
    kl_b: str = "sum"
    kl_sign: int = 1
    rec_weighted: bool = True
    beta_weighted: bool = True
    world: str = "correct"

    def parts(self, terms, cfg):
        r"""``(rec part, kl part)``: the two scalars whose sum this recombination is."""
        B = terms["rec"].shape[0]
        rec = np.sum(terms["rec"]) * (cfg.rec_weight if self.rec_weighted else 1.0)
        rec /= (cfg.input_dim if self.rec_d == "mean" else 1) * (B if self.rec_b == "mean" else 1)
        kl = self.kl_sign * np.sum(terms["kl"]) * (cfg.beta if self.beta_weighted else 1.0)
        kl /= (cfg.latent_dim if self.kl_j == "mean" else 1) * (B if self.kl_b == "mean" else 1)
        return float(rec), float(kl)

    def formula(self, cfg):
        r"""The scalar as a formula, e.g. ``sum_b rec_b / (B*D) + sum_b kl_b``."""
        return f"{self.rec_formula(cfg)} {'+' if self.kl_sign > 0 else '-'} {self.kl_formula(cfg)}"

    def rec_formula(self, cfg):
        w = "rec_weight * " if self.rec_weighted and cfg.rec_weight != 1 else ""
        return w + "sum_b rec_b" + _divisor(self.rec_b == "mean", self.rec_d == "mean", "D")

    def kl_formula(self, cfg):
        w = "beta * " if self.beta_weighted and cfg.beta != 1 else ""
        return w + "sum_b kl_b" + _divisor(self.kl_b == "mean", self.kl_j == "mean", "J")

    def mistakes(self, cfg, reduction):
        r"""Sentences naming how this recombination differs from the fixture's loss."""
        out = []
        if self.world != "correct":
            out.append(WORLD_CAUSES[self.world])
        if self.rec_d == "mean":
            out.append("rec is the mean over all B*D entries (e.g. binary_cross_entropy with "
                       "reduction='mean'); -log p(x|z) sums over the D data dimensions"
                       if self.rec_b == "mean" else
                       "rec is averaged over the D data dimensions; -log p(x|z) sums over them")
        if self.kl_j == "mean":
            out.append("the KL is the mean over all B*J entries (torch.mean of the KL terms); "
                       "it sums over the J latent dimensions"
                       if self.kl_b == "mean" else
                       "the KL is averaged over the J latent dimensions; sum it")
        if self.kl_sign < 0:
            out.append("the KL has the wrong sign (loss = rec - KL); "
                       "KL = 0.5 * sum_j (mu**2 + exp(logvar) - 1 - logvar) >= 0")
        out.extend(self._batch_mistakes(reduction))
        if not self.beta_weighted:
            out.append(f"the loss ignores beta = {cfg.beta}")
        if not self.rec_weighted:
            out.append(f"the loss ignores rec_weight = {cfg.rec_weight}")
        return out

    def _batch_mistakes(self, reduction):
        explained_rec = self.rec_d == "mean" and self.rec_b == "mean" and reduction == "sum"
        explained_kl = self.kl_j == "mean" and self.kl_b == "mean" and reduction == "sum"
        wrong_rec = self.rec_b != reduction and not explained_rec
        wrong_kl = self.kl_b != reduction and not explained_kl
        done = {"sum": "summed", "mean": "averaged"}
        if wrong_rec and wrong_kl:
            factor = "B *" if reduction == "mean" else "1/B *"
            return [f"the loss is {done[self.rec_b]} over the batch, {factor} the fixture's: "
                    f"the fixture's reduction over the batch is {reduction!r}"]
        out = []
        if wrong_rec:
            out.append(f"rec is {done[self.rec_b]} over the batch where the fixture's "
                       f"reduction is {reduction!r}")
        if wrong_kl:
            out.append(f"the KL is {done[self.kl_b]} over the batch where the fixture's "
                       f"reduction is {reduction!r}")
        return out

    def is_fixture(self, term, reduction):
        r"""Whether this recombination gives the fixture's own ``term`` (loss, rec or kl)."""
        rec = (self.world == "correct" and self.rec_d == "sum" and self.rec_b == reduction
               and self.rec_weighted)
        kl = (self.world != "log_sigma" and self.kl_j == "sum" and self.kl_b == reduction
              and self.kl_sign > 0 and self.beta_weighted)
        return {"loss": rec and kl, "rec": rec, "kl": kl}[term]


def _divisor(over_b, over_inner, inner):
    if over_b and over_inner:
        return f" / (B*{inner})"
    if over_b:
        return " / B"
    return f" / {inner}" if over_inner else ""


def recombinations(cfg, worlds_allowed=WORLDS):
    r"""Every :class:`Recombination` for cfg (the weight switches only where they matter)."""
    sr = ("sum", "mean")
    rec_w = (True, False) if cfg.rec_weight != 1 else (True,)
    beta_w = (True, False) if cfg.beta != 1 else (True,)
    for world, rd, rb, kj, kb, s, rw, bw in itertools.product(
            worlds_allowed, sr, sr, sr, sr, (1, -1), rec_w, beta_w):
        yield Recombination(rd, rb, kj, kb, s, rw, bw, world)


@dataclass(frozen=True)
class Fit:
    r"""A recombination that matches a candidate's scalar, and how closely (relative)."""
    recombination: Recombination
    error: float


def fit_scalar(value, world_terms, cfg, reduction, dtype, term="loss", worlds_allowed=WORLDS,
               keep=None):
    r"""The recombinations (other than the fixture's own) whose value matches ``value``.

    Parameters
    ----------
    value : the candidate's scalar (its loss, or a scalar rec or kl)
    world_terms : the output of :func:`worlds`
    term : "loss" (both parts), "rec" (the rec part alone) or "kl" (the kl part alone)
    keep : optional predicate on a Recombination, to drop ones that contradict other evidence

    Returns
    -------
    list of Fit, best first; empty when nothing fits within LOSS_FIT_TOLERANCES[dtype].
    """
    tol = LOSS_FIT_TOLERANCES[dtype]
    value = float(value)
    fits, seen = [], set()
    for r in recombinations(cfg, worlds_allowed):
        if keep is not None and not keep(r):
            continue
        rec, kl = r.parts(world_terms[r.world], cfg)
        if r.is_fixture(term, reduction):
            continue
        predicted, scale = {"loss": (rec + kl, abs(rec) + abs(kl)), "rec": (rec, abs(rec)),
                            "kl": (kl, abs(kl))}[term]
        key = (term, _term_key(r, term))
        if key in seen:  # the parts a scalar term does not use do not make another fit
            continue
        error = abs(value - predicted) / max(scale, abs(value), 1e-30)
        if error <= tol:
            seen.add(key)
            fits.append(Fit(r, error))
    return sorted(fits, key=lambda f: f.error)


def _term_key(r, term):
    if term == "rec":
        return (r.world, r.rec_d, r.rec_b, r.rec_weighted)
    if term == "kl":
        return (r.world in ("log_sigma",), r.kl_j, r.kl_b, r.kl_sign, r.beta_weighted)
    return r


def describe_fits(fits, name, cfg, reduction, dtype):
    r"""One sentence for the fits of a scalar, saying so when several fit equally."""
    def one(fit):
        r = fit.recombination
        formula = {"loss": r.formula(cfg), "rec": r.rec_formula(cfg),
                   "kl": r.kl_formula(cfg)}[name]
        if name == "kl" and r.kl_sign < 0:
            formula = "-" + formula
        causes = r.mistakes(cfg, reduction)
        if name == "rec":
            causes = [c for c in causes if "KL" not in c]
        elif name == "kl":
            causes = [c for c in causes if not c.startswith("rec")]
        return f"{name} = {formula}: {'; '.join(causes)}"
    tol = LOSS_FIT_TOLERANCES[dtype]
    if len(fits) == 1:
        return f"{one(fits[0])} (from the {name} alone: equal to a relative {fits[0].error:.1e})"
    listed = " | ".join(f"({i}) {one(f)}" for i, f in enumerate(fits, 1))
    return (f"the {name} fits {len(fits)} recombinations equally well (each within "
            f"{tol:.0e}; hand over per-example rec and kl to tell them apart): {listed}")


# --- causes from per-example tensors -----------------------------------------------------------

def close(a, b, tol):
    r"""True when ``a`` (candidate) has b's shape and rel_error(a, b) <= tol."""
    return a is not None and np.shape(a) == np.shape(b) and rel_error(
        np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)) <= tol


def encoder_causes(flat, status, ref, tol):
    r"""Sentences about mu and logvar when the candidate handed them over and they differ."""
    out = []
    if status.get("mu") == "FAIL":
        out.append("mu differs from the reference: the encoder (or the parameters loaded into "
                   "it) is wrong; the sampler is not the cause")
    if status.get("logvar") == "FAIL":
        lv = ref["logvar"]
        if close(flat["logvar"], 0.5 * lv, tol):
            out.append("logvar is half the reference: the head outputs log sigma; pass "
                       "logvar_head='log_sigma' to compare (it doubles logvar and halves that "
                       "head's gradients)")
        elif close(flat["logvar"], np.exp(lv), tol) or close(flat["logvar"], np.exp(0.5 * lv), tol):
            out.append("logvar is the variance (or std) itself, not its log: the encoder's "
                       "second head must be logvar = log sigma**2")
        else:
            out.append("logvar differs from the reference: the encoder (or the parameters "
                       "loaded into it) is wrong; the sampler is not the cause")
    return out


def sampler_causes(flat, status, world_terms, tol):
    r"""Sentences about z when it differs: which sampler mistake, or encoder vs sampler."""
    if status.get("z") != "FAIL":
        return []
    z = flat["z"]
    w = world_terms
    if close(z, w["std"]["z"], tol):
        kl_given = status.get("kl") in ("ok", "FAIL")
        if kl_given and close(flat["kl"], w["log_sigma"]["kl"], tol):
            return [LOG_SIGMA_SENTENCE]
        if kl_given:
            return ["z = mu + exp(logvar) * eps: " + WORLD_CAUSES["std"].split(" (z =")[0]
                    + "; std = exp(0.5 * logvar)"]
        return ["z = mu + exp(logvar) * eps: either the sampler uses the variance as the "
                "standard deviation (std = exp(0.5 * logvar)), or the encoder's second head is "
                "log sigma (then kl differs too: hand over kl to tell which)"]
    if close(z, w["no_noise"]["z"], tol):
        return ["z = mu: the noise eps is not applied (eval mode?); z = mu + std * eps"]
    if "FAIL" in (status.get("mu"), status.get("logvar")):
        return []  # the encoder differs: encoder_causes says so, z follows from it
    if status.get("mu") == "ok" and status.get("logvar") == "ok":
        why = "z differs while mu and logvar agree: the sampler is wrong, not the encoder"
    elif status.get("kl") == "ok":
        why = ("z differs while kl agrees, so mu and logvar are right (kl is a function of "
               "them): the sampler is wrong, not the encoder")
    else:
        return ["z differs: check z = mu + exp(0.5 * logvar) * eps with the fixture's eps; "
                "hand over mu and logvar (or kl) to tell an encoder bug from a sampler bug"]
    return [why + ": z = mu + exp(0.5 * logvar) * eps with the fixture's eps (is the noise "
            "draw replaced by the fixture's eps? see vae_numpy.crosscheck.interop.torch_noise / "
            "jax_noise)"]


def kl_causes(flat, status, world_terms, cfg, tol):
    r"""Sentences about a per-example kl (B,) that differs."""
    if status.get("kl") != "FAIL" or np.ndim(flat["kl"]) != 1:
        return []
    kl = world_terms["correct"]["kl"]
    if close(flat["kl"], -kl, tol):
        return ["kl = -KL: the KL has the wrong sign; "
                "KL = 0.5 * sum_j (mu**2 + exp(logvar) - 1 - logvar) >= 0"]
    if close(flat["kl"], kl / cfg.latent_dim, tol):
        return ["kl is averaged over the J latent dimensions; sum it"]
    if status.get("z") != "FAIL" and close(flat["kl"], world_terms["log_sigma"]["kl"], tol):
        return [LOG_SIGMA_SENTENCE]
    return []


def rec_causes(flat, status, world_terms, cfg, tol):
    r"""Sentences about a per-example rec (B,) that differs."""
    if status.get("rec") != "FAIL" or np.ndim(flat["rec"]) != 1 or status.get("z") == "FAIL":
        return []  # with a wrong z, rec follows from it; the z sentence names the cause
    rec = flat["rec"]
    if close(rec, world_terms["correct"]["rec"] / cfg.input_dim, tol):
        return ["rec is averaged over the D data dimensions; -log p(x|z) sums over them "
                "(e.g. BCE with reduction='none' then .sum(-1))"]
    if status.get("z") == "missing":  # no z: rec still tells the sampler's mistake
        if close(rec, world_terms["std"]["rec"], tol):
            if status.get("kl") == "FAIL" and close(flat["kl"], world_terms["log_sigma"]["kl"],
                                                    tol):
                return [LOG_SIGMA_SENTENCE]
            return ["rec is that of z = mu + exp(logvar) * eps: " + WORLD_CAUSES["std"]]
        if close(rec, world_terms["no_noise"]["rec"], tol):
            return ["rec is that of " + WORLD_CAUSES["no_noise"]]
    return []


# --- all together ------------------------------------------------------------------------------

def _consistent_with(status, flat):
    r"""A predicate dropping recombinations that contradict tensors which agree."""
    rec_ok = status.get("rec") == "ok" and np.ndim(flat.get("rec")) == 1
    kl_ok = status.get("kl") == "ok" and np.ndim(flat.get("kl")) == 1
    z_ok = status.get("z") == "ok"

    def keep(r):
        if (rec_ok or z_ok) and (r.world != "correct" or (rec_ok and r.rec_d != "sum")):
            return False
        if kl_ok and (r.kl_j != "sum" or r.kl_sign < 0 or r.world == "log_sigma"):
            return False
        return True
    return keep


def _scalar_term_causes(flat, status, world_terms, cfg, reduction, dtype):
    r"""Sentences for a rec or kl handed over as one scalar (shape ()) that differs."""
    out = []
    plain = VAEConfig.from_dict({**cfg.to_dict(), "rec_weight": 1.0, "beta": 1.0})
    allowed = ("correct",) if status.get("z") == "ok" else WORLDS
    for name in ("rec", "kl"):
        if status.get(name) == "FAIL" and np.ndim(flat[name]) == 0:
            fits = fit_scalar(flat[name], world_terms, plain, reduction, dtype, term=name,
                              worlds_allowed=allowed)
            if fits:
                out.append(describe_fits(fits, name, plain, reduction, dtype))
    return out


def find_causes(cfg, reduction, params, x, eps, flat, status, dtype):
    r"""Sentences naming the likely causes of the failures in ``status``.

    Parameters
    ----------
    cfg, reduction : the fixture's VAEConfig and batch reduction
    params, x, eps : the fixture's parameters and inputs
    flat : the candidate's arrays by fixture names (``loss``, ``rec``, ``kl``, ``z``, ``mu``,
        ``logvar``), already converted (layout, logvar_head)
    status : ``{name: "ok" | "FAIL" | "shape" | "missing"}`` from the comparison
    dtype : "float64" or "float32", choosing LOSS_FIT_TOLERANCES[dtype]

    Per-example tensors are read first (encoder, then sampler, kl, rec, in data-flow order);
    the loss alone is used when they name nothing, restricted to recombinations that do not
    contradict the tensors that agree.
    """
    if not any(s == "FAIL" for s in status.values()):
        return []
    tol = LOSS_FIT_TOLERANCES[dtype]
    with np.errstate(over="ignore", invalid="ignore"):  # a mistake's world may overflow:
        w = worlds(params, x, eps, cfg)                 # then it simply matches nothing
    out = encoder_causes(flat, status, w["correct"], tol)
    out += sampler_causes(flat, status, w, tol)
    out += kl_causes(flat, status, w, cfg, tol)
    out += rec_causes(flat, status, w, cfg, tol)
    out += _scalar_term_causes(flat, status, w, cfg, reduction, dtype)
    out = list(dict.fromkeys(out))  # one sentence once, whichever tensor led to it
    if status.get("loss") == "FAIL":
        fits = fit_scalar(flat["loss"], w, cfg, reduction, dtype,
                          keep=_consistent_with(status, flat))
        if fits and not out:
            out.append(describe_fits(fits, "loss", cfg, reduction, dtype))
        elif len(fits) == 1:  # the tensors named the term's mistake; the loss adds the rest
            out += [f"and in the loss: {m}" for m in fits[0].recombination.mistakes(cfg, reduction)
                    if "over the batch" in m or "ignores" in m]
    return out
