r"""The exceptions vae_numpy's file readers raise for a file whose content is wrong.

The reader contract (checkpoints, fixtures, the candidate file of ``compare_files``, ``.npz``,
``.npy`` and IDX files; written out for users in docs/files.md):

- a problem of the file system (no such file, a directory, no permission) is the ``OSError``
  that opening the file raised (``FileNotFoundError``, ``IsADirectoryError``, ...);
- a problem of the content (not a zip, a truncated array, bad JSON, a NaN parameter, a
  header that claims more bytes than the file holds) is a :class:`FileFormatError`, a
  ``ValueError`` whose message names the file and what is wrong;
- a valid ``.npz`` that lacks an array the caller asked for is a :class:`MissingArrayError`,
  which is a ``FileFormatError`` and also a ``KeyError`` (``load_npz`` documented KeyError
  before this contract existed, so ``except KeyError`` keeps working).

Nothing else escapes a reader: the zip, gzip, zlib, JSON and NumPy-header errors underneath are
translated (the original is kept as ``__cause__``).
"""
from pathlib import Path


class FileFormatError(ValueError):
    r"""The content of ``path`` is not what the reader expects; ``str()`` names the file.

    Attributes
    ----------
    path : pathlib.Path or None
    problem : str, what is wrong (without the file name)
    """

    def __init__(self, path, problem):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)

    def __str__(self):
        # KeyError.__str__ would quote the message; every reader error reads the same way.
        return self.args[0]


class MissingArrayError(FileFormatError, KeyError):
    r"""A valid ``.npz`` without an array the caller needs: a FileFormatError and a KeyError.

    Attributes
    ----------
    name : the array that is missing; ``available`` : the arrays the file has.
    """

    def __init__(self, path, name, available, hint=""):
        self.name, self.available = name, list(available)
        super().__init__(path, f"no array {name!r}; the file has {self.available}{hint}")


class NonFiniteError(ValueError):
    r"""An array that must be finite (a model's parameters, an optimizer's state) holds NaN or
    inf: raised by ``save_checkpoint``, which never writes a diverged model."""
