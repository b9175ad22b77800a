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
import zipfile
from pathlib import Path

import numpy as np

from ._version import __version__
from .atomic import atomic_write
from .model import VAEConfig, params_dtype
from .optim import OPTIMIZERS

FORMAT = "vae_numpy.checkpoint"
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


def save_checkpoint(path, params, cfg, optimizer_state=None, rng=None, history=None,
                    extra=None, optimizer=None):
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

    Returns
    -------
    pathlib.Path of the file written.
    """
    if not isinstance(cfg, VAEConfig):
        raise TypeError(f"cfg must be a VAEConfig, got {type(cfg).__name__}")
    params_dtype(params, cfg)
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
        np.savez(f, **arrays)
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


def _restore_rng(state):
    if state is None:
        return None
    bit_generator = getattr(np.random, state["bit_generator"], None)
    if bit_generator is None:
        raise ValueError(f"the checkpoint's rng uses the unknown bit generator "
                         f"{state['bit_generator']!r}")
    bg = bit_generator()
    bg.state = state
    return np.random.Generator(bg)


def _restore_optimizer(desc):
    if desc is None:
        return None
    return OPTIMIZERS[desc["name"]](**desc["hyperparameters"])


def _read_npz(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: the file does not exist "
                                "(demos write it as <out-dir>/checkpoint.npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a vae_numpy checkpoint: numpy cannot read it as an "
                         f".npz ({err})") from err


def load_checkpoint(path):
    r"""Read a file written by :func:`save_checkpoint`; returns a :class:`Checkpoint`.

    Raises FileNotFoundError for a missing file, ValueError for a file that is not a
    vae_numpy checkpoint (or a newer format), and ValueError when the saved params do not
    match the saved config (names, shapes or dtype).
    """
    z = _read_npz(path)
    if "format" not in z or str(z["format"]) != FORMAT:
        raise ValueError(f"{path} is not a vae_numpy checkpoint: it has no format={FORMAT!r} "
                         f"entry (entries: {sorted(z)[:8]}...); write one with save_checkpoint")
    if int(z["format_version"]) > FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {int(z['format_version'])}, newer than "
                         f"this vae_numpy reads ({FORMAT_VERSION}); upgrade vae_numpy")
    cfg = VAEConfig.from_dict(json.loads(str(z["config_json"])))
    params = {k[len("param/"):]: v for k, v in z.items() if k.startswith("param/")}
    try:
        dtype = params_dtype(params, cfg)
    except ValueError as err:
        raise ValueError(f"{path}: the saved params do not match the saved config: {err}") from None
    if dtype.name != cfg.dtype:
        raise ValueError(f"{path}: the config says dtype {cfg.dtype} but the params are "
                         f"{dtype.name}")
    opt_state = {k[len("opt/"):]: v for k, v in z.items() if k.startswith("opt/")} or None
    return Checkpoint(params=params, config=cfg, optimizer_state=opt_state,
                      optimizer=_restore_optimizer(json.loads(str(z["optimizer_json"]))),
                      rng=_restore_rng(json.loads(str(z["rng_json"]))),
                      history=json.loads(str(z["history_json"])),
                      extra=json.loads(str(z["extra_json"])),
                      version=str(z["vae_numpy_version"]), path=Path(path))
