r"""An independent PyTorch VAE for the cross-framework tests (a test helper, not a test file).

Written from the formulas with torch ops and autograd; it never calls vae_numpy's math. From
vae_numpy it takes only what defines the test case, read from a fixture (vae_numpy.crosscheck):
the VAEConfig (architecture, likelihood, beta, sigma, rec_weight), the batch reduction and the
parameter arrays. Where torch has its own implementation of a term, that is used instead of the
formula, to keep the two sides independent:

    rec (bernoulli)             F.binary_cross_entropy_with_logits(reduction="none").sum(-1)
    rec (gaussian)              -Normal(mean, sigma).log_prob(x).sum(-1)
    rec (gaussian_learned)      -Normal(mean, exp(0.5 * logvar)).log_prob(x).sum(-1)
    rec (continuous_bernoulli)  -ContinuousBernoulli(logits=l).log_prob(x).sum(-1)
    kl                          kl_divergence(Normal(mu, std), Normal(0, 1)).sum(-1)
    z                           mu + std * eps, std = exp(0.5 * logvar)

``bug`` plants a known mistake, to show that the comparison report catches it:

    "std"       the sampler uses exp(logvar) as the standard deviation
    "kl_sign"   the KL has the wrong sign
    "bce_mean"  rec is averaged over the D data dimensions instead of summed
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import ContinuousBernoulli, Normal, kl_divergence

from vae_numpy.crosscheck import fixture_config, fixture_params

ACTIVATIONS = {
    "relu": F.relu,
    "leaky_relu": lambda a: F.leaky_relu(a, negative_slope=0.01),
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "identity": lambda a: a,
}
BUGS = (None, "std", "kl_sign", "bce_mean")


class TorchVAE(nn.Module):
    r"""An MLP VAE of a vae_numpy VAEConfig, with nn.Linear layers (weight is (out, in))."""

    def __init__(self, cfg, bug=None):
        super().__init__()
        if bug not in BUGS:
            raise ValueError(f"bug must be one of {BUGS}, got {bug!r}")
        self.cfg, self.bug = cfg, bug
        dtype = getattr(torch, cfg.dtype)
        self.encoder = nn.ModuleList()
        width = cfg.input_dim
        for h in cfg.encoder_hidden:
            self.encoder.append(nn.Linear(width, h, dtype=dtype))
            width = h
        self.mu_head = nn.Linear(width, cfg.latent_dim, dtype=dtype)
        self.logvar_head = nn.Linear(width, cfg.latent_dim, dtype=dtype)
        self.decoder = nn.ModuleList()
        width = cfg.latent_dim
        for h in cfg.decoder_hidden:
            self.decoder.append(nn.Linear(width, h, dtype=dtype))
            width = h
        self.out_head = nn.Linear(width, cfg.input_dim, dtype=dtype)
        if cfg.likelihood == "gaussian_learned":
            self.out_logvar_head = nn.Linear(width, cfg.input_dim, dtype=dtype)

    def layers(self):
        r"""``{vae_numpy prefix: nn.Linear}``, e.g. ``{"enc.0": self.encoder[0], ...}``."""
        named = {f"enc.{i}": layer for i, layer in enumerate(self.encoder)}
        named.update({"enc.mu": self.mu_head, "enc.logvar": self.logvar_head})
        named.update({f"dec.{i}": layer for i, layer in enumerate(self.decoder)})
        named["dec.out"] = self.out_head
        if self.cfg.likelihood == "gaussian_learned":
            named["dec.out_logvar"] = self.out_logvar_head
        return named

    def load_vae_numpy(self, params):
        r"""Copy vae_numpy parameters in: ``weight = W.T`` (W is (in, out)), ``bias = b``."""
        with torch.no_grad():
            for prefix, layer in self.layers().items():
                layer.weight.copy_(torch.from_numpy(params[prefix + ".W"].T))
                layer.bias.copy_(torch.from_numpy(params[prefix + ".b"]))
        return self

    def vae_numpy_params(self):
        r"""The current parameters by vae_numpy names, W = weight.T as (in, out)."""
        out = {}
        for prefix, layer in self.layers().items():
            out[prefix + ".W"] = layer.weight.detach().numpy().T.copy()
            out[prefix + ".b"] = layer.bias.detach().numpy().copy()
        return out

    def grads(self, pytorch_layout=False):
        r"""The parameters' .grad by vae_numpy names; W's as (in, out) unless pytorch_layout."""
        out = {}
        for prefix, layer in self.layers().items():
            weight_grad = layer.weight.grad.numpy()
            out[prefix + ".W"] = weight_grad.copy() if pytorch_layout else weight_grad.T.copy()
            out[prefix + ".b"] = layer.bias.grad.numpy().copy()
        return out

    def mlp(self, h, layers):
        act = ACTIVATIONS[self.cfg.activation]
        for layer in layers:
            h = act(layer(h))
        return h

    def forward(self, x, eps):
        r"""Per-example rec (B,), kl (B,) and z (B, J) for data x (B, D) and noise eps (B, J)."""
        h = self.mlp(x, self.encoder)
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        std = torch.exp(logvar) if self.bug == "std" else torch.exp(0.5 * logvar)
        z = mu + std * eps
        h = self.mlp(z, self.decoder)
        nll = self.pixel_nll(x, h)  # (B, D)
        rec = nll.mean(-1) if self.bug == "bce_mean" else nll.sum(-1)
        # kl of the true posterior std, also in the "std" bug (only its sampler is wrong)
        posterior = Normal(mu, torch.exp(0.5 * logvar))
        prior = Normal(torch.zeros_like(mu), torch.ones_like(mu))
        kl = kl_divergence(posterior, prior).sum(-1)
        if self.bug == "kl_sign":
            kl = -kl
        return rec, kl, z

    def pixel_nll(self, x, h):
        r"""-log p(x_d | z) per pixel, (B, D), from the last hidden layer h."""
        cfg = self.cfg
        out = self.out_head(h)
        if cfg.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(out, x, reduction="none")
        if cfg.likelihood == "gaussian":
            return -Normal(out, cfg.sigma).log_prob(x)
        if cfg.likelihood == "gaussian_learned":
            return -Normal(out, torch.exp(0.5 * self.out_logvar_head(h))).log_prob(x)
        if cfg.likelihood == "continuous_bernoulli":
            return -ContinuousBernoulli(logits=out).log_prob(x)
        raise ValueError(f"unknown likelihood {cfg.likelihood!r}")

    def loss(self, x, eps, reduction="mean"):
        r"""``reduce_b(rec_weight * rec_b + beta * kl_b)`` and the terms (rec, kl, z)."""
        rec, kl, z = self(x, eps)
        per_example = self.cfg.rec_weight * rec + self.cfg.beta * kl
        loss = per_example.mean() if reduction == "mean" else per_example.sum()
        return loss, rec, kl, z


def run_on_fixture(fixture, bug=None, pytorch_layout=False):
    r"""Load a fixture into a TorchVAE, run forward and backward; return a candidate dict.

    The config, the batch reduction and the parameters are the fixture's own."""
    cfg, reduction = fixture_config(fixture)
    model = TorchVAE(cfg, bug=bug).load_vae_numpy(fixture_params(fixture))
    x, eps = torch.from_numpy(fixture["x"]), torch.from_numpy(fixture["eps"])
    loss, rec, kl, z = model.loss(x, eps, reduction)
    loss.backward()
    return {"loss": loss.detach().numpy(), "rec": rec.detach().numpy(),
            "kl": kl.detach().numpy(), "z": z.detach().numpy(),
            "grads": model.grads(pytorch_layout=pytorch_layout)}
