r"""Train a VAE on MNIST-like images and write the numbers and the figures that explain it.

The command ``python -m vae_numpy train`` (``vae-numpy train``) run as a script from a clone;
its code, flags and defaults are in vae_numpy/commands/train.py.

    python demos/train_mnist.py                       # built-in synthetic digits, under a minute
    python demos/train_mnist.py --quick               # a few seconds (smoke test)
    python demos/train_mnist.py --data mnist.npz --epochs 10 --out-dir runs/mnist
"""
from vae_numpy.commands.train import QUICK, main, parse_args  # noqa: F401

if __name__ == "__main__":
    main()
