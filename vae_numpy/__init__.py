r"""vae_numpy: a variational autoencoder written from scratch in NumPy.

loss = -ELBO = rec + beta * KL, with rec = -log p(x|z) for one z ~ q(z|x) per x.
See README.md for the conventions (logvar, reductions, weight layout, noise as an argument).
"""
__version__ = "0.1.0"
