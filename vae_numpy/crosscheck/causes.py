r"""Likely causes of a failed cross-check, named from the numbers a candidate handed over.

Shape letters: B batch, D data dimensions, J latent dimensions.

Every known mistake leaves an exact signature. This module recomputes, from the fixture alone,
what a candidate with each mistake would report, and names the mistakes whose prediction
matches:

* *Sampler, encoder and KL conventions* ("worlds"), each giving per-example ``rec`` (B,),
  ``kl`` (B,) and ``z`` (B, J) from the fixture's parameters, x and eps:

      correct     z = mu + exp(0.5 * logvar) * eps,  kl = KL(mu, logvar)
      std         z = mu + exp(logvar) * eps (variance used as the std),  kl = KL(mu, logvar)
      no_noise    z = mu (eps never applied),  kl = KL(mu, logvar)
      log_sigma   the head is log sigma: z = mu + exp(s) * eps,  kl = KL(mu, 2 s), with s the
                  head's output, i.e. the fixture's logvar when the fixture's weights are
                  loaded unchanged (a correct model of another convention)
      kl_no_half  z right,  kl = 2 KL(mu, logvar) (the KL without its 0.5)
      kl_mu       z right,  kl = 0.5 * sum_j (mu + exp(logvar) - 1 - logvar) (mu not squared)

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

* *The noise the gradients imply*, for mistakes the forward values do not show (logvar detached
  on the sampling path) or show only as a wrong z (the model drew its own noise): see
  :func:`noise_causes` and the comment above :func:`noise_from_gradients`.
"""
import itertools
from dataclasses import dataclass

import numpy as np

from ..gaussian import kl_standard_normal
from ..gradcheck import rel_error
from ..likelihoods import get_likelihood
from ..model import VAEConfig, decoder_outputs, encode, mlp_forward

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

WORLDS = ("correct", "std", "no_noise", "log_sigma", "kl_no_half", "kl_mu")
Z_RIGHT = ("correct", "kl_no_half", "kl_mu")  # worlds whose z, and so rec, are the fixture's
KL_RIGHT = ("correct", "std", "no_noise")  # worlds whose kl is the fixture's
KL_FORMULA = "KL = 0.5 * sum_j (mu_j**2 + exp(logvar_j) - 1 - logvar_j)"
WORLD_CAUSES = {
    "std": "the sampler uses the variance as the standard deviation "
           "(z = mu + exp(logvar) * eps); std = exp(0.5 * logvar)",
    "no_noise": "z = mu: the noise eps is not applied (eval mode?); z = mu + std * eps",
    "log_sigma": "the encoder's second head outputs log sigma, not logvar = log sigma**2 "
                 "(a correct model in another convention): load 0.5 * W and 0.5 * b into that "
                 "head (vae_numpy.crosscheck.interop.load_torch / tree_params with "
                 "logvar_head='log_sigma') "
                 "and compare with logvar_head='log_sigma', which scales its gradients by 0.5",
    "kl_no_half": "the KL lacks its factor 0.5 (kl = sum_j (mu**2 + exp(logvar) - 1 - logvar), "
                  "twice the KL); " + KL_FORMULA,
    "kl_mu": "mu is not squared in the KL (kl = 0.5 * sum_j (mu + exp(logvar) - 1 - logvar)); "
             + KL_FORMULA,
}

LOG_SIGMA_SENTENCE = WORLD_CAUSES["log_sigma"]


# --- the worlds: per-example terms under each sampler / encoder convention --------------------

