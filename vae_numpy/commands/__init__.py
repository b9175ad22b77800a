r"""The command line: ``python -m vae_numpy`` (``vae-numpy``) and the scripts in demos/.

    flags      what the commands and scripts share about flags: checks as flag types, the
               --quick idiom, the flags given
    preflight  checks before the work: out-dir, memory, matplotlib, an earlier run, a checkpoint
    record     a run's record: the machine it ran on and the git commit
    run        run_command and CommandError: one line on stderr for an error, Ctrl-C's note
    threads    the thread default (one BLAS thread unless --threads N), set before numpy loads
    progress   the progress line on stderr, also used by train, evaluate and gradcheck
    train      ``vae-numpy train``: train a VAE on MNIST-like images, write metrics and figures
    evaluate   ``vae-numpy evaluate``: -log p(x) by importance sampling and the diagnostics

demos/train_mnist.py and demos/evaluate.py run the same ``main(argv)`` as a script.
"""
