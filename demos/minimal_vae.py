r"""The VAE on one page: NumPy only, every gradient written out, nothing imported from vae_numpy.

A Bernoulli VAE with one hidden layer on each side (Kingma & Welling 2014), trained with Adam.
Shape letters: B batch, D data dimensions, H hidden width, J latent dimensions.

    encoder:  x (B, D) -> h1 = relu(x @ W + b) (B, H) -> mu (B, J), logvar (B, J)
    sampler:  z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I) (B, J)   (reparameterization)
    decoder:  z (B, J) -> h2 = relu(z @ W + b) (B, H) -> logits (B, D)
    rec_b  =  -log p(x_b | z_b) = sum_d [softplus(l_d) - x_d * l_d]   (Bernoulli, from logits)
    kl_b   =  KL(q(z|x_b) || N(0, I)) = 0.5 * sum_j (mu_j**2 + exp(logvar_j) - 1 - logvar_j)
    loss   =  mean_b (rec_b + kl_b) = -ELBO, in nats per example

The conventions are vae_numpy's, so the numbers agree with its loss_and_grads and Adam (to
1e-12 and 1e-10, tests/test_minimal_vae.py): W (in, out), x @ W + b (nn.Linear.weight is W.T),
PyTorch's nn.Linear default initialization, parameter names enc.0.W, ..., dec.out.b.

    python demos/minimal_vae.py                              # toy shapes made below
    python demos/minimal_vae.py --data mnist.npz --epochs 10 # x_train of a Keras mnist.npz

--data takes an .npz with x_train (Keras layout) or with a single array, or an .npy: N images
of any shape, uint8 (/255) or floats in [0, 1]; each minibatch is binarized afresh (dynamic).
On MNIST the second command ends epoch 10 at a training -ELBO of 102.75 = rec 75.94 + kl 26.81.
"""
import argparse
import sys

import numpy as np

# --- hyperparameters --------------------------------------------------------------------------
HIDDEN, LATENT = 400, 20                          # H, J
EPOCHS, BATCH_SIZE = 10, 100
LR, BETA1, BETA2, ADAM_EPS = 1e-3, 0.9, 0.999, 1e-8   # torch.optim.Adam's defaults


def softplus(a):
    r"""``log(1 + exp(a))``, as ``logaddexp(0, a)``: finite for every finite a."""
    return np.logaddexp(0, a)


def sigmoid(a):
    r"""``1 / (1 + exp(-a)) = exp(-softplus(-a))``: never overflows."""
    return np.exp(-softplus(-a))


def init(rng, D, H, J):
    r"""PyTorch's nn.Linear default: ``W (in, out), b (out,) ~ U(-1/sqrt(in), 1/sqrt(in))``."""
    params = {}
    for name, n_in, n_out in [("enc.0", D, H), ("enc.mu", H, J), ("enc.logvar", H, J),
                              ("dec.0", J, H), ("dec.out", H, D)]:
        bound = 1 / np.sqrt(n_in)
        params[name + ".W"] = rng.uniform(-bound, bound, (n_in, n_out))
        params[name + ".b"] = rng.uniform(-bound, bound, n_out)
    return params


def loss_and_grads(params, x, eps):
    r"""-ELBO of a batch, ``mean_b(rec_b + kl_b)``, and its gradient for every parameter.

    x (B, D) in [0, 1], eps (B, J) standard normal noise chosen by the caller. Returns
    ``(loss, grads, terms)``: grads has the keys of params, terms the per-example rec, kl (B,).
    """
    p, B = params, x.shape[0]
    # forward
    a1 = x @ p["enc.0.W"] + p["enc.0.b"]                     # (B, H)
    h1 = np.maximum(a1, 0)                                   # (B, H) relu
    mu = h1 @ p["enc.mu.W"] + p["enc.mu.b"]                  # (B, J)
    logvar = h1 @ p["enc.logvar.W"] + p["enc.logvar.b"]      # (B, J) log sigma**2
    std = np.exp(0.5 * logvar)                               # (B, J)
    z = mu + std * eps                                       # (B, J)
    a2 = z @ p["dec.0.W"] + p["dec.0.b"]                     # (B, H)
    h2 = np.maximum(a2, 0)                                   # (B, H) relu
    logits = h2 @ p["dec.out.W"] + p["dec.out.b"]            # (B, D)
    rec = np.sum(softplus(logits) - x * logits, axis=1)      # (B,) cross-entropy, stable
    kl = 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=1)   # (B,)
    loss = np.mean(rec + kl)

    # backward: the same steps in reverse, one local derivative per line
    g = {}
    drec = dkl = 1 / B                                       # d loss / d rec_b = d kl_b (mean)
    dlogits = drec * (sigmoid(logits) - x)                   # (B, D) d rec / d logits
    g["dec.out.W"] = h2.T @ dlogits                          # (H, D)
    g["dec.out.b"] = dlogits.sum(axis=0)                     # (D,)
    dh2 = dlogits @ p["dec.out.W"].T                         # (B, H)
    da2 = dh2 * (a2 > 0)                                     # (B, H) relu' = 1 if a > 0
    g["dec.0.W"] = z.T @ da2                                 # (J, H)
    g["dec.0.b"] = da2.sum(axis=0)                           # (H,)
    dz = da2 @ p["dec.0.W"].T                                # (B, J)
    dmu_rec = dz * 1                                         # (B, J) dz/dmu = 1
    dlogvar_rec = dz * 0.5 * std * eps                       # (B, J) dz/dlogvar = std * eps / 2
    dmu_kl = dkl * mu                                        # (B, J) dKL/dmu = mu
    dlogvar_kl = dkl * 0.5 * (np.exp(logvar) - 1)            # (B, J) dKL/dlogvar
    dmu = dmu_rec + dmu_kl                                   # (B, J) the two paths meet
    dlogvar = dlogvar_rec + dlogvar_kl                       # (B, J)
    g["enc.mu.W"] = h1.T @ dmu                               # (H, J)
    g["enc.mu.b"] = dmu.sum(axis=0)                          # (J,)
    g["enc.logvar.W"] = h1.T @ dlogvar                       # (H, J)
    g["enc.logvar.b"] = dlogvar.sum(axis=0)                  # (J,)
    dh1 = dmu @ p["enc.mu.W"].T + dlogvar @ p["enc.logvar.W"].T   # (B, H) both heads read h1
    da1 = dh1 * (a1 > 0)                                     # (B, H) relu'
    g["enc.0.W"] = x.T @ da1                                 # (D, H)
    g["enc.0.b"] = da1.sum(axis=0)                           # (H,)
    return loss, {k: g[k] for k in params}, {"rec": rec, "kl": kl}


