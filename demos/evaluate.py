r"""Evaluate a trained VAE: importance-weighted -log p(x), -ELBO, rate/distortion, diagnostics.

The command ``python -m vae_numpy evaluate`` (``vae-numpy evaluate``) run as a script from a
clone; its code, flags and defaults are in vae_numpy/commands/evaluate.py.

    python demos/evaluate.py runs/mnist/checkpoint.npz --data mnist.npz --k 1000 --n 2000 \
        --out-dir runs/mnist_eval
"""
from vae_numpy.commands.evaluate import QUICK, main, parse_args  # noqa: F401

if __name__ == "__main__":
    main()
