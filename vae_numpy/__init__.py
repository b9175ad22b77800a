r"""vae_numpy: a variational autoencoder written from scratch in NumPy.

loss = rec + beta * KL, with rec = -log p(x|z) for one z ~ q(z|x) per x: at beta = 1 a
one-sample, unbiased estimate of -ELBO. Its expectation, -ELBO, is an upper bound on
-log p(x); one draw is not a bound (it can fall below -log p(x)).
See README.md for the conventions (logvar, reductions, weight layout, noise as an argument).

The names below are imported on first use (PEP 562), not when the package is: ``python -m
vae_numpy`` and the demos must set the BLAS thread count (vae_numpy.commands.threads) before
numpy is first imported, because OpenBLAS reads it then, once.
"""
import importlib
import sys
import types

from ._version import __version__

# where each public name is defined
_EXPORTS = {
    "model": ("VAEConfig", "init_params", "loss_and_grads", "loss_terms", "param_shapes",
              "encode", "decode", "decoder_outputs", "reconstruct", "sample"),
    "iwae": ("iwae_loss_and_grads",),
    "train": ("train", "init_output_bias"),
    "files.checkpoint": ("save_checkpoint", "load_checkpoint", "Checkpoint"),
    "data": ("load_dataset", "synthetic_dataset", "Dataset"),
    "crosscheck": ("make_fixture", "write_fixture", "read_fixture", "compare", "compare_files",
                   "Report"),
    "evaluate": ("evaluate_elbo", "iw_log_likelihood", "elbo", "rate_distortion",
                 "active_units", "mutual_information", "bits_per_dim", "evaluate_model"),
}
_MODULES = ("estimators", "evaluate", "gradcheck", "linear_gaussian", "optim")
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [name for names in _EXPORTS.values() for name in names] + list(_MODULES)


def __getattr__(name):
    r"""A public name on first use; a subpackage or module (``vae_numpy.crosscheck``) too."""
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value  # the next lookup finds it without this function
        return value
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    r"""``vae_numpy.train`` is the function ``train``, as it was when the package imported
    everything at once: importing the submodule vae_numpy.train (which the commands do) makes
    the import system set the package's attribute to the module; this keeps the function."""

    def __setattr__(self, name, value):
        if name in _HOME and isinstance(value, types.ModuleType):
            return  # the module stays in sys.modules["vae_numpy." + name]
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
