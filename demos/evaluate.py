r"""Evaluate a trained VAE: importance-weighted -log p(x), -ELBO, rate/distortion, diagnostics.

The command ``python -m vae_numpy evaluate`` (``vae-numpy evaluate``) run as a script from a
clone; its code, flags and defaults are in vae_numpy/commands/evaluate.py.

    python demos/evaluate.py runs/mnist/checkpoint.npz --data mnist.npz --k 1000 --n 2000 \
        --out-dir runs/mnist_eval
"""
import sys

from vae_numpy.commands.threads import set_thread_default  # imports nothing of numpy


def main(argv=None):
    r"""``vae_numpy.commands.evaluate.main(argv)``, after the thread default is set: one BLAS
    thread unless --threads N or the environment says otherwise, before numpy is imported."""
    set_thread_default(sys.argv[1:] if argv is None else argv)
    from vae_numpy.commands.evaluate import main as command
    return command(argv)


def __getattr__(name):
    r"""The command's other names (QUICK, parse_args, ...), imported when first asked for."""
    from vae_numpy.commands import evaluate as command
    return getattr(command, name)


if __name__ == "__main__":
    main()
