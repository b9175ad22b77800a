r"""vae_numpy: a variational autoencoder written from scratch in NumPy.

loss = rec + beta * KL, with rec = -log p(x|z) for one z ~ q(z|x) per x: at beta = 1 a
one-sample, unbiased estimate of -ELBO. Its expectation, -ELBO, is an upper bound on
-log p(x); one draw is not a bound (it can fall below -log p(x)).
See README.md for the conventions (logvar, reductions, weight layout, noise as an argument).
"""
from ._version import __version__

from .model import (VAEConfig, decode, decoder_outputs, encode, init_params, loss_and_grads,
                    loss_terms, param_shapes, reconstruct, sample)
from .train import init_output_bias, train
from .iwae import iwae_loss_and_grads
from .files.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import Dataset, load_dataset, synthetic_dataset
from .crosscheck import Report, compare, compare_files, make_fixture, read_fixture, write_fixture
from .evaluate import (active_units, bits_per_dim, elbo, evaluate_elbo, evaluate_model,
                       iw_log_likelihood, mutual_information, rate_distortion)
from . import estimators, evaluate, gradcheck, linear_gaussian, optim

__all__ = [
    # the model
    "VAEConfig", "init_params", "loss_and_grads", "loss_terms", "param_shapes",
    "iwae_loss_and_grads",
    "encode", "decode", "decoder_outputs", "reconstruct", "sample",
    # training, checkpoints, data
    "train", "evaluate_elbo", "init_output_bias",
    "save_checkpoint", "load_checkpoint", "Checkpoint",
    "load_dataset", "synthetic_dataset", "Dataset",
    # checking another framework
    "make_fixture", "write_fixture", "read_fixture", "compare", "compare_files", "Report",
    # evaluation
    "iw_log_likelihood", "elbo", "rate_distortion", "active_units", "mutual_information",
    "bits_per_dim", "evaluate_model",
    # modules
    "estimators", "evaluate", "gradcheck", "linear_gaussian", "optim",
]
