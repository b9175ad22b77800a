r"""Draw the VAE's computation graph: docs/figures/computation_graph.png.

    python docs/figures/make_graph.py          # rewrite the figure

Boxes are the steps of ``vae_numpy.model.loss_and_grads`` (encoder, the two heads, the
reparameterization, decoder, likelihood, KL, the batch reduction), black arrows the forward
values with their shapes, red dashed arrows the gradients flowing back with the local
derivative each step multiplies by. Everything drawn comes from :data:`NODES`,
:data:`FORWARD` and :data:`BACKWARD`; the figure stores them in its PNG metadata, and
tests/test_graph_figure.py checks that the committed figure was drawn from the current lists,
that every function a box names exists, and that every forward edge that carries a gradient
has its backward edge.
"""
import argparse
import json
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "computation_graph.png")

# name: (x, y, title, formula, forward function, backward function)
NODES = {
    "x": (0.0, 2.2, "x", "data (B, D)", None, None),
    "enc": (4.4, 2.2, "encoder", "h = act(x W + b)", "vae_numpy/model.py::encoder_forward",
            "vae_numpy/model.py::encoder_backward"),
    "mu": (9.0, 3.8, "mu head", "mu = h W_mu + b_mu", "vae_numpy/layers.py::dense_forward",
           "vae_numpy/layers.py::dense_backward"),
    "logvar": (9.0, 0.6, "logvar head", "lv = logvar = h W_lv + b_lv",
               "vae_numpy/layers.py::dense_forward", "vae_numpy/layers.py::dense_backward"),
    "eps": (13.6, 5.6, "eps", "N(0, I), (B, J)", None, None),
    "z": (13.6, 3.8, "reparameterization", "z = mu + exp(lv / 2) * eps",
          "vae_numpy/gaussian.py::reparameterize_forward",
          "vae_numpy/gaussian.py::reparameterize_backward"),
    "dec": (18.2, 3.8, "decoder", "l = act(z W + b) W_out + b_out",
            "vae_numpy/model.py::decoder_forward", "vae_numpy/model.py::decoder_backward"),
    "rec": (22.8, 3.8, "likelihood", "rec = sum_d softplus(l) - x l",
            "vae_numpy/likelihoods.py::bernoulli_nll",
            "vae_numpy/likelihoods.py::bernoulli_nll_backward"),
    "kl": (18.2, 0.6, "KL", "kl = 0.5 sum_j (mu^2 + e^lv - 1 - lv)",
           "vae_numpy/gaussian.py::kl_standard_normal",
           "vae_numpy/gaussian.py::kl_standard_normal_backward"),
    "loss": (27.0, 2.2, "loss", "reduce_b(rec_b + beta kl_b)", "vae_numpy/model.py::reduce_batch",
             "vae_numpy/model.py::reduction_weights"),
}

# (from, to, the forward value on the arrow)
FORWARD = [
    ("x", "enc", "x (B, D)"),
    ("enc", "mu", "h (B, H)"),
    ("enc", "logvar", "h (B, H)"),
    ("mu", "z", "mu (B, J)"),
    ("logvar", "z", "logvar (B, J)"),
    ("eps", "z", "eps"),
    ("z", "dec", "z (B, J)"),
    ("dec", "rec", "logits l (B, D)"),
    ("mu", "kl", "mu"),
    ("logvar", "kl", "logvar"),
    ("rec", "loss", "rec_b (B,)"),
    ("kl", "loss", "kl_b (B,)"),
]

# (from, to, the gradient sent back: upstream times the local derivative, the arc's bend)
BACKWARD = [
    ("loss", "rec", "c_b * rec_weight", 0.3),
    ("loss", "kl", "c_b * beta", 0.3),
    ("rec", "dec", "d rec/d l = sigmoid(l) - x", 0.3),
    ("dec", "z", "dz = (dl W_out.T * act') W.T", 0.3),
    ("z", "mu", "dz * 1", 0.3),
    ("z", "logvar", "dz * 0.5 * std * eps", 0.3),
    ("kl", "mu", "* mu", 0.1),
    ("kl", "logvar", "* 0.5 * expm1(lv)", 0.3),
    ("mu", "enc", "dmu W_mu.T", 0.3),
    ("logvar", "enc", "dlv W_lv.T", 0.3),
]
NO_GRADIENT = {("x", "enc"), ("eps", "z")}   # the data and the noise are inputs, not parameters


def spec():
    r"""Everything the figure is drawn from, as JSON-ready data (stored in the PNG)."""
    return {"nodes": NODES, "forward": FORWARD, "backward": BACKWARD}


def draw(path=OUT, dpi=110):
    r"""Draw the graph into ``path`` (a PNG); returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(22, 7.0))
    ax.set_xlim(-1.6, 28.6)
    ax.set_ylim(-0.4, 6.9)
    ax.axis("off")
    half_w, half_h = 1.3, 0.5
    boxes = {}
    for name, (x, y, title, formula, _, _) in NODES.items():
        boxes[name] = ax.add_patch(FancyBboxPatch(
            (x - half_w, y - half_h), 2 * half_w, 2 * half_h, boxstyle="round,pad=0.05",
            fc="#eef3fb", ec="#33507a"))
        ax.text(x, y + 0.16, title, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x, y - 0.2, formula, ha="center", va="center", fontsize=7.5)

    def arrow(a, b, label, color, style, rad):
        (xa, ya), (xb, yb) = NODES[a][:2], NODES[b][:2]
        ax.add_patch(FancyArrowPatch((xa, ya), (xb, yb), arrowstyle="-|>", mutation_scale=14,
                                     color=color, linestyle=style, lw=1.3,
                                     connectionstyle=f"arc3,rad={rad}",
                                     patchA=boxes[a], patchB=boxes[b]))
        # the label at the middle of the arc (a quadratic Bezier: halfway to its control point)
        mx = (xa + xb) / 2 + 0.5 * rad * (yb - ya)
        my = (ya + yb) / 2 - 0.5 * rad * (xb - xa)
        ax.text(mx, my, label, ha="center", va="center", fontsize=8, color=color,
                bbox=dict(fc="white", ec="none", alpha=0.9, pad=0.6))

    for a, b, label in FORWARD:
        arrow(a, b, label, "black", "-", 0.0)
    for a, b, label, rad in BACKWARD:
        arrow(a, b, label, "#c0392b", "--", rad)
    ax.text(-1.5, 6.65, "forward: the values (black);  backward: the gradients (red, dashed), "
            "each the upstream gradient times the step's local derivative;  "
            "c_b = d loss / d loss_b = 1/B (mean) or 1 (sum)", fontsize=9, va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, metadata={"Description": json.dumps(spec())})
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=OUT)
    p.add_argument("--dpi", type=int, default=110)
    args = p.parse_args(argv)
    print(f"wrote {draw(args.out, args.dpi)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
