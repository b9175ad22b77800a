r"""The VAE: forward and backward composition, the loss, and the model's configuration.

Shape letters: B batch, D data dimensions, H hidden width, J latent dimensions.

    encoder:  x (B, D) -> hidden layers -> mu (B, J), logvar (B, J)
    sampler:  z = mu + exp(logvar / 2) * eps,  eps (B, J) given by the caller
    decoder:  z (B, J) -> hidden layers -> outs (each (B, D)): logits, or mean [, logvar]
    loss   :  reduce_b(rec_b + beta * kl_b),  rec_b = -log p(x_b | z_b),  kl_b = KL(q || p)
              (rec_b is weighted by cfg.rec_weight, 1 unless a KL-only run sets 0)

Parameter names: ``enc.{i}.W``, ``enc.{i}.b``, ``dec.{i}.W``, ``dec.{i}.b`` for hidden layers,
heads ``enc.mu.*``, ``enc.logvar.*``, ``dec.out.*`` and ``dec.out_logvar.*``
(gaussian_learned only). ``W`` has shape (in, out): a layer computes ``x @ W + b``.

Reading order: the encoder and decoder pieces, then :func:`loss_and_grads` (the forward and,
facing it, the backward), then using a trained model; the bookkeeping comes last (parameter
shapes and initialization, :class:`VAEConfig`, the input checks).
"""
import dataclasses
import json
import numbers

import numpy as np

from .files.checks import check_logvar, check_number, check_support
from .gaussian import (kl_per_dimension, kl_standard_normal, kl_standard_normal_backward,
                       reparameterize_backward, reparameterize_forward)
from .layers import activation_pair, dense_backward, dense_forward
from .likelihoods import (LIKELIHOODS, get_likelihood, logvar_floor_backward,
                          logvar_floor_forward)

REDUCTIONS = ("mean", "sum")
DTYPES = ("float64", "float32")


# --- forward / backward pieces ------------------------------------------------------------

def mlp_forward(h, params, prefix, n_layers, activation):
    r"""Hidden layers ``h <- act(h @ W_i + b_i)`` for i < n_layers; returns (h, caches)."""
    act_forward = activation_pair(activation)[0]
    caches = []
    for i in range(n_layers):
        a, dense_cache = dense_forward(h, params[f"{prefix}.{i}.W"], params[f"{prefix}.{i}.b"])
        h, act_cache = act_forward(a)
        caches.append((dense_cache, act_cache))
    return h, caches


def mlp_backward(dh, caches, prefix, activation, grads, input_grad=True):
    r"""Backward of :func:`mlp_forward`; writes ``grads[prefix.i.W/b]``, returns d input
    (None with ``input_grad=False``, which skips the first layer's input gradient)."""
    act_backward = activation_pair(activation)[1]
    for i in reversed(range(len(caches))):
        dense_cache, act_cache = caches[i]
        da = act_backward(dh, act_cache)
        dh, grads[f"{prefix}.{i}.W"], grads[f"{prefix}.{i}.b"] = dense_backward(
            da, dense_cache, input_grad=input_grad or i > 0)
    return dh


def encoder_forward(params, x, cfg):
    r"""q(z|x): x (B, D) -> (mu (B, J), logvar (B, J)), cache."""
    h, hidden = mlp_forward(x, params, "enc", len(cfg.encoder_hidden), cfg.activation)
    mu, mu_cache = dense_forward(h, params["enc.mu.W"], params["enc.mu.b"])
    logvar, logvar_cache = dense_forward(h, params["enc.logvar.W"], params["enc.logvar.b"])
    return (mu, logvar), (hidden, mu_cache, logvar_cache)