def worlds(params, x, eps, cfg):
    r"""``{world: {"rec": (B,), "kl": (B,), "z", "mu", "logvar", "eps": (B, J)}}`` for each
    convention of :data:`WORLDS`, computed in float64 from the fixture's inputs.

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
             "log_sigma": (mu + np.exp(logvar) * eps64, kl_standard_normal(mu, 2 * logvar)),
             "kl_no_half": (mu + np.exp(0.5 * logvar) * eps64, 2 * kl),
             "kl_mu": (mu + np.exp(0.5 * logvar) * eps64,
                       0.5 * np.sum(mu + np.expm1(logvar) - logvar, axis=-1))}
    likelihood = get_likelihood(cfg.likelihood)
    out = {}
    for name, (z, kl_w) in plans.items():
        rec = likelihood.nll(x64, decoder_outputs(p64, z, cfg64), cfg.sigma)  # (B,)
        out[name] = {"rec": rec, "kl": kl_w, "z": z, "mu": mu, "logvar": logvar, "eps": eps64}
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
        rec = (self.world in Z_RIGHT and self.rec_d == "sum" and self.rec_b == reduction
               and self.rec_weighted)
        kl = (self.world in KL_RIGHT and self.kl_j == "sum" and self.kl_b == reduction
              and self.kl_sign > 0 and self.beta_weighted)
        return {"loss": rec and kl, "rec": rec, "kl": kl}[term]


def _divisor(over_b, over_inner, inner):
    if over_b and over_inner:
        return f" / (B*{inner})"
    if over_b:
        return " / B"
    return f" / {inner}" if over_inner else ""


def recombinations(cfg, worlds_allowed=WORLDS):
    r"""Every :class:`Recombination` for cfg (the weight switches only where they matter).

    A KL of the wrong form (a world outside KL_RIGHT but log_sigma) comes summed over J with
    its sign: a second mistake in the same term would make spurious ties (2 KL / J = KL at
    J = 2)."""
    sr = ("sum", "mean")
    rec_w = (True, False) if cfg.rec_weight != 1 else (True,)
    beta_w = (True, False) if cfg.beta != 1 else (True,)
    for world, rd, rb, kj, kb, s, rw, bw in itertools.product(
            worlds_allowed, sr, sr, sr, sr, (1, -1), rec_w, beta_w):
        if world in ("kl_no_half", "kl_mu") and (kj == "mean" or s < 0):
            continue
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
    if term == "rec":  # worlds with the same z give the same rec
        return (r.world in Z_RIGHT or r.world, r.rec_d, r.rec_b, r.rec_weighted)
    if term == "kl":
        return (r.world in KL_RIGHT or r.world, r.kl_j, r.kl_b, r.kl_sign, r.beta_weighted)
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
    right = w["correct"]  # the encoder is right: (z - mu) / std is the noise z used
    noise = (np.asarray(z, dtype=np.float64) - right["mu"]) / np.exp(0.5 * right["logvar"])
    if fresh_noise(noise, right["eps"], right["mu"] / np.exp(0.5 * right["logvar"])):
        return [fresh_noise_sentence(noise, right["eps"],
                                     "z implies, as eps' = (z - mu) / exp(0.5 * logvar),")]
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
    return [WORLD_CAUSES[w] for w in ("kl_no_half", "kl_mu")
            if close(flat["kl"], world_terms[w]["kl"], tol)]


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


# --- the noise a candidate used: what only z or the gradients show -----------------------------
#
# The encoder heads' gradients are h.T @ dmu and h.T @ dlogvar, with h (B, H) the output of the
# encoder's last hidden layer (x without one) and, per example (n = B for a mean over the
# batch, 1 for a sum; g = d rec / dz, (B, J)):
#     n dmu     = rec_weight * g + beta * mu
#     n dlogvar = rec_weight * g * 0.5 * std * eps' + beta * 0.5 * (exp(logvar) - 1)
# where eps' is the noise the candidate's z used. When h has rank B, h.T @ d = G has one
# solution d, so the gradients give dmu and dlogvar, and
#     eps' = (n dlogvar - beta * 0.5 * (exp(logvar) - 1)) / (0.5 * std * (n dmu - beta * mu)).
# eps' = eps: the sampler is right. eps' = 0 while the loss is right: no gradient reaches logvar
# through z (it is detached there). Another eps' with the spread of N(0, 1): a noise of its own.
NOISE_TOL = 1e-3  # eps' against eps, relative. From vae_numpy's own gradients of a 784-400-20
#                   fixture (sum or mean): 3e-6 at B = 8 and 7e-5 at B = 32 in float32 (the
#                   solve amplifies the round-off), 1e-13 in float64; a fresh draw is off by O(1)
NOISE_RMS = (0.25, 4.0)  # a fresh N(0, 1) draw of B*J >= 4 entries has its rms in here
# A fresh draw is independent of the fixture's eps and of mu / std: a least-squares fit of eps'
# on (1, eps, mu / std) leaves most of it unexplained, while a z made wrongly from the right
# draw (scaled, shifted, mu counted twice) is explained by it. For n = B*J independent N(0, 1)
# entries R**2 is Beta(1, (n - 3)/2), above 0.5 with probability 0.5**((n - 3)/2): 4% at
# n = 12, 3e-6 at n = 40; such a draw then gets the general sentence, not a wrong one.
FRESH_MAX_EXPLAINED = 0.5
HEAD_GRADS = ("grad/enc.mu.W", "grad/enc.logvar.W")
DETACHED_SENTENCE = (
    "logvar gets its gradient from the KL alone (the encoder heads' gradients say that z passes "
    "it none, while the forward values are right): logvar is detached where z is drawn (std "
    "from logvar.detach(), .data or a copy); with z = mu + exp(0.5 * logvar) * eps, "
    "d loss/d logvar = d loss/dz * 0.5 * exp(0.5 * logvar) * eps + beta * 0.5 * (exp(logvar) - 1), "
    "the first term through z, the second through the KL")


def noise_from_gradients(flat, params, x, cfg, right, n):
    r"""eps' (B, J) implied by the candidate's ``grad/enc.mu.W`` and ``grad/enc.logvar.W`` for
    a loss weighting each example by 1/n (NaN where d rec/dz is ~0); None when they are missing
    or do not determine it (h of rank < B). ``right``: the "correct" world's terms."""
    p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    h, _ = mlp_forward(np.asarray(x, dtype=np.float64), p64, "enc", len(cfg.encoder_hidden),
                       cfg.activation)  # (B, H)
    grads = [flat.get(k) for k in HEAD_GRADS]
    if any(np.shape(g) != (h.shape[1], cfg.latent_dim) for g in grads) \
            or np.linalg.matrix_rank(h) < h.shape[0]:
        return None
    dmu, dlogvar = (np.linalg.lstsq(h.T, np.asarray(g, dtype=np.float64), rcond=None)[0]
                    for g in grads)  # (B, J) each
    mu, logvar = right["mu"], right["logvar"]
    g = n * dmu - cfg.beta * mu  # rec_weight * d rec / dz
    g = np.where(np.abs(g) > 1e-6 * np.abs(g).max(), g, np.nan)
    return (n * dlogvar - cfg.beta * 0.5 * np.expm1(logvar)) / (0.5 * np.exp(0.5 * logvar) * g)


