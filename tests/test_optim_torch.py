r"""vae_numpy's optimizers follow torch.optim's trajectories to relative 1e-10 in float64.

Two levels: the update rules on the same gradient sequence (Adam, SGD with momentum and with
Nesterov, gradient-norm clipping), and 20 steps of real VAE training where each side computes
its own gradients (vae_numpy's hand-written backward against torch autograd on the
independent model of tests/torch_vae.py) from the same starting parameters, x and eps.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the optimizer trajectory tests need torch "
                                             "(pip install -e '.[torch]')")
from torch_vae import TorchVAE  # noqa: E402
from vae_numpy.gradcheck import rel_error  # noqa: E402
from vae_numpy.model import VAEConfig, init_params, loss_and_grads  # noqa: E402
from vae_numpy.optim import SGD, Adam, clip_grad_norm  # noqa: E402

pytestmark = pytest.mark.torch

# Both sides evaluate the same update formulas in float64, in a slightly different order
# (torch divides sqrt(v) by sqrt(1 - beta2**t); vae_numpy takes sqrt(v / (1 - beta2**t))), so
# each step differs by round-off, ~1e-16 relative; 20 steps accumulate ~1e-15. A wrong bias
# correction, a momentum applied twice or a missing Nesterov term are wrong by >1e-3.
REL_TOL = 1e-10
STEPS = 20

SHAPES = {"a.W": (5, 3), "a.b": (3,), "c.W": (3, 4)}

OPTIMIZERS = {
    "adam": (lambda: Adam(lr=1e-2),
             lambda ps: torch.optim.Adam(ps, lr=1e-2)),
    "adam_custom": (lambda: Adam(lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-6),
                    lambda ps: torch.optim.Adam(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-6)),
    "sgd": (lambda: SGD(lr=0.05),
            lambda ps: torch.optim.SGD(ps, lr=0.05)),
    "momentum": (lambda: SGD(lr=0.05, momentum=0.9),
                 lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    "nesterov": (lambda: SGD(lr=0.05, momentum=0.9, nesterov=True),
                 lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True)),
}


def worst_error(params, tensors):
    return max(rel_error(params[k], tensors[k].detach().numpy()) for k in params)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_same_gradients_same_trajectory(name, rng):
    make_ours, make_torch = OPTIMIZERS[name]
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    start = {k: v.copy() for k, v in params.items()}
    ours, theirs = make_ours(), make_torch(list(tensors.values()))
    state = ours.init(params)
    for step in range(STEPS):
        grads = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
        ours.step(params, grads, state)
        for k, t in tensors.items():
            t.grad = torch.from_numpy(grads[k].copy())
        theirs.step()
        assert worst_error(params, tensors) <= REL_TOL, f"{name}: step {step + 1}"
    assert int(state["step"]) == STEPS
    moved = max(rel_error(params[k], start[k]) for k in params)
    assert moved > 1e-2  # the trajectory went somewhere, so the agreement means something


@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clips, and leaves alone
def test_clip_grad_norm_matches_torch(max_norm, rng):
    grads = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    tensors = {k: torch.zeros(s, dtype=torch.float64, requires_grad=True)
               for k, s in SHAPES.items()}
    for k, t in tensors.items():
        t.grad = torch.from_numpy(grads[k].copy())
    clipped, norm = clip_grad_norm(grads, max_norm)
    torch_norm = torch.nn.utils.clip_grad_norm_(list(tensors.values()), max_norm)
    assert rel_error(norm, float(torch_norm)) <= REL_TOL
    for k, t in tensors.items():
        assert rel_error(clipped[k], t.grad.numpy()) <= REL_TOL, k
    if max_norm < norm:  # the clipped global norm is max_norm (up to the 1e-6 guard)
        total = np.sqrt(sum(np.sum(g ** 2) for g in clipped.values()))
        assert total == pytest.approx(max_norm, rel=1e-5)


# --- 20 steps of VAE training, each side with its own gradients ----------------------------

CFG = VAEConfig(input_dim=16, latent_dim=3, encoder_hidden=(10, 8), decoder_hidden=(9,),
                activation="tanh", likelihood="bernoulli")


def training_run(make_ours, make_torch, clip=None, reduction="mean", seed=0):
    r"""Train both models side by side; return the worst parameter error over all steps."""
    rng = np.random.default_rng(seed)
    params = init_params(CFG, rng)
    x = (rng.random((6, CFG.input_dim)) < 0.4).astype(np.float64)  # (B, D)
    model = TorchVAE(CFG).load_vae_numpy(params)
    ours, theirs = make_ours(), make_torch(model.parameters())
    state = ours.init(params)
    start = {k: v.copy() for k, v in params.items()}
    worst, losses = 0.0, []
    for step in range(STEPS):
        eps = rng.standard_normal((len(x), CFG.latent_dim))  # (B, J), the same for both
        loss, grads, _ = loss_and_grads(params, x, eps, CFG, reduction=reduction)
        theirs.zero_grad()
        torch_loss = model.loss(torch.from_numpy(x), torch.from_numpy(eps), reduction)[0]
        torch_loss.backward()
        if clip is not None:
            grads, _ = clip_grad_norm(grads, clip)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        ours.step(params, grads, state)
        theirs.step()
        losses.append((float(loss), torch_loss.item()))
        theirs_params = model.vae_numpy_params()
        worst = max(worst, max(rel_error(params[k], theirs_params[k]) for k in params))
    moved = max(rel_error(params[k], start[k]) for k in params)
    return worst, moved, losses


@pytest.mark.parametrize("name", ["adam", "momentum", "nesterov"])
def test_vae_training_trajectories_agree(name):
    make_ours, make_torch = OPTIMIZERS[name]
    worst, moved, losses = training_run(make_ours, make_torch)
    assert worst <= REL_TOL
    assert moved > 1e-2
    assert all(rel_error(a, b) <= REL_TOL for a, b in losses)
    assert losses[-1][0] < losses[0][0]  # it trained: the loss went down


def test_vae_training_with_clipping_agrees():
    make_ours, make_torch = OPTIMIZERS["nesterov"]
    worst, moved, _ = training_run(make_ours, make_torch, clip=0.5, reduction="sum")
    assert worst <= REL_TOL and moved > 1e-2


def test_trajectory_check_can_fail():
    r"""A slightly different optimizer (beta1 0.9 vs 0.91) is caught within 20 steps."""
    worst, _, _ = training_run(lambda: Adam(lr=1e-2, beta1=0.91),
                               lambda ps: torch.optim.Adam(ps, lr=1e-2))
    assert worst > 1e3 * REL_TOL