def encoder_backward(dmu, dlogvar, cache, cfg, grads, input_grad=False):
    r"""Backward of :func:`encoder_forward`; writes the ``enc.*`` grads.

    Returns dx (B, D) with ``input_grad=True``; by default None, since the data x needs no
    gradient in training and skipping it saves the largest matrix product of the backward.
    """
    hidden, mu_cache, logvar_cache = cache
    heads_input_grad = input_grad or len(hidden) > 0
    dh_mu, grads["enc.mu.W"], grads["enc.mu.b"] = dense_backward(
        dmu, mu_cache, input_grad=heads_input_grad)
    dh_lv, grads["enc.logvar.W"], grads["enc.logvar.b"] = dense_backward(
        dlogvar, logvar_cache, input_grad=heads_input_grad)
    if not heads_input_grad:
        return None
    return mlp_backward(dh_mu + dh_lv, hidden, "enc", cfg.activation, grads, input_grad)


def decoder_forward(params, z, cfg):
    r"""p(x|z): z (B, J) -> tuple of unconstrained outputs, each (B, D), and the cache.

    One output (logits, or the Gaussian mean) per head; gaussian_learned has a second head,
    the per-pixel log-variance, floored at ``cfg.decoder_logvar_min`` when that is set.
    """
    h, hidden = mlp_forward(z, params, "dec", len(cfg.decoder_hidden), cfg.activation)
    outs, head_caches = [], []
    for head in LIKELIHOODS[cfg.likelihood].heads:
        out, c = dense_forward(h, params[f"dec.{head}.W"], params[f"dec.{head}.b"])
        floor = cfg.decoder_logvar_min if head == "out_logvar" else None
        out, mask = logvar_floor_forward(out, floor)
        outs.append(out)
        head_caches.append((c, mask))
    return tuple(outs), (hidden, head_caches)


def decoder_backward(douts, cache, cfg, grads):
    r"""Backward of :func:`decoder_forward`; writes the ``dec.*`` grads, returns dz (B, J)."""
    hidden, head_caches = cache
    dh = 0
    for head, dout, (c, mask) in zip(LIKELIHOODS[cfg.likelihood].heads, douts, head_caches):
        dout = logvar_floor_backward(dout, mask)
        dh_head, grads[f"dec.{head}.W"], grads[f"dec.{head}.b"] = dense_backward(dout, c)
        dh = dh + dh_head
    return mlp_backward(dh, hidden, "dec", cfg.activation, grads)


# --- the loss -------------------------------------------------------------------------------

