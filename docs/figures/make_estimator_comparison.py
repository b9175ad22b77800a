r"""The IWAE k = 5 row trained with the IWAE gradient and with DReG's, epoch by epoch.

    python docs/figures/make_estimator_comparison.py

Reads the two shipped rows' metrics.json (docs/results/burda2016/iwae_k5: the IWAE gradient,
120 minutes; iwae_k5_dreg: the DReG encoder gradient for the same 423,663 steps) and draws
docs/figures/estimator_comparison.png:

    left   the held-out -ELBO on the 400 held-out images after every epoch, both runs;
    right  DReG minus IWAE after every epoch: of the held-out -ELBO, and of the training bound
           -IW_5 (the mean over the epoch's minibatches of the objective each run optimized).

Epoch e is the same number of steps in both runs (596 per epoch), not always the same place in
the schedule: the IWAE run's stages followed its clock, the DReG run's its steps. The PNG keeps
the SHA-256 of the two files it was drawn from (its "Description" metadata), so
tests/test_estimator_figure.py fails when a row is published again and this is not rerun.
"""
import argparse
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROWS = {"IWAE gradient": os.path.join("docs", "results", "burda2016", "iwae_k5", "metrics.json"),
        "DReG gradient": os.path.join("docs", "results", "burda2016", "iwae_k5_dreg",
                                      "metrics.json")}
OUT = os.path.join(ROOT, "docs", "figures", "estimator_comparison.png")
HELD_OUT_YLIM = (92.0, 100.0)   # nats: the last 700 epochs; the first few are far above


def inputs():
    r"""The SHA-256 of each row's metrics.json, by its path relative to the repository."""
    digests = {}
    for path in ROWS.values():
        with open(os.path.join(ROOT, path), "rb") as f:
            digests[path.replace(os.sep, "/")] = hashlib.sha256(f.read()).hexdigest()
    return digests


def curves():
    r"""label -> (epochs, held-out -ELBO, training -IW_5), one entry per epoch."""
    out = {}
    for label, path in ROWS.items():
        with open(os.path.join(ROOT, path)) as f:
            history = json.load(f)["history"]
        out[label] = ([h["epoch"] for h in history], [h["test_neg_elbo"] for h in history],
                      [h["train_objective"] for h in history])
    return out


def draw(path=OUT):
    r"""Draw the figure into ``path`` (a PNG, written atomically); returns the path."""
    from vae_numpy.files.atomic import atomic_write
    from vae_numpy.figures.plotting import DPI, new_figure

    data = curves()
    (epochs, iwae_held, iwae_train), (_, dreg_held, dreg_train) = (data["IWAE gradient"],
                                                                    data["DReG gradient"])
    fig = new_figure((11, 3.8))
    left, right = fig.subplots(1, 2)
    for label, (e, held, _) in data.items():
        left.plot(e, held, lw=0.8, label=label)
    left.set_ylim(*HELD_OUT_YLIM)
    left.set_title("held-out -ELBO (400 images)", fontsize=10)
    for label, dreg, iwae in (("held-out -ELBO", dreg_held, iwae_held),
                              ("training bound -IW_5", dreg_train, iwae_train)):
        difference = [d - i for d, i in zip(dreg, iwae)]
        right.plot(epochs[:len(difference)], difference, lw=0.8, label=label)
    right.axhline(0.0, color="black", lw=0.6)
    right.set_title("DReG minus IWAE (below 0: DReG better)", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("epoch (596 steps each, batch 100)")
        ax.set_ylabel("nats per image")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Burda et al. IWAE k = 5, one run per gradient estimator, the same 423,663 steps",
                 fontsize=10)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=DPI,
                    metadata={"Description": json.dumps({"inputs": inputs()})})
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    print(f"wrote {draw(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
