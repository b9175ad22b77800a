r"""Train a VAE on MNIST-like images and write the numbers and the figures that explain it.

The command ``python -m vae_numpy train`` (``vae-numpy train``) run as a script from a clone;
its code, flags and defaults are in vae_numpy/commands/train.py.

    python demos/train_mnist.py                       # built-in synthetic digits, under a minute
    python demos/train_mnist.py --quick               # a few seconds (smoke test)
    python demos/train_mnist.py --data mnist.npz --epochs 10 --out-dir runs/mnist
"""
import sys

from vae_numpy.commands.threads import set_thread_default  # imports nothing of numpy


def main(argv=None):
    r"""``vae_numpy.commands.train.main(argv)``, after the thread default is set: one BLAS
    thread unless --threads N or the environment says otherwise, before numpy is imported."""
    set_thread_default(sys.argv[1:] if argv is None else argv)
    from vae_numpy.commands.train import main as command
    return command(argv)


def __getattr__(name):
    r"""The command's other names (QUICK, parse_args, ...), imported when first asked for."""
    from vae_numpy.commands import train as command
    return getattr(command, name)


if __name__ == "__main__":
    main()