def reduction_weights(batch, reduction, dtype):
    r"""d loss / d per_example_b: 1/B for ``mean``, 1 for ``sum``. Returns (B,)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return np.full(batch, 1 / batch if reduction == "mean" else 1, dtype=dtype)


def reduce_batch(per_example, reduction):
    r"""``mean_b`` or ``sum_b`` of a (B,) array, as a NumPy scalar of its dtype."""
    return per_example.mean() if reduction == "mean" else per_example.sum()


def free_bits_kl(mu, logvar, free_bits):
    r"""The free-bits KL per example and the mask of dimensions above the floor.

    Free bits (Kingma et al. 2016): the objective's KL is ``sum_j max(free_bits, mean_b kl_bj)``,
    written per example as ``kl_objective_b = sum_j (kl_bj if active_j else free_bits)`` with
    ``active_j = mean_b kl_bj > free_bits``; a dimension below the floor contributes the
    constant ``free_bits`` and gets no gradient.

    Returns
    -------
    kl_objective : (B,) array; active : (J,) bool array.
    """
    kl_dims = kl_per_dimension(mu, logvar)  # (B, J)
    active = kl_dims.mean(axis=0) > free_bits  # (J,)
    floor = kl_dims.dtype.type(free_bits)
    return np.where(active, kl_dims, floor).sum(axis=-1), active


def loss_and_grads(params, x, eps, cfg, reduction="mean", free_bits=0.0, beta=None):
    r"""Negative ELBO (beta-weighted) of a batch and its gradient for every parameter.

    ``loss = reduce_b(rec_b + beta * kl_b)`` with ``rec_b = -log p(x_b | z_b)`` summed over D,
    ``kl_b = KL(q(z|x_b) || N(0, I))`` summed over J, ``z_b = mu_b + exp(logvar_b / 2) * eps_b``,
    and reduce = mean over the batch (default) or sum (what pytorch/examples does).
    With beta = 1 this is a one-sample, unbiased estimate of -ELBO: its expectation over eps,
    -ELBO, is an upper bound on -log p(x); one draw is not (it can fall below -log p(x)).
    ``cfg.rec_weight`` (default 1) multiplies rec: 0 gives the KL-only objective.

    Parameters
    ----------
    params : dict name -> array, as from :func:`init_params`.
    x : (B, D) data, same dtype as params (binary or [0, 1] for bernoulli).
    eps : (B, J) standard normal noise, same dtype as params.
    cfg : VAEConfig
    reduction : "mean" or "sum"
    free_bits : float >= 0, nats per latent dimension. 0 (default) is the plain objective.
        Above 0 the KL in the loss is the free-bits KL of :func:`free_bits_kl` (a training
        device; ``terms["kl"]`` stays the true KL). A negative value is a ValueError.
    beta : float >= 0, the KL weight of this call; None (default) takes ``cfg.beta``.
        Training passes the step's warm-up beta_t here instead of rebuilding the config every
        step. A negative value is a ValueError.

    Returns
    -------
    loss : scalar, ``reduce(rec_weight * rec + beta * kl_objective)`` exactly; with the
        defaults (rec_weight = 1, no free bits) that is ``reduce(rec + beta * kl)``.
    grads : dict with exactly the keys of params, d loss / d param.
    terms : dict with per-example ``rec`` (B,), ``kl`` (B,), ``kl_objective`` (B,) (the KL
        in the loss, equal to ``kl`` without free bits), and ``mu``, ``logvar``, ``z`` (B, J).
    """
    beta = cfg.beta if beta is None else check_number("loss_and_grads", "beta", beta, low=0)
    check_number("loss_and_grads", "free_bits", free_bits, low=0)
    x, eps = check_inputs(params, x, eps, cfg)
    likelihood = get_likelihood(cfg.likelihood)

    # forward: x -> (mu, logvar) -> z -> outs -> rec; and (mu, logvar) -> kl
    (mu, logvar), enc_cache = encoder_forward(params, x, cfg)     # (B, J) each
    check_logvar(logvar)
    z, rep_cache = reparameterize_forward(mu, logvar, eps)        # (B, J)
    outs, dec_cache = decoder_forward(params, z, cfg)             # each (B, D)
    rec = likelihood.nll(x, outs, cfg.sigma)                      # (B,)
    kl = kl_standard_normal(mu, logvar)                           # (B,)
    kl_objective, active = kl, None
    if free_bits > 0:
        kl_objective, active = free_bits_kl(mu, logvar, free_bits)
    loss = reduce_batch(cfg.rec_weight * rec + beta * kl_objective, reduction)

    # backward: the same steps in reverse; the decoder path and the KL path meet at the encoder
    grads = {}
    dper = reduction_weights(x.shape[0], reduction, mu.dtype)     # (B,) d loss / d per-example
    douts = likelihood.nll_backward(cfg.rec_weight * dper, x, outs, cfg.sigma)
    dz = decoder_backward(douts, dec_cache, cfg, grads)
    dmu, dlogvar = reparameterize_backward(dz, rep_cache)
    dmu_kl, dlogvar_kl = kl_standard_normal_backward(beta * dper, mu, logvar)
    if active is not None:
        dmu_kl, dlogvar_kl = dmu_kl * active, dlogvar_kl * active
    encoder_backward(dmu + dmu_kl, dlogvar + dlogvar_kl, enc_cache, cfg, grads)

    terms = {"rec": rec, "kl": kl, "mu": mu, "logvar": logvar, "z": z,
             "kl_objective": kl_objective}
    return loss, {k: grads[k] for k in params}, terms


def forward(params, x, eps, cfg):
    r"""The forward pass of :func:`loss_and_grads` on its own (for :func:`loss_terms`).

    Checks the inputs, then encodes x (B, D), samples ``z = mu + exp(logvar / 2) * eps``
    (B, J) and decodes it. Returns ``(terms, caches)``: terms ``rec`` (B,) summed over D,
    ``kl`` (B,) summed over J, ``mu``, ``logvar``, ``z`` (B, J) and ``outs`` (the decoder's
    unconstrained outputs); caches ``(enc_cache, rep_cache, dec_cache)`` for the backward.
    """
    x, eps = check_inputs(params, x, eps, cfg)
    (mu, logvar), enc_cache = encoder_forward(params, x, cfg)
    check_logvar(logvar)
    z, rep_cache = reparameterize_forward(mu, logvar, eps)
    outs, dec_cache = decoder_forward(params, z, cfg)
    terms = {"rec": get_likelihood(cfg.likelihood).nll(x, outs, cfg.sigma),
             "kl": kl_standard_normal(mu, logvar), "mu": mu, "logvar": logvar, "z": z,
             "outs": outs}
    return terms, (enc_cache, rep_cache, dec_cache)


def loss_terms(params, x, eps, cfg):
    r"""Forward only: per-example ``rec`` (B,) and ``kl`` (B,) as in :func:`loss_and_grads`."""
    terms, _ = forward(params, x, eps, cfg)
    return terms["rec"], terms["kl"]


# --- using a trained model ----------------------------------------------------------------

def encode(params, x, cfg):
    r"""Posterior parameters of q(z|x): returns ``mu`` (B, J) and ``logvar`` (B, J)."""
    dtype = params_dtype(params, cfg)
    (mu, logvar), _ = encoder_forward(params, check_batch("x", x, dtype, cfg.input_dim), cfg)
    check_logvar(logvar)
    return mu, logvar


def decoder_outputs(params, z, cfg):
    r"""Unconstrained decoder outputs for z (B, J): a tuple of (B, D) arrays (logits, ...)."""
    dtype = params_dtype(params, cfg)
    outs, _ = decoder_forward(params, check_batch("z", z, dtype, cfg.latent_dim), cfg)
    return outs


def decode(params, z, cfg):
    r"""Mean of p(x|z) for z (B, J): sigmoid(logits) for bernoulli, the mean for the Gaussians,
    the continuous-Bernoulli mean for continuous_bernoulli. Returns (B, D)."""
    return get_likelihood(cfg.likelihood).mean(decoder_outputs(params, z, cfg), cfg.sigma)


def reconstruct(params, x, cfg, eps=None):
    r"""Decode the posterior mean ``mu`` (or ``z = mu + std * eps`` when eps is given). (B, D)."""
    mu, logvar = encode(params, x, cfg)
    z = mu if eps is None else reparameterize_forward(mu, logvar, eps)[0]
    return decode(params, z, cfg)


def sample(params, n, cfg, rng):
    r"""Generate n new data means: ``z ~ N(0, I)`` (n, J) from ``rng``, returns decode(z) (n, D).

    ``rng`` is required (a numpy.random.Generator): nothing here draws behind the caller's back.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("sample needs rng = numpy.random.Generator (e.g. "
                        f"numpy.random.default_rng(0)), got {type(rng).__name__}")
    check_number("sample", "n", n, low=0, integer=True)
    dtype = params_dtype(params, cfg)
    z = rng.standard_normal((n, cfg.latent_dim)).astype(dtype)
    return decode(params, z, cfg)


