r"""A PyTorch VAE written the way pytorch/examples' vae/main.py is (a test helper, not a test).

Written here for the tests, not copied: the same layer names (fc1, fc21, fc22, fc3, fc4), ReLU,
a sigmoid output, the noise drawn inside ``reparameterize`` with ``torch.randn_like``, and a
``loss_function`` that returns one scalar: ``binary_cross_entropy(reduction="sum")`` on the
probabilities plus the KL summed over everything. Sizes are arguments (the original is
784-400-20).

``bug`` plants one mistake, each as a user would write it:

    "kl_sign"     KLD = 0.5 * sum(1 + logvar - mu**2 - exp(logvar))      (sign flipped)
    "bce_mean"    binary_cross_entropy(..., reduction="mean")            (over all B*D)
    "kl_mean"     KLD = -0.5 * torch.mean(...)                           (over all B*J)
    "kl_mean_j"   KLD = -0.5 * sum_b mean_j(...)                         (over J)
    "rec_mean_d"  BCE averaged over the D pixels of each image, summed over the batch
    "std"         std = exp(logvar) in reparameterize                   (variance as std)
    "no_noise"    reparameterize returns mu                             (eval mode)
    "log_sigma"   not a bug: the second head is log sigma (std = exp(s), KL in terms of s)
    "kl_no_half"  KLD = -torch.sum(1 + logvar - mu**2 - exp(logvar))   (the 0.5 dropped)
    "kl_mu"       KLD = -0.5 * sum(1 + logvar - mu - exp(logvar))       (mu not squared)
    "detach_logvar"  std = exp(0.5 * logvar.detach()) in reparameterize (logvar gets no
                  gradient through z; every forward value is right)
    "fresh_noise" eps = torch.randn(std.shape) in reparameterize: a draw of its own, which
                  the recipe's noise patch (torch.randn_like) does not reach
"""
import torch
import torch.nn.functional as F
from torch import nn

BUGS = (None, "kl_sign", "bce_mean", "kl_mean", "kl_mean_j", "rec_mean_d", "std", "no_noise",
        "log_sigma", "kl_no_half", "kl_mu", "detach_logvar", "fresh_noise")


class VAE(nn.Module):
    def __init__(self, input_dim=784, hidden=400, latent=20, bug=None):
        super().__init__()
        if bug not in BUGS:
            raise ValueError(f"bug must be one of {BUGS}, got {bug!r}")
        self.input_dim, self.bug = input_dim, bug
        self.fc1 = nn.Linear(input_dim, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, input_dim)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        if self.bug == "no_noise":
            return mu
        if self.bug in ("std", "log_sigma"):
            std = torch.exp(logvar)  # "std": the bug; "log_sigma": the head is log sigma
        elif self.bug == "detach_logvar":
            std = torch.exp(0.5 * logvar.detach())
        else:
            std = torch.exp(0.5 * logvar)
        if self.bug == "fresh_noise":
            eps = torch.randn(std.shape, dtype=std.dtype)
        else:
            eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.input_dim))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_terms(recon_x, x, mu, logvar, bug=None):
    r"""The two terms as the loss below forms them before adding them up: each (B,) where the
    code keeps one value per example, or a scalar where it reduces at once."""
    x = x.view(-1, recon_x.shape[1])
    if bug == "bce_mean":
        bce = F.binary_cross_entropy(recon_x, x, reduction="mean")  # ()
    elif bug == "rec_mean_d":
        bce = F.binary_cross_entropy(recon_x, x, reduction="none").mean(dim=1)  # (B,)
    else:
        bce = F.binary_cross_entropy(recon_x, x, reduction="none").sum(dim=1)  # (B,)
    if bug == "log_sigma":  # logvar holds log sigma here: sigma**2 = exp(2 s)
        inner = 1 + 2 * logvar - mu.pow(2) - torch.exp(2 * logvar)
    elif bug == "kl_mu":
        inner = 1 + logvar - mu - logvar.exp()
    else:
        inner = 1 + logvar - mu.pow(2) - logvar.exp()  # (B, J)
    if bug == "kl_mean":
        kld = -0.5 * torch.mean(inner)  # ()
    elif bug == "kl_mean_j":
        kld = -0.5 * torch.mean(inner, dim=1)  # (B,)
    elif bug == "kl_sign":
        kld = 0.5 * torch.sum(inner, dim=1)  # (B,)
    elif bug == "kl_no_half":
        kld = -torch.sum(inner, dim=1)  # (B,)
    else:
        kld = -0.5 * torch.sum(inner, dim=1)  # (B,)
    return bce, kld


def loss_function(recon_x, x, mu, logvar, bug=None):
    r"""Reconstruction + KL summed over all elements and the batch: one scalar."""
    bce, kld = loss_terms(recon_x, x, mu, logvar, bug)
    return bce.sum() + kld.sum()
