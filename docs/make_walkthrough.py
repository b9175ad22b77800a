r"""Write docs/walkthrough.md: one example through a tiny VAE, every number printed.

    python docs/make_walkthrough.py            # rewrite docs/walkthrough.md
    python docs/make_walkthrough.py --check    # exit 1 if the committed page is stale

The model: D = 4 pixels, an encoder and a decoder with one hidden layer of H = 3 tanh units,
J = 2 latent dimensions, a Bernoulli decoder, one example (B = 1, so the mean over the batch is
the example's own loss), beta = 1, float64. Every forward value comes from the package's own
forward functions, every gradient from its own backward functions, in the order
``vae_numpy.model.loss_and_grads`` calls them; beside each gradient are the central finite
differences of the loss with respect to that quantity (``vae_numpy.gradcheck``). The script
checks that every pair agrees to ``gradcheck.TOLERANCE_FLOAT64`` and that the parameter
gradients equal those of ``loss_and_grads``, and refuses to write the page otherwise.
tests/test_walkthrough.py regenerates the page and compares it with the committed one.
"""
import argparse
import os
import sys

import numpy as np

from vae_numpy import VAEConfig, init_params, loss_and_grads
from vae_numpy.files.atomic import atomic_write
from vae_numpy.gaussian import (kl_standard_normal, kl_standard_normal_backward,
                                reparameterize_backward, reparameterize_forward)
from vae_numpy.gradcheck import TOLERANCE_FLOAT64, numerical_gradient, rel_error
from vae_numpy.layers import dense_backward, dense_forward, tanh_backward, tanh_forward
from vae_numpy.likelihoods import bernoulli_nll, bernoulli_nll_backward

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "walkthrough.md")
D, H, J = 4, 3, 2
SEED = 4                      # the parameters' and the noise's seed
X = np.array([[1.0, 0.0, 1.0, 1.0]])   # (1, D), one binary image of four pixels
AGREE_WITH_LOSS_AND_GRADS = 1e-12      # the same functions in the same order: round-off only
CFG = VAEConfig(input_dim=D, latent_dim=J, encoder_hidden=(H,), decoder_hidden=(H,),
                activation="tanh", likelihood="bernoulli", beta=1.0)