# --- parameters -------------------------------------------------------------------------

def layer_shapes(cfg):
    r"""Ordered ``{prefix: (in, out)}`` for every dense layer, e.g. ``{"enc.0": (784, 400)}``."""
    shapes = {}
    width = cfg.input_dim
    for i, h in enumerate(cfg.encoder_hidden):
        shapes[f"enc.{i}"] = (width, h)
        width = h
    shapes["enc.mu"] = (width, cfg.latent_dim)
    shapes["enc.logvar"] = (width, cfg.latent_dim)
    width = cfg.latent_dim
    for i, h in enumerate(cfg.decoder_hidden):
        shapes[f"dec.{i}"] = (width, h)
        width = h
    for head in LIKELIHOODS[cfg.likelihood].heads:
        shapes[f"dec.{head}"] = (width, cfg.input_dim)
    return shapes


def param_shapes(cfg):
    r"""Ordered ``{name: shape}``: ``<layer>.W`` of shape (in, out), ``<layer>.b`` of (out,)."""
    shapes = {}
    for prefix, (n_in, n_out) in layer_shapes(cfg).items():
        shapes[prefix + ".W"] = (n_in, n_out)
        shapes[prefix + ".b"] = (n_out,)
    return shapes


def init_params(cfg, rng):
    r"""PyTorch ``nn.Linear`` default initialization: W, b ~ U(-1/sqrt(in), 1/sqrt(in)).

    Parameters
    ----------
    cfg : VAEConfig
    rng : numpy.random.Generator (draws W then b, layer by layer, in name order).

    Returns
    -------
    dict name -> array of dtype cfg.dtype, W of shape (in, out).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("init_params needs a numpy.random.Generator as rng, e.g. "
                        f"numpy.random.default_rng(0); got {type(rng).__name__}")
    params = {}
    for prefix, (n_in, n_out) in layer_shapes(cfg).items():
        bound = 1 / np.sqrt(n_in)
        params[prefix + ".W"] = rng.uniform(-bound, bound, (n_in, n_out)).astype(cfg.dtype)
        params[prefix + ".b"] = rng.uniform(-bound, bound, n_out).astype(cfg.dtype)
    return params


# --- configuration ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class VAEConfig:
    r"""Architecture and objective of a VAE.

    Parameters
    ----------
    input_dim : D, data dimensions (784 for 28 x 28 images).
    latent_dim : J, latent dimensions.
    encoder_hidden, decoder_hidden : widths of the hidden layers, any number (may be empty).
    activation : one of relu, leaky_relu, tanh, sigmoid, softplus, identity.
    likelihood : bernoulli, gaussian, gaussian_learned or continuous_bernoulli.
    beta : weight of the KL term, loss = rec_weight * rec + beta * kl (beta = 1 is the ELBO).
    sigma : the fixed standard deviation of the ``gaussian`` likelihood (unused otherwise).
    dtype : float64 (reference precision) or float32 (fast path) of the parameters.
    rec_weight : weight of the reconstruction term (1, the default, is the ELBO; 0 switches
        reconstruction off, a KL-only objective used to show what the KL alone does).
    decoder_logvar_min : None (default) or a float: a floor on ``gaussian_learned``'s per-pixel
        log-variance, ``logvar = max(out_logvar, decoder_logvar_min)``, which bounds rec below
        (without it rec is unbounded on constant pixels). ``gaussian_learned`` only. A config
        saved before this field existed loads with None.
    """
    input_dim: int
    latent_dim: int = 20
    encoder_hidden: tuple = (400,)
    decoder_hidden: tuple = (400,)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    beta: float = 1.0
    sigma: float = 1.0
    dtype: str = "float64"
    rec_weight: float = 1.0
    decoder_logvar_min: float = None

    def __post_init__(self):
        for name in ("encoder_hidden", "decoder_hidden"):
            widths = getattr(self, name)
            if isinstance(widths, (str, bytes)):
                raise TypeError(f"VAEConfig.{name} must be a tuple of widths, got {widths!r}")
            widths = (widths,) if isinstance(widths, numbers.Number) else tuple(widths)
            for w in widths:
                check_number("VAEConfig", name, w, low=1, integer=True)
            object.__setattr__(self, name, tuple(int(w) for w in widths))
        for name in ("input_dim", "latent_dim"):
            check_number("VAEConfig", name, getattr(self, name), low=1, integer=True)
        for name in ("activation", "likelihood"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"VAEConfig.{name} must be a string, got "
                                f"{getattr(self, name)!r}")
        activation_pair(self.activation)
        get_likelihood(self.likelihood)
        check_number("VAEConfig", "rec_weight", self.rec_weight, low=0)
        check_number("VAEConfig", "beta", self.beta, low=0)
        check_number("VAEConfig", "sigma", self.sigma, low=0, low_open=True)
        if self.decoder_logvar_min is not None:
            if "out_logvar" not in LIKELIHOODS[self.likelihood].heads:
                raise ValueError(f"VAEConfig.decoder_logvar_min floors gaussian_learned's "
                                 f"log-variance head; likelihood {self.likelihood!r} has none "
                                 f"(leave it None)")
            check_number("VAEConfig", "decoder_logvar_min", self.decoder_logvar_min)
            object.__setattr__(self, "decoder_logvar_min", float(self.decoder_logvar_min))
        if str(self.dtype) not in DTYPES:
            raise ValueError(f"VAEConfig.dtype must be one of {DTYPES}, got {self.dtype!r}")
        object.__setattr__(self, "dtype", str(self.dtype))

    def to_dict(self):
        r"""A JSON-ready dict of the fields."""
        d = dataclasses.asdict(self)
        d["encoder_hidden"] = list(self.encoder_hidden)
        d["decoder_hidden"] = list(self.decoder_hidden)
        return d

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        r"""Build from a dict as written by :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown VAEConfig fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