def adam_init(params):
    r"""Adam's state: the step count t and zero moments m, v for every parameter."""
    return {"t": 0, "m": {k: np.zeros_like(v) for k, v in params.items()},
            "v": {k: np.zeros_like(v) for k, v in params.items()}}


def adam_step(params, grads, state, lr=LR, beta1=BETA1, beta2=BETA2, eps=ADAM_EPS):
    r"""One Adam update in place (Kingma & Ba 2015, Algorithm 1, as torch.optim.Adam).

    ``m <- beta1 m + (1 - beta1) g``, ``v <- beta2 v + (1 - beta2) g**2``,
    ``p <- p - lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)``.
    """
    state["t"] += 1
    bias1, bias2 = 1 - beta1 ** state["t"], 1 - beta2 ** state["t"]
    for k, p in params.items():
        m, v, g = state["m"][k], state["v"][k], grads[k]
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * (g * g)
        p -= lr * (m / bias1) / (np.sqrt(v / bias2) + eps)


def toy_data(rng, n=1000, side=12):
    r"""n binary side x side images, each one filled rectangle: (n, side * side) in {0, 1}."""
    x = np.zeros((n, side, side))
    for img in x:
        top, left = rng.integers(0, side - 3, size=2)
        height, width = rng.integers(3, side // 2 + 1, size=2)
        img[top:top + height, left:left + width] = 1
    return x.reshape(n, -1)


def load_data(path):
    r"""Images from an .npz (x_train, or its one array) or an .npy, as (N, D) floats in [0, 1]."""
    data = np.load(path)
    if not isinstance(data, np.ndarray):
        names = data.files
        if "x_train" not in names and len(names) != 1:
            raise ValueError(f"{path}: expected an array named x_train or a single array, "
                             f"found {names}")
        data = data["x_train" if "x_train" in names else names[0]]
    x = data.reshape(len(data), -1).astype(np.float32)     # float32 storage: half the memory
    if data.dtype == np.uint8:
        x /= 255
    if not np.all((x >= 0) & (x <= 1)):
        raise ValueError(f"{path}: pixel values must be uint8 or floats in [0, 1]; "
                         f"found {np.nanmin(x)} to {np.nanmax(x)} (divide by the maximum)")
    return x


def at_least(low):
    r"""An argparse type: an integer >= low, or a one-line usage error."""
    def parse(text):
        if not text.lstrip("-").isdigit() or int(text) < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return int(text)
    return parse


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help=".npz (x_train or one array) or .npy; default: toy")
    parser.add_argument("--epochs", type=at_least(0), default=EPOCHS)
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--batch-size", type=at_least(1), default=BATCH_SIZE)
    parser.add_argument("--hidden", type=at_least(1), default=HIDDEN)
    parser.add_argument("--latent", type=at_least(1), default=LATENT)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    try:
        x = toy_data(rng) if args.data is None else load_data(args.data)   # (N, D)
    except (OSError, ValueError) as error:
        parser.error(f"--data: {error}")
    params = init(rng, x.shape[1], args.hidden, args.latent)
    state = adam_init(params)
    history = {"neg_elbo": [], "rec": [], "kl": []}
    for epoch in range(1, args.epochs + 1):
        rec_sum = kl_sum = 0.0
        order = rng.permutation(len(x))
        for start in range(0, len(x), args.batch_size):
            xb = x[order[start:start + args.batch_size]]
            xb = (rng.uniform(size=xb.shape) < xb).astype(np.float64)   # dynamic binarization
            eps = rng.standard_normal((len(xb), args.latent))           # (B, J)
            loss, grads, terms = loss_and_grads(params, xb, eps)
            adam_step(params, grads, state)
            rec_sum, kl_sum = rec_sum + terms["rec"].sum(), kl_sum + terms["kl"].sum()
            print(f"epoch {epoch}: {start + len(xb)}/{len(x)}", end="\r", file=sys.stderr)
        rec, kl = rec_sum / len(x), kl_sum / len(x)
        for key, value in zip(history, (rec + kl, rec, kl)):
            history[key].append(float(value))
        print(f"epoch {epoch}: -ELBO {rec + kl:.2f} = rec {rec:.2f} + kl {kl:.2f} "
              "(nats per image, training set)")
    return history


if __name__ == "__main__":
    main()
