r"""Likely causes of a failed IWAE cross-check: the estimator mistake the encoder gradient shows.

Shape letters: B batch, J latent dimensions, K importance samples.

Sticking the landing (STL) and the doubly reparameterized estimator (DReG) live or die by where
the stop-gradients go (:func:`vae_numpy.iwae.iwae_loss_and_grads`). Write the encoder's
gradient of ``L_K`` sample by sample: ``d log w_k = P_k + Q_k + S_k`` with

    P_k  the model's path:  d[log p(x|z_k) + log p(z_k)]/dz_k * dz_k/d(mu, logvar)
    Q_k  log q's path:      d(-log q)/dz_k * dz_k/d(mu, logvar)
                            = (eps_k / std, eps_k**2 / 2)  to (mu, logvar)
    S_k  log q's score:     d(-log q)/d(mu, logvar) at fixed z_k
                            = (-eps_k / std, (1 - eps_k**2) / 2)

(``Q_k + S_k = (0, 1/2)``: the eps form's constant), and ``s = softmax_k(log w)``. Then

    IWAE = sum_k s_k (P_k + Q_k + S_k),   STL = sum_k s_k (P_k + Q_k),
    DReG = sum_k s_k**2 (P_k + Q_k)

and each mistake gives its own combination (the mistakes, as a PyTorch user writes them):

    STL, no stop inside log q      sum s (P + Q + S)               = IWAE
    DReG, weights not squared      sum s (P + Q)                   = STL
    DReG surrogate sum stop(s**2) log w, log q = log N(z; mu, logvar)
                                   sum s**2 (P + Q + S)            = DReG + S(s**2)
    DReG by a hook on z (dz *= s), log q = log N(z; mu, logvar)
                                   sum s**2 (P + Q) + sum s S      = DReG + IWAE - STL
    STL, log N(stop(z); mu, logvar) (the stop on z, not on q's parameters)
                                   sum s (P + S)                   = IWAE - Q(s)
    DReG surrogate, log N(stop(z); mu, logvar)
                                   sum s**2 (P + S)                = DReG - Q(s**2) + S(s**2)
    DReG by a hook on z, log N(stop(z); mu, logvar)
                                   sum s**2 P + sum s S            = DReG - Q(s**2) + IWAE - STL

where ``Q(a)``, ``S(a)`` are ``sum_k a_k Q_k``, ``sum_k a_k S_k`` taken through the encoder's
backward. Every prediction is thus the fixture's three gradients plus terms that need only
``s`` (from the fixture's log-weights), eps and the encoder: nothing of the decoder is
recomputed. A candidate's encoder gradients fit a prediction when every one of them is within
the comparison's tolerance of it (relative to the tensor's scale, as in the comparison).
"""
import numpy as np

from ..gradcheck import rel_error
from ..iwae import log_mean_exp_and_softmax
from ..model import VAEConfig, encoder_backward, encoder_forward, reduction_weights
from .fixture import fixture_config, fixture_params

STOP_ADVICE = ("write log q as log N(z; stop(mu), stop(logvar)), e.g. "
               "Normal(mu.detach(), std.detach()).log_prob(z), so that log q reaches the "
               "encoder through z only")
STOP_ON_Z = ("the stop-gradient is on z inside log q (log N(stop(z); mu, logvar), e.g. "
             "log_prob(z.detach())) instead of on q's parameters: that keeps log q's score term "
             "and drops its path through z; " + STOP_ADVICE)
NO_STOP = "the stop-gradient is missing inside log q (log q = log N(z; mu, logvar) keeps its " \
          "score term); " + STOP_ADVICE

# {estimator the candidate claims: [(mistake, sentence), ...]}, in the order they are tried
MISTAKES = {
    "iwae": [("stl", "your encoder gradient equals STL's: log q's score term is left out "
                     "(log q with stop(mu), stop(logvar)); the exact gradient of L_K keeps it "
                     "(compare with estimator='stl' if STL is what you implement)"),
             ("dreg", "your encoder gradient equals DReG's (compare with estimator='dreg' if "
                      "DReG is what you implement); the exact gradient of L_K weighs each "
                      "sample by s_k and keeps log q's score term")],
    "stl": [("iwae", "your encoder gradient equals IWAE's: " + NO_STOP),
            ("dreg", "your encoder gradient equals DReG's (weights squared): STL weighs each "
                     "sample's path by s_k = softmax(log w)_k, not s_k**2"),
            ("stl_stop_on_z", "your encoder gradient is sum_k s_k (P_k + S_k): " + STOP_ON_Z)],
    "dreg": [("stl", "your encoder gradient equals STL's (weights not squared): DReG weighs "
                     "each sample's path by s_k**2, s = stop(softmax(log w))"),
             ("iwae", "your encoder gradient equals IWAE's: neither the stop-gradient inside "
                      "log q nor the squared weights are in effect; " + STOP_ADVICE),
             ("dreg_no_stop", "your encoder gradient is sum_k s_k**2 d log w_k, the surrogate "
                              "with squared weights but " + NO_STOP),
             ("dreg_no_stop_hook", "your encoder gradient is DReG's plus sum_k s_k S_k: the "
                                   "path through z has the squared weights (a hook on z) but "
                                   + NO_STOP),
             ("dreg_stop_on_z", "your encoder gradient is sum_k s_k**2 (P_k + S_k): "
                                + STOP_ON_Z),
             ("dreg_stop_on_z_hook", "your encoder gradient is sum_k s_k**2 P_k + "
                                     "sum_k s_k S_k (a hook on z): " + STOP_ON_Z)],
}


