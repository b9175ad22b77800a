r"""The package version, in a module of its own: it imports nothing, so any module can read it
(checkpoint and crosscheck write it into files) without importing the package root, and
setup.cfg's ``version = attr: vae_numpy._version.__version__`` reads it without numpy."""
__version__ = "0.2.0"