# --- validation ---------------------------------------------------------------------------

def params_dtype(params, cfg):
    r"""Check ``params`` against ``cfg`` (names, shapes, one float dtype); return the dtype."""
    expected = param_shapes(cfg)
    missing = [k for k in expected if k not in params]
    extra = [k for k in params if k not in expected]
    if missing or extra:
        raise ValueError(f"params do not match the config: missing {missing}, unexpected "
                         f"{extra}; build them with vae_numpy.init_params(cfg, rng)")
    dtypes = {np.asarray(v).dtype for v in params.values()}
    if len(dtypes) != 1 or next(iter(dtypes)).name not in DTYPES:
        raise ValueError("params must all be float64 or all float32, found "
                         f"{sorted(map(str, dtypes))}")
    for name, shape in expected.items():
        if params[name].shape != shape:
            raise ValueError(f"params[{name!r}] has shape {params[name].shape}, expected {shape} "
                             "(W is (in, out); a PyTorch nn.Linear.weight must be transposed)")
    return next(iter(dtypes))


def check_batch(name, a, dtype, width, batch=None, likelihood=None):
    r"""Check a (B, width) float array of the params' dtype; return it (no copy, no cast).

    Finite values, and with ``likelihood`` (a likelihood name) values in its support
    (:func:`vae_numpy.files.checks.check_support`): both from one min and one max over the array.
    """
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[1] != width or (batch is not None and a.shape[0] != batch):
        want = f"({'B' if batch is None else batch}, {width})"
        hint = (f"; flatten images to (N, H*W) with {name}.reshape(len({name}), -1)"
                if a.ndim > 2 else "")
        raise ValueError(f"{name} has shape {a.shape}, expected {want}{hint}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but the parameters are {dtype}; convert "
                        f"with {name}.astype(np.{dtype}) (vae_numpy never changes dtype silently)")
    if a.size == 0:
        return a
    lo, hi = a.min(), a.max()   # NaN if any entry is NaN, +-inf if any is infinite
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or inf ({np.sum(~np.isfinite(a))} entries)")
    if likelihood is not None:
        check_support(name, a, likelihood, (lo, hi))
    return a


def check_inputs(params, x, eps, cfg):
    r"""Check params against cfg, then x (B, D) and eps (B, J) in the params' dtype; return
    x, eps as arrays (no copy, no cast)."""
    dtype = params_dtype(params, cfg)
    x = check_batch("x", x, dtype, cfg.input_dim, likelihood=cfg.likelihood)
    if len(x) == 0:
        raise ValueError(f"x has shape {x.shape}: an empty batch (B = 0) has no loss; "
                         "pass at least one example")
    eps = check_batch("eps", eps, dtype, cfg.latent_dim, batch=x.shape[0])
    return x, eps
