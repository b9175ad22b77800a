r"""The command line: ``python -m vae_numpy`` (``vae-numpy``) and the scripts in demos/.

    flags     what the commands and scripts share: the --quick idiom
    threads   the thread default (one BLAS thread unless --threads N), set before numpy loads
    progress  the progress line on stderr, also used by train, evaluate and gradcheck
    train     ``vae-numpy train``: train a VAE on MNIST-like images, write metrics and figures
    evaluate  ``vae-numpy evaluate``: -log p(x) by importance sampling and the diagnostics

demos/train_mnist.py and demos/evaluate.py run the same ``main(argv)`` as a script.
"""