def fmt(a):
    r"""An array as text: a vector ``[+0.123456, ...]``, a matrix its rows joined by ``;``."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return f"{float(a):+.6f}"
    if a.ndim == 1 or a.shape[0] == 1:
        return "[" + ", ".join(f"{v:+.6f}" for v in a.ravel()) + "]"
    return "[" + "; ".join(", ".join(f"{v:+.6f}" for v in row) for row in a) + "]"


def sci(v):
    r"""``1e-07`` written as ``1e-7``."""
    mantissa, exponent = f"{v:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def setup():
    r"""The parameters and the noise, from SEED."""
    rng = np.random.default_rng(SEED)
    params = init_params(CFG, rng)
    eps = rng.standard_normal((1, J))
    return params, eps


def forward(params, eps):
    r"""The forward pass, step by step with the package's functions: a dict of every value and
    cache, and the chain of functions ``loss_of[name](value)`` that finite differences need."""
    p, v = params, {}
    v["a1"], c_enc = dense_forward(X, p["enc.0.W"], p["enc.0.b"])
    v["h1"], _ = tanh_forward(v["a1"])
    v["mu"], c_mu = dense_forward(v["h1"], p["enc.mu.W"], p["enc.mu.b"])
    v["logvar"], c_lv = dense_forward(v["h1"], p["enc.logvar.W"], p["enc.logvar.b"])
    v["z"], c_rep = reparameterize_forward(v["mu"], v["logvar"], eps)
    v["std"] = c_rep[0]
    v["a2"], c_dec = dense_forward(v["z"], p["dec.0.W"], p["dec.0.b"])
    v["h2"], _ = tanh_forward(v["a2"])
    v["logits"], c_out = dense_forward(v["h2"], p["dec.out.W"], p["dec.out.b"])
    v["rec"] = bernoulli_nll(X, v["logits"])
    v["kl"] = kl_standard_normal(v["mu"], v["logvar"])
    v["loss"] = v["rec"] + v["kl"]
    caches = dict(enc=c_enc, mu=c_mu, logvar=c_lv, rep=c_rep, dec=c_dec, out=c_out)
    return v, caches


def loss_functions(params, eps, v):
    r"""The loss as a function of each intermediate, the rest of the forward pass downstream.

    Each one recomputes what follows its argument with the same functions as :func:`forward`;
    the KL is held at its value where the argument does not reach it.
    """
    p = params

    def of_logits(l):
        return bernoulli_nll(X, l)[0] + v["kl"][0]

    def of_h2(h2):
        return of_logits(dense_forward(h2, p["dec.out.W"], p["dec.out.b"])[0])

    def of_a2(a2):
        return of_h2(tanh_forward(a2)[0])

    def of_z(z):
        return of_a2(dense_forward(z, p["dec.0.W"], p["dec.0.b"])[0])

    def rec_of(mu, logvar):
        return of_z(reparameterize_forward(mu, logvar, eps)[0]) - v["kl"][0]

    def of_mu_logvar(mu, logvar):
        return rec_of(mu, logvar) + kl_standard_normal(mu, logvar)[0]

    def of_h1(h1):
        return of_mu_logvar(dense_forward(h1, p["enc.mu.W"], p["enc.mu.b"])[0],
                            dense_forward(h1, p["enc.logvar.W"], p["enc.logvar.b"])[0])

    def of_a1(a1):
        return of_h1(tanh_forward(a1)[0])

    return dict(of_logits=of_logits, of_h2=of_h2, of_a2=of_a2, of_z=of_z, rec_of=rec_of,
                kl_of=lambda mu, logvar: kl_standard_normal(mu, logvar)[0],
                of_mu_logvar=of_mu_logvar, of_h1=of_h1, of_a1=of_a1)


def fd(f, value):
    r"""Central differences of the scalar ``f(a)`` at ``a = value`` (a copy is perturbed)."""
    a = np.array(value, dtype=np.float64)
    return numerical_gradient(lambda: f(a), a)


def fd2(f, first, second, which):
    r"""Central differences of ``f(first, second)`` in argument ``which`` (0 or 1)."""
    a, b = np.array(first, dtype=np.float64), np.array(second, dtype=np.float64)
    return numerical_gradient(lambda: f(a, b), (a, b)[which])


def backward(params, v, caches):
    r"""The backward pass with the package's functions, in loss_and_grads' order.

    Returns the rows of the page's backward table, ``(name, formula, local derivative, value)``,
    and the parameter gradients.
    """
    g, rows = {}, []
    dlogits = bernoulli_nll_backward(np.ones(1), X, v["logits"])
    rows.append(("d loss / d logits", "sigmoid(logits) - x", "the first step: d rec / d logits",
                 dlogits))
    dh2, g["dec.out.W"], g["dec.out.b"] = dense_backward(dlogits, caches["out"])
    rows.append(("d loss / d h2", "d logits @ W_out.T", params["dec.out.W"].T, dh2))
    da2 = tanh_backward(dh2, v["h2"])
    rows.append(("d loss / d a2", "d h2 * (1 - h2**2)", 1 - v["h2"] ** 2, da2))
    dz, g["dec.0.W"], g["dec.0.b"] = dense_backward(da2, caches["dec"])
    rows.append(("d loss / d z", "d a2 @ W_dec.T", params["dec.0.W"].T, dz))
    dmu_rec, dlogvar_rec = reparameterize_backward(dz, caches["rep"])
    rows.append(("d rec / d mu", "d z * 1", np.ones((1, J)), dmu_rec))
    rows.append(("d rec / d logvar", "d z * 0.5 * std * eps", 0.5 * caches["rep"][0]
                 * caches["rep"][1], dlogvar_rec))
    dmu_kl, dlogvar_kl = kl_standard_normal_backward(np.ones(1), v["mu"], v["logvar"])
    rows.append(("d kl / d mu", "mu", v["mu"], dmu_kl))
    rows.append(("d kl / d logvar", "0.5 * expm1(logvar)", 0.5 * np.expm1(v["logvar"]),
                 dlogvar_kl))
    dmu, dlogvar = dmu_rec + dmu_kl, dlogvar_rec + dlogvar_kl
    rows.append(("d loss / d mu", "d rec / d mu + d kl / d mu", "1 for each path", dmu))
    rows.append(("d loss / d logvar", "d rec / d logvar + d kl / d logvar", "1 for each path",
                 dlogvar))
    dh_mu, g["enc.mu.W"], g["enc.mu.b"] = dense_backward(dmu, caches["mu"])
    dh_lv, g["enc.logvar.W"], g["enc.logvar.b"] = dense_backward(dlogvar, caches["logvar"])
    dh1 = dh_mu + dh_lv
    rows.append(("d loss / d h1", "d mu @ W_mu.T + d logvar @ W_logvar.T",
                 f"W_mu.T = {fmt(params['enc.mu.W'].T)}, "
                 f"W_logvar.T = {fmt(params['enc.logvar.W'].T)}", dh1))
    da1 = tanh_backward(dh1, v["h1"])
    rows.append(("d loss / d a1", "d h1 * (1 - h1**2)", 1 - v["h1"] ** 2, da1))
    _, g["enc.0.W"], g["enc.0.b"] = dense_backward(da1, caches["enc"])
    return rows, g


def finite_differences(params, eps, v):
    r"""For each backward row, the central differences of the loss (or of rec, or kl)."""
    f = loss_functions(params, eps, v)
    mu, lv = v["mu"], v["logvar"]
    return {
        "d loss / d logits": fd(f["of_logits"], v["logits"]),
        "d loss / d h2": fd(f["of_h2"], v["h2"]),
        "d loss / d a2": fd(f["of_a2"], v["a2"]),
        "d loss / d z": fd(f["of_z"], v["z"]),
        "d rec / d mu": fd2(f["rec_of"], mu, lv, 0),
        "d rec / d logvar": fd2(f["rec_of"], mu, lv, 1),
        "d kl / d mu": fd2(f["kl_of"], mu, lv, 0),
        "d kl / d logvar": fd2(f["kl_of"], mu, lv, 1),
        "d loss / d mu": fd2(f["of_mu_logvar"], mu, lv, 0),
        "d loss / d logvar": fd2(f["of_mu_logvar"], mu, lv, 1),
        "d loss / d h1": fd(f["of_h1"], v["h1"]),
        "d loss / d a1": fd(f["of_a1"], v["a1"]),
    }


def parameter_finite_differences(params, eps):
    r"""Central differences of ``loss_and_grads``' loss in every parameter."""
    work = {k: a.copy() for k, a in params.items()}
    return {k: numerical_gradient(lambda: loss_and_grads(work, X, eps, CFG)[0], work[k])
            for k in work}


