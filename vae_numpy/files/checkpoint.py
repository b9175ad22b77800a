r"""Checkpoints: params, optimizer state, RNG state, config and history in one ``.npz``.

Layout of the file (every entry a plain array, readable with ``numpy.load(path)`` and no
pickle):

    param/<name>        the parameters, e.g. param/enc.0.W of shape (in, out)
    opt/<key>           the optimizer state, e.g. opt/step, opt/m/enc.0.W, opt/v/enc.0.W
    format              "vae_numpy.checkpoint" (what makes the file a checkpoint)
    format_version      1
    vae_numpy_version   the version that wrote it
    config_json         VAEConfig.to_json()
    optimizer_json      {"name": "adam", "hyperparameters": {"lr": ..., ...}} or null
    rng_json            the Generator's bit_generator.state (JSON) or null
    history_json        the list of per-epoch records from vae_numpy.train.train
    extra_json          anything JSON the caller adds (command-line arguments, data source)

A checkpoint is written atomically (:func:`atomic_write`): a crash mid-write leaves the old
file as it was. Saving after an epoch and resuming with :func:`load_checkpoint` continues the
run bit for bit (on the same machine, NumPy and BLAS; another BLAS may round differently):

    ckpt = load_checkpoint("run/checkpoint.npz")
    train(ckpt.params, ckpt.config, x, optimizer=ckpt.optimizer,
          opt_state=ckpt.optimizer_state, rng=ckpt.rng, history=ckpt.history, epochs=...)
"""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from .._version import __version__
from ..data.npfiles import check_finite, json_entry, read_npz
from ..model import VAEConfig, params_dtype
from ..optim import OPTIMIZERS
from .atomic import atomic_write
from .errors import FileFormatError, MissingArrayError, NonFiniteError

FORMAT = "vae_numpy.checkpoint"   # a file-format tag, not the module path: keep it
FORMAT_VERSION = 1


def _json_array(obj):
    return np.array(json.dumps(obj, sort_keys=True))


def _optimizer_description(optimizer):
    if optimizer is None:
        return None
    names = [name for name, cls in OPTIMIZERS.items() if type(optimizer) is cls]
    if not names:
        raise TypeError(f"cannot save an optimizer of type {type(optimizer).__name__}; "
                        f"known: {sorted(OPTIMIZERS)}")
    return {"name": names[0], "hyperparameters": dict(vars(optimizer))}


def _rng_state(rng):
    if rng is None:
        return None
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng.bit_generator.state


def _refuse_non_finite(arrays, what, path):
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            n_bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise NonFiniteError(f"{what}[{name!r}] has {n_bad} NaN or inf values: the model "
                             f"diverged, and a checkpoint of it could not be resumed; not "
                             f"writing {path} (a file already there is left as it was)")


def save_checkpoint(path, params, cfg, optimizer_state=None, rng=None, history=None,
                    extra=None, optimizer=None, compress=False):
    r"""Write params, optimizer state and hyperparameters, RNG state, config and history.

    Parameters
    ----------
    path : file name (``.npz`` recommended; written exactly as given, atomically).
    params : dict name -> array, checked against ``cfg``.
    cfg : VAEConfig
    optimizer_state : the optimizer's state dict (``optimizer.init(params)``), or None.
    rng : numpy.random.Generator whose state is saved (a resumed run continues its stream).
    history : list of per-epoch dicts (JSON-ready), or None.
    extra : dict of JSON-ready values (arguments, data source, ...), or None.
    optimizer : the optimizer object, so :func:`load_checkpoint` can rebuild it with the
        same hyperparameters; or None.
    compress : write the entries deflated (``numpy.savez_compressed``): slower to write, and
        much smaller when the history is long (NumPy stores the JSON text as UTF-32).

    Returns
    -------
    pathlib.Path of the file written.

    Raises
    ------
    vae_numpy.files.errors.NonFiniteError (a ValueError) when a parameter or optimizer-state array
    holds NaN or inf: a diverged model is never written (an existing file at ``path`` stays
    the last good checkpoint).
    """
    if not isinstance(cfg, VAEConfig):
        raise TypeError(f"cfg must be a VAEConfig, got {type(cfg).__name__}")
    params_dtype(params, cfg)
    _refuse_non_finite(params, "params", path)
    _refuse_non_finite(optimizer_state or {}, "optimizer_state", path)
    arrays = {f"param/{k}": np.asarray(v) for k, v in params.items()}
    for k, v in (optimizer_state or {}).items():
        arrays[f"opt/{k}"] = np.asarray(v)
    arrays.update(format=np.array(FORMAT), format_version=np.array(FORMAT_VERSION),
                  vae_numpy_version=np.array(__version__), config_json=np.array(cfg.to_json()),
                  optimizer_json=_json_array(_optimizer_description(optimizer)),
                  rng_json=_json_array(_rng_state(rng)),
                  history_json=_json_array(history if history is not None else []),
                  extra_json=_json_array(extra if extra is not None else {}))
    with atomic_write(path) as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)
    return Path(path)