def same_noise(a, eps):
    keep = np.isfinite(a)
    return keep.mean() >= 0.5 and rel_error(a[keep], eps[keep]) <= NOISE_TOL


def zero_noise(a, eps):
    keep = np.isfinite(a)
    return keep.mean() >= 0.5 and np.abs(a[keep]).max() <= NOISE_TOL * np.abs(eps).max()


def fresh_noise(a, eps, offset):
    r"""Whether eps' looks like a draw of its own: not eps, not 0, spread like N(0, 1), and
    mostly unexplained by (1, eps, offset = mu / std) (see FRESH_MAX_EXPLAINED)."""
    keep = np.isfinite(a)
    if keep.mean() < 0.5 or same_noise(a, eps) or zero_noise(a, eps):
        return False
    y = a[keep]
    basis = np.stack([np.ones_like(y), eps[keep], offset[keep]], axis=1)  # (n, 3)
    residual = y - basis @ np.linalg.lstsq(basis, y, rcond=None)[0]
    explained = 1 - np.sum(residual**2) / max(np.sum((y - y.mean()) ** 2), 1e-300)
    return (NOISE_RMS[0] <= np.sqrt(np.mean(y**2)) <= NOISE_RMS[1]
            and explained <= FRESH_MAX_EXPLAINED)