def check(name, analytic, numerical):
    err = rel_error(analytic, numerical)
    if not err <= TOLERANCE_FLOAT64:
        raise AssertionError(f"{name}: rel err {err:.1e} > {TOLERANCE_FLOAT64:g}")


def page():
    r"""The text of docs/walkthrough.md."""
    params, eps = setup()
    v, caches = forward(params, eps)
    rows, grads = backward(params, v, caches)
    numerical = finite_differences(params, eps, v)
    param_fd = parameter_finite_differences(params, eps)
    loss, reference, _ = loss_and_grads(params, X, eps, CFG)
    if abs(loss - v["loss"][0]) > AGREE_WITH_LOSS_AND_GRADS:
        raise AssertionError(f"forward {v['loss'][0]!r} != loss_and_grads {loss!r}")
    for name, _, _, value in rows:
        check(name, value, numerical[name])
    for k in params:
        check(k, grads[k], param_fd[k])
        if rel_error(grads[k], reference[k]) > AGREE_WITH_LOSS_AND_GRADS:
            raise AssertionError(f"{k}: the walk-through's gradient is not loss_and_grads'")

    out = [HEADER.format(D=D, H=H, J=J, seed=SEED, tol=sci(TOLERANCE_FLOAT64))]
    out.append("## The inputs\n")
    out.append("| | value |\n|---|---|")
    out.append(f"| x (1, D) | {fmt(X)} |")
    out.append(f"| eps (1, J) | {fmt(eps)} |")
    for k, a in params.items():
        out.append(f"| {k} {a.shape} | {fmt(a)} |")
    out.append(FORWARD_INTRO)
    out.append("| step | formula | value | function |\n|---|---|---|---|")
    for name, formula, func in FORWARD_STEPS:
        out.append(f"| {name} | `{formula}` | {fmt(v[name])} | `{func}` |")
    out.append(BACKWARD_INTRO)
    out.append("| gradient | formula | local derivative | value | finite differences |\n"
               "|---|---|---|---|---|")
    for name, formula, local, value in rows:
        local_text = local if isinstance(local, str) else fmt(local)
        out.append(f"| {name} | `{formula}` | {local_text} | {fmt(value)} | "
                   f"{fmt(numerical[name])} |")
    out.append(PARAMS_INTRO.format(tol=sci(TOLERANCE_FLOAT64),
                                   same=sci(AGREE_WITH_LOSS_AND_GRADS)))
    out.append("| parameter | formula | gradient | finite differences |\n|---|---|---|---|")
    for k in params:
        out.append(f"| {k} | `{PARAM_FORMULAS[k]}` | {fmt(grads[k])} | {fmt(param_fd[k])} |")
    return "\n".join(out) + "\n"