@dataclasses.dataclass
class Checkpoint:
    r"""What :func:`load_checkpoint` returns.

    Attributes
    ----------
    params : dict name -> array (dtype cfg.dtype).
    config : VAEConfig
    optimizer_state : dict or None (pass as ``opt_state`` to :func:`vae_numpy.train.train`).
    optimizer : the optimizer rebuilt with its saved hyperparameters, or None.
    rng : numpy.random.Generator restored to the saved state, or None.
    history : list of per-epoch dicts.
    extra : dict
    version : the vae_numpy version that wrote the file.
    path : pathlib.Path
    """
    params: dict
    config: VAEConfig
    optimizer_state: dict
    optimizer: object
    rng: np.random.Generator
    history: list
    extra: dict
    version: str
    path: Path


# Bit generators a checkpoint may name (numpy.random's own; never an arbitrary attribute).
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _restore_rng(state, path):
    if state is None:
        return None
    name = state.get("bit_generator")
    if name not in BIT_GENERATORS:
        raise FileFormatError(path, f"the rng state names the bit generator {name!r}; "
                                    f"known: {list(BIT_GENERATORS)}")
    bg = getattr(np.random, name)()
    try:
        bg.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise FileFormatError(path, f"the rng state is not a valid {name} state "
                                    f"({type(err).__name__}: {err})") from err
    return np.random.Generator(bg)


def _finite_number(v):
    try:
        return isinstance(v, (bool, int, float)) and math.isfinite(v)
    except OverflowError:   # an integer beyond float range
        return False


def _restore_optimizer(desc, path):
    if desc is None:
        return None
    name, hyper = desc.get("name"), desc.get("hyperparameters")
    if name not in OPTIMIZERS or not isinstance(hyper, dict):
        raise FileFormatError(path, f"entry 'optimizer_json' must be {{\"name\": one of "
                                    f"{sorted(OPTIMIZERS)}, \"hyperparameters\": {{...}}}}, "
                                    f"found {desc}")
    bad = [k for k, v in hyper.items() if not _finite_number(v)]
    if bad:
        raise FileFormatError(path, f"optimizer hyperparameters {bad} are not finite numbers: "
                                    f"{ {k: hyper[k] for k in bad} }")
    try:
        return OPTIMIZERS[name](**hyper)
    except (TypeError, ValueError) as err:
        raise FileFormatError(path, f"the saved {name} optimizer cannot be rebuilt: {err}") from err


def _check_optimizer_state(state, optimizer, params, path):
    r"""The saved state must be what ``optimizer.init(params)`` makes, up to its values:
    the same entries and shapes and dtypes, finite, and a step count that is an integer >= 0."""
    if state is None:
        return None
    check_finite(state, path, "optimizer state")
    if "step" not in state or state["step"].shape != () or state["step"].dtype.kind not in "iu" \
            or int(state["step"]) < 0:
        raise FileFormatError(path, "the optimizer state needs 'opt/step', a 0-d integer >= 0 "
                                    "(the number of steps taken)")
    if optimizer is None:
        return state
    template = optimizer.init(params)
    missing = sorted(set(template) - set(state))
    unexpected = sorted(set(state) - set(template))
    if missing or unexpected:
        raise FileFormatError(path, f"the optimizer state does not fit the saved "
                                    f"{type(optimizer).__name__} and params: missing "
                                    f"{missing[:4]}, unexpected {unexpected[:4]} (a resumed run "
                                    "would fail); save the state optimizer.init(params) made")
    for key, want in template.items():
        if key != "step" and (state[key].shape != want.shape or state[key].dtype != want.dtype):
            raise FileFormatError(path, f"optimizer state 'opt/{key}' has shape "
                                        f"{state[key].shape} of {state[key].dtype}, expected "
                                        f"{want.shape} of {want.dtype}")
    return state


def _read_arrays(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: the file does not exist "
                                "(demos write it as <out-dir>/checkpoint.npz)")
    try:
        return read_npz(path)
    except MissingArrayError:
        raise
    except FileFormatError as err:
        raise FileFormatError(path, f"is not a vae_numpy checkpoint: {err.problem}") from err


def _check_header(z, path):
    r"""The entries that make a file a checkpoint: format, format_version, vae_numpy_version."""
    fmt = z.get("format")
    if fmt is None or fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise FileFormatError(path, f"is not a vae_numpy checkpoint: it has no format="
                                    f"{FORMAT!r} entry (entries: {sorted(z)[:8]}...); write one "
                                    "with save_checkpoint")
    version = z.get("format_version")
    if version is None or version.shape != () or version.dtype.kind not in "iu" \
            or int(version) < 1:
        raise FileFormatError(path, "entry 'format_version' must be a 0-d integer >= 1")
    if int(version) > FORMAT_VERSION:
        raise FileFormatError(path, f"has checkpoint format {int(version)}, newer than this "
                                    f"vae_numpy reads ({FORMAT_VERSION}); upgrade vae_numpy")
    written_by = z.get("vae_numpy_version")
    if written_by is None or written_by.shape != () or written_by.dtype.kind != "U":
        raise FileFormatError(path, "entry 'vae_numpy_version' must be a 0-d string")
    return str(written_by)