def log_q_terms(params, x, eps, log_w, cfg, reduction, weights):
    r"""``Q(a)`` and ``S(a)`` of the module docstring as d loss / d param of the encoder, for the
    per-sample weights ``a = weights(s)`` (K, B), s = softmax_k(log w).

    The loss is ``reduce_b(-L_K)``, so each per-example quantity is scaled by
    ``-reduction_weights`` before the encoder's backward.

    Returns
    -------
    Q, S : dicts ``{enc name: array}``
    """
    (mu, logvar), cache = encoder_forward(params, x, cfg)         # (B, J) each
    std = np.exp(0.5 * logvar)
    _, s = log_mean_exp_and_softmax(log_w)                         # (K, B)
    a = weights(s)[..., None]                                      # (K, B, 1)
    dper = -reduction_weights(x.shape[0], reduction, mu.dtype)[:, None]   # (B, 1)
    out = []
    for dmu_k, dlogvar_k in ((eps / std, 0.5 * eps**2),           # Q: log q's path
                             (-eps / std, 0.5 * (1 - eps**2))):     # S: log q's score
        grads = {}
        encoder_backward(dper * (a * dmu_k).sum(axis=0), dper * (a * dlogvar_k).sum(axis=0),
                         cache, cfg, grads)
        out.append(grads)
    return out


def predictions(fixture_grads, params, x, eps, log_w, cfg, reduction):
    r"""``{mistake: {enc name: array}}``: each mistake's encoder gradient (module docstring).

    fixture_grads : ``{"iwae" | "stl" | "dreg": {enc name: array}}`` from the fixture.
    """
    I, T, G = (fixture_grads[e] for e in ("iwae", "stl", "dreg"))
    Q1, S1 = log_q_terms(params, x, eps, log_w, cfg, reduction, lambda s: s)
    Q2, S2 = log_q_terms(params, x, eps, log_w, cfg, reduction, lambda s: s**2)
    return {k: {n: f(n) for n in I} for k, f in {
        "iwae": lambda n: I[n],
        "stl": lambda n: T[n],
        "dreg": lambda n: G[n],
        "stl_stop_on_z": lambda n: I[n] - Q1[n],
        "dreg_no_stop": lambda n: G[n] + S2[n],
        "dreg_no_stop_hook": lambda n: G[n] + I[n] - T[n],
        "dreg_stop_on_z": lambda n: G[n] - Q2[n] + S2[n],
        "dreg_stop_on_z_hook": lambda n: G[n] - Q2[n] + I[n] - T[n],
    }.items()}


def find_estimator_causes(fixture, flat, estimator, tol):
    r"""Sentences naming the estimator mistakes whose encoder gradient the candidate's equals.

    Parameters
    ----------
    fixture : an IWAE fixture (:func:`vae_numpy.crosscheck.make_fixture` with
        objective="iwae")
    flat : the candidate's arrays by fixture names (``grad/enc.*``), already converted
    estimator : the estimator the candidate was compared as ("iwae", "stl" or "dreg")
    tol : the comparison's relative tolerance

    Returns
    -------
    list of str, empty when the candidate's encoder gradients are missing, agree with the
    estimator's, or match none of the mistakes of :data:`MISTAKES` (nothing is said about
    other encoder bugs: the comparison's table shows them).
    """
    if estimator not in MISTAKES:
        return []
    cfg, reduction = fixture_config(fixture)
    cfg64 = VAEConfig.from_dict({**cfg.to_dict(), "dtype": "float64"})
    params = {k: np.asarray(v, dtype=np.float64) for k, v in fixture_params(fixture).items()}
    enc = [k for k in params if k.startswith("enc.")]
    mine = {k: flat.get(f"grad/{k}") for k in enc}
    if any(v is None or np.shape(v) != params[k].shape or not np.all(np.isfinite(v))
           for k, v in mine.items()):
        return []
    grads = {"iwae": {k: fixture[f"grad/{k}"] for k in enc}}
    grads.update({e: {k: fixture[f"grad_{e}/{k}"] for k in enc} for e in ("stl", "dreg")})
    grads = {e: {k: np.asarray(v, dtype=np.float64) for k, v in g.items()}
             for e, g in grads.items()}
    x, eps, log_w = (np.asarray(fixture[k], dtype=np.float64)
                     for k in ("x", "eps", "log_weights"))
    predicted = predictions(grads, params, x, eps, log_w, cfg64, reduction)
    if _fits(mine, predicted[estimator], tol):
        return []
    return [sentence for mistake, sentence in MISTAKES[estimator]
            if _fits(mine, predicted[mistake], tol)]


def _fits(mine, predicted, tol):
    return all(rel_error(np.asarray(mine[k], dtype=np.float64), predicted[k]) <= tol
               for k in predicted)