HEADER = """# One example through a VAE, every number printed

<!-- generated by docs/make_walkthrough.py; tests/test_walkthrough.py fails when it is stale -->

A VAE small enough to print whole: D = {D} pixels, an encoder and a decoder with one hidden
layer of H = {H} tanh units, J = {J} latent dimensions, a Bernoulli decoder, one example
(B = 1), beta = 1, float64, parameters and noise from seed {seed}
(`python docs/make_walkthrough.py` writes this page). Each forward value is computed by the
function named beside it, each gradient by the package's backward functions in the order
`vae_numpy.model.loss_and_grads` runs them, and beside every gradient are the central finite
differences (step 1e-5) of the loss with respect to the same quantity. Every pair agrees to a
relative {tol} (`vae_numpy.gradcheck.rel_error`); the script refuses to write the page
otherwise. The formulas and their derivations: [math.md](math.md); the same graph drawn:
[figures/computation_graph.png](figures/computation_graph.png).

Matrices are printed row by row, rows separated by `;`; `W` has shape (in, out).
"""

FORWARD_INTRO = """
## Forward

`a1` and `a2` are the pre-activations of the encoder's and the decoder's hidden layers, `h1`
and `h2` their tanh outputs.
"""

FORWARD_STEPS = [
    ("a1", "x @ W_enc + b_enc", "layers.dense_forward"),
    ("h1", "tanh(a1)", "layers.tanh_forward"),
    ("mu", "h1 @ W_mu + b_mu", "layers.dense_forward"),
    ("logvar", "h1 @ W_logvar + b_logvar", "layers.dense_forward"),
    ("std", "exp(logvar / 2)", "gaussian.std_from_logvar"),
    ("z", "mu + std * eps", "gaussian.reparameterize_forward"),
    ("a2", "z @ W_dec + b_dec", "layers.dense_forward"),
    ("h2", "tanh(a2)", "layers.tanh_forward"),
    ("logits", "h2 @ W_out + b_out", "layers.dense_forward"),
    ("rec", "sum_d softplus(l_d) - x_d * l_d", "likelihoods.bernoulli_nll"),
    ("kl", "0.5 * sum_j (mu_j**2 + exp(logvar_j) - 1 - logvar_j)", "gaussian.kl_standard_normal"),
    ("loss", "rec + kl", "model.loss_and_grads"),
]

BACKWARD_INTRO = """
## Backward

Each gradient is the upstream gradient times the local derivative of one step (a row of the
forward table read backwards). At mu and logvar the two paths meet: the reconstruction reaches
them through z, the KL directly, and the encoder receives their sum. The finite differences of
`d rec / d ...` and `d kl / d ...` differentiate rec and kl alone; all others the loss.
"""

PARAMS_INTRO = """
## The parameters' gradients

From the gradients above: `dW = (layer input).T @ (gradient at the layer's output)`,
`db = sum over the batch` of it (`layers.dense_backward`). Finite differences of
`loss_and_grads`' loss in each parameter agree to a relative {tol}, and the walk-through's
gradients equal `loss_and_grads`' to {same}.
"""

PARAM_FORMULAS = {
    "enc.0.W": "x.T @ d a1", "enc.0.b": "d a1",
    "enc.mu.W": "h1.T @ d mu", "enc.mu.b": "d mu",
    "enc.logvar.W": "h1.T @ d logvar", "enc.logvar.b": "d logvar",
    "dec.0.W": "z.T @ d a2", "dec.0.b": "d a2",
    "dec.out.W": "h2.T @ d logits", "dec.out.b": "d logits",
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the committed page is stale")
    p.add_argument("--out", default=PAGE, help="where to write the page")
    args = p.parse_args(argv)
    text = page()
    if args.check:
        with open(args.out, encoding="utf-8") as f:
            stale = f.read() != text
        print(f"{args.out}: {'stale: run python docs/make_walkthrough.py' if stale else 'current'}")
        return 1 if stale else 0
    with atomic_write(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