def _config(z, path):
    d = json_entry(z, "config_json", path, dict)
    try:
        return VAEConfig.from_dict(d)
    except (TypeError, ValueError) as err:
        raise FileFormatError(path, f"entry 'config_json' is not a valid VAEConfig: {err}") from err


def _params(z, cfg, path):
    params = {k[len("param/"):]: v for k, v in z.items() if k.startswith("param/")}
    try:
        dtype = params_dtype(params, cfg)
    except ValueError as err:
        raise FileFormatError(path, f"the saved params do not match the saved config: "
                                    f"{err}") from None
    if dtype.name != cfg.dtype:
        raise FileFormatError(path, f"the config says dtype {cfg.dtype} but the params are "
                                    f"{dtype.name}")
    check_finite(params, path, "param")
    return params


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_history(history, path):
    r"""What a resumed run reads from the history: one object per epoch, in order, each with
    ``epoch`` (1, 2, ...) and ``steps`` (an integer >= 0 that never decreases), and every
    number in it finite."""
    steps = 0
    for i, record in enumerate(history):
        where = f"entry 'history_json', record {i}"
        if not isinstance(record, dict):
            raise FileFormatError(path, f"{where} is {type(record).__name__}: the history "
                                        "must be a list of per-epoch objects")
        if record.get("epoch") != i + 1 or not _is_int(record["epoch"]):
            raise FileFormatError(path, f"{where} has epoch {record.get('epoch')!r}; the records "
                                        f"count the epochs 1, 2, ... (expected {i + 1})")
        if not _is_int(record.get("steps")) or record["steps"] < steps:
            raise FileFormatError(path, f"{where} has steps {record.get('steps')!r}; expected "
                                        f"the optimizer steps so far, an integer >= {steps}")
        steps = record["steps"]
        bad = {k: v for k, v in record.items() if isinstance(v, (int, float))
               and not isinstance(v, bool) and not _finite_number(v)}
        if bad:
            raise FileFormatError(path, f"{where} holds numbers that are not finite: {bad}")
    return history


def _check_extra(extra, path):
    r"""The entries of ``extra`` the commands read: ``args`` (their flags) an object and
    ``command`` a list of strings, when present; anything else is the caller's."""
    if "args" in extra and not isinstance(extra["args"], dict):
        raise FileFormatError(path, f"entry 'extra_json' has args {extra['args']!r}; the "
                                    "recorded flags of a run are an object {name: value}")
    command = extra.get("command", [])
    if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
        raise FileFormatError(path, f"entry 'extra_json' has command {command!r}; the command "
                                    "that wrote the file is a list of strings")
    return extra


def load_checkpoint(path):
    r"""Read a file written by :func:`save_checkpoint`; returns a :class:`Checkpoint`.

    Everything is validated before it is returned, so a checkpoint that loads also resumes:
    the format entries, each JSON entry (config, optimizer, rng, history, extra: see
    ``_check_history`` and ``_check_extra`` for what a resume reads of the last two), the params
    against the config (names, shapes, dtype) and finite, the optimizer state against the
    optimizer (the entries ``optimizer.init(params)`` makes, same shapes and dtypes, finite).

    Raises
    ------
    FileNotFoundError (an OSError) for a missing file;
    :class:`vae_numpy.files.errors.FileFormatError` (a ValueError naming the file and the
    problem) for everything about the content: not an .npz, not a checkpoint, a newer format,
    bad JSON, params that do not fit the config, NaN or inf values, a broken optimizer or rng
    state, a history or extra a resume could not use (see docs/files.md for the reader contract).
    """
    z = _read_arrays(path)
    path = Path(path)
    version = _check_header(z, path)
    cfg = _config(z, path)
    params = _params(z, cfg, path)
    optimizer = _restore_optimizer(json_entry(z, "optimizer_json", path, (dict, type(None))),
                                   path)
    opt_state = {k[len("opt/"):]: v for k, v in z.items() if k.startswith("opt/")} or None
    history = _check_history(json_entry(z, "history_json", path, list), path)
    extra = _check_extra(json_entry(z, "extra_json", path, dict), path)
    return Checkpoint(params=params, config=cfg,
                      optimizer_state=_check_optimizer_state(opt_state, optimizer, params, path),
                      optimizer=optimizer,
                      rng=_restore_rng(json_entry(z, "rng_json", path, (dict, type(None))), path),
                      history=history, extra=extra, version=version, path=path)
