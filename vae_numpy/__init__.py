r"""vae_numpy: a variational autoencoder written from scratch in NumPy.

loss = -ELBO = rec + beta * KL, with rec = -log p(x|z) for one z ~ q(z|x) per x.
See README.md for the conventions (logvar, reductions, weight layout, noise as an argument).
"""
__version__ = "0.1.0"

from .model import (VAEConfig, decode, decoder_outputs, encode, init_params, loss_and_grads,
                    loss_terms, param_shapes, reconstruct, sample)

__all__ = ["VAEConfig", "init_params", "loss_and_grads", "loss_terms", "param_shapes",
           "encode", "decode", "decoder_outputs", "reconstruct", "sample"]