def fresh_noise_sentence(a, eps, source):
    keep = np.isfinite(a)
    return (f"{source} a noise eps' that is not the fixture's eps (they differ by up to "
            f"{np.abs(a - eps)[keep].max():.2g}; rms {np.sqrt(np.mean(a[keep] ** 2)):.2f}, "
            "like a fresh N(0, 1) draw): the model draws its own noise (torch.randn, or a "
            "randn_like / jax.random.normal the noise patch does not reach); "
            "z = mu + exp(0.5 * logvar) * eps needs the fixture's eps: "
            "vae_numpy.crosscheck.interop.torch_noise / jax_noise, or pass eps into the model")


def noise_causes(flat, status, params, x, cfg, reduction, right, loss_right):
    r"""Sentences from the noise the encoder heads' gradients imply (see the comment above).

    ``loss_right``: the loss agrees with the fixture's, or differs only by a batch reduction or
    an ignored weight. Both batch weightings are tried (a candidate may sum where the fixture
    means)."""
    if not any(status.get(k) == "FAIL" for k in HEAD_GRADS):
        return []
    B = np.shape(x)[0]
    weightings = (B, 1) if reduction == "mean" else (1, B)  # the fixture's first
    implied = [noise_from_gradients(flat, params, x, cfg, right, n) for n in weightings]
    implied = [a for a in implied if a is not None]
    eps = right["eps"]
    if not implied or any(same_noise(a, eps) for a in implied):
        return []
    if loss_right and status.get("z") != "FAIL" and any(zero_noise(a, eps) for a in implied):
        return [DETACHED_SENTENCE]
    offset = right["mu"] / np.exp(0.5 * right["logvar"])
    fresh = [a for a in implied if fresh_noise(a, eps, offset)]
    if not loss_right and status.get("z") != "ok" and fresh:
        return [fresh_noise_sentence(fresh[0], eps, "the encoder heads' gradients imply")]
    return []


# --- all together ------------------------------------------------------------------------------

def _consistent_with(status, flat):
    r"""A predicate dropping recombinations that contradict tensors which agree."""
    rec_ok = status.get("rec") == "ok" and np.ndim(flat.get("rec")) == 1
    kl_ok = status.get("kl") == "ok" and np.ndim(flat.get("kl")) == 1
    z_ok = status.get("z") == "ok"

    def keep(r):
        if (rec_ok or z_ok) and (r.world not in Z_RIGHT or (rec_ok and r.rec_d != "sum")):
            return False
        if kl_ok and (r.kl_j != "sum" or r.kl_sign < 0 or r.world not in KL_RIGHT):
            return False
        return True
    return keep


def _scalar_term_causes(flat, status, world_terms, cfg, reduction, dtype):
    r"""Sentences for a rec or kl handed over as one scalar (shape ()) that differs."""
    out = []
    plain = VAEConfig.from_dict({**cfg.to_dict(), "rec_weight": 1.0, "beta": 1.0})
    allowed = Z_RIGHT if status.get("z") == "ok" else WORLDS
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
        ``logvar``, and the :data:`HEAD_GRADS`), already converted (layout, logvar_head)
    status : ``{name: "ok" | "FAIL" | "shape" | "missing"}`` from the comparison
    dtype : "float64" or "float32", choosing LOSS_FIT_TOLERANCES[dtype]

    Per-example tensors are read first (encoder, then sampler, kl, rec, in data-flow order);
    the loss alone is used when they name nothing, restricted to recombinations that do not
    contradict the tensors that agree; the encoder heads' gradients last, when nothing in the
    forward values explains them (:func:`noise_causes`).
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
    named, fits = bool(out), []
    if status.get("loss") == "FAIL":
        fits = fit_scalar(flat["loss"], w, cfg, reduction, dtype,
                          keep=_consistent_with(status, flat))
        if fits and not out:
            out.append(describe_fits(fits, "loss", cfg, reduction, dtype))
        elif len(fits) == 1:  # the tensors named the term's mistake; the loss adds the rest
            out += [f"and in the loss: {m}" for m in fits[0].recombination.mistakes(cfg, reduction)
                    if "over the batch" in m or "ignores" in m]
    if not named and all(f.recombination.world == "correct" for f in fits):
        loss_right = status.get("loss") == "ok" or bool(fits)
        out += noise_causes(flat, status, params, x, cfg, reduction, w["correct"], loss_right)
    return out
