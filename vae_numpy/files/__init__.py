r"""Files and errors: atomic writes, checkpoints, the error types, and the argument checks.

    atomic      every file the project writes goes through atomic_write (temp file, replace)
    errors      FileFormatError, MissingArrayError, NonFiniteError (ValueErrors naming the file)
    checks      the checks of numbers and arrays that model, train and evaluate share
    checkpoint  save_checkpoint / load_checkpoint: params, optimizer state, RNG, history
    publish     a run's line in a Markdown table, and copies of what publishing replaces

Only the leaf modules (atomic, errors) are imported here: model imports files.checks, and
checkpoint imports model, so importing checkpoint here would make a cycle. Import it as
``vae_numpy.files.checkpoint`` (or use ``vae_numpy.load_checkpoint``).
"""
from .atomic import atomic_write
from .errors import FileFormatError, MissingArrayError, NonFiniteError

__all__ = ["atomic_write", "FileFormatError", "MissingArrayError", "NonFiniteError"]
