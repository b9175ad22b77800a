r"""An independent PyTorch IWAE bound for the cross-framework tests (a test helper, not a test).

Written from the formulas with torch ops and autograd; it never calls vae_numpy's math and
shares no code with tests/torch_vae.py. The parameters are plain leaf tensors under vae_numpy's
names (W (in, out), a layer is ``h @ W + b``), and the K samples are kept as a (K, B, J) tensor
that the layers broadcast over (vae_numpy stacks them into (K*B, J); here nothing is stacked).
Where torch has its own implementation of a term, that is used, and log q is the density of
q evaluated at z (vae_numpy uses the eps form, log N(eps; 0, I) - 0.5 sum logvar):

    log p(x|z) (bernoulli)             Bernoulli(logits=l).log_prob(x).sum(-1)
    log p(x|z) (gaussian)              Normal(mean, sigma).log_prob(x).sum(-1)
    log p(x|z) (gaussian_learned)      Normal(mean, exp(0.5 * logvar)).log_prob(x).sum(-1)
    log p(x|z) (continuous_bernoulli)  ContinuousBernoulli(logits=l).log_prob(x).sum(-1)
    log p(z)                           Normal(0, 1).log_prob(z).sum(-1)
    log q(z|x)                         Normal(mu, exp(0.5 * logvar)).log_prob(z).sum(-1)
    L_K                                torch.logsumexp(log_w, dim=0) - log K

STL and DReG (:func:`iwae_loss_and_grads`) are written the torch way, with .detach() on
q's parameters and on the normalized weights.
"""
import math

import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, ContinuousBernoulli, Normal

ACTIVATIONS = {
    "relu": F.relu,
    "leaky_relu": lambda a: F.leaky_relu(a, negative_slope=0.01),
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "identity": lambda a: a,
}


def _layer(p, prefix, h):
    return h @ p[prefix + ".W"] + p[prefix + ".b"]


def _mlp(p, prefix, n_layers, activation, h):
    act = ACTIVATIONS[activation]
    for i in range(n_layers):
        h = act(_layer(p, f"{prefix}.{i}", h))
    return h


def log_px_given_z(p, cfg, x, z):
    r"""log p(x|z) summed over D, for z (K, B, J) and x (B, D): returns (K, B)."""
    h = _mlp(p, "dec", len(cfg.decoder_hidden), cfg.activation, z)
    out = _layer(p, "dec.out", h)  # (K, B, D)
    if cfg.likelihood == "bernoulli":
        dist = Bernoulli(logits=out)
    elif cfg.likelihood == "gaussian":
        dist = Normal(out, cfg.sigma)
    elif cfg.likelihood == "gaussian_learned":
        dist = Normal(out, torch.exp(0.5 * _layer(p, "dec.out_logvar", h)))
    elif cfg.likelihood == "continuous_bernoulli":
        dist = ContinuousBernoulli(logits=out)
    else:
        raise ValueError(f"unknown likelihood {cfg.likelihood!r}")
    return dist.log_prob(x.expand_as(out)).sum(-1)


def iw_bound(p, cfg, x, eps, stop_q=False):
    r"""``L_K`` (B,) and ``log w`` (K, B) for data x (B, D) and noise eps (K, B, J).

    ``stop_q=True`` evaluates log q with detached parameters, ``Normal(mu.detach(),
    std.detach()).log_prob(z)``: the gradient then reaches the encoder only through z.
    """
    h = _mlp(p, "enc", len(cfg.encoder_hidden), cfg.activation, x)
    mu, logvar = _layer(p, "enc.mu", h), _layer(p, "enc.logvar", h)
    std = torch.exp(0.5 * logvar)
    z = mu + std * eps  # (K, B, J)
    log_prior = Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)
    q = Normal(mu.detach(), std.detach()) if stop_q else Normal(mu, std)
    log_w = log_px_given_z(p, cfg, x, z) + log_prior - q.log_prob(z).sum(-1)  # (K, B)
    return torch.logsumexp(log_w, dim=0) - math.log(eps.shape[0]), log_w


def iwae_loss_and_grads(params, x, eps, cfg, reduction="mean", estimator="iwae"):
    r"""The torch side of the comparison, with NumPy in and out.

    ``estimator``: "iwae" backpropagates ``-L_K``. "stl" and "dreg" (Roeder et al. 2017;
    Tucker et al. 2019), the usual way: log q with detached parameters, normalized weights
    ``s = softmax(log w).detach()``; the encoder's gradient from the surrogate
    ``-reduce(sum_k s_k * log w_k)`` (STL) or ``-reduce(sum_k s_k**2 * log w_k)`` (DReG), the
    decoder's from ``-L_K``.

    Returns ``loss`` (float), ``grads`` {name: array, W as (in, out)}, ``iw_bound`` (B,) and
    ``log_weights`` (K, B), all from float64 tensors and autograd.
    """
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    bound, log_w = iw_bound(p, cfg, torch.tensor(x), torch.tensor(eps),
                            stop_q=estimator != "iwae")
    reduce = torch.mean if reduction == "mean" else torch.sum
    loss = -reduce(bound)
    if estimator == "iwae":
        loss.backward()
        grads = {k: t.grad.numpy() for k, t in p.items()}
    else:
        s = torch.softmax(log_w, dim=0).detach()
        weights = s if estimator == "stl" else s**2
        surrogate = -reduce((weights * log_w).sum(0))
        encoder = [k for k in p if k.startswith("enc.")]
        decoder = [k for k in p if not k.startswith("enc.")]
        g_enc = torch.autograd.grad(surrogate, [p[k] for k in encoder], retain_graph=True)
        g_dec = torch.autograd.grad(loss, [p[k] for k in decoder])
        grads = {k: g.numpy() for k, g in zip(encoder + decoder, g_enc + g_dec)}
    return (loss.item(), {k: grads[k] for k in params},
            bound.detach().numpy(), log_w.detach().numpy())
