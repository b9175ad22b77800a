r"""Figures: what the demos and commands draw (matplotlib, imported lazily by each function).

    plotting          image grids, reconstructions, samples, loss curves, the latent space
    diagnostic_plots  the evidence figures: KL per dimension, bound gaps, gradient variance

Import them by module path (``vae_numpy.figures.plotting``); ``import vae_numpy`` works without
matplotlib.
"""
