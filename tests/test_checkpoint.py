"""Checkpoints: round trip, bit-identical resume, atomic writes, clear errors."""
import json
import os

import numpy as np
import pytest

from vae_numpy import VAEConfig, init_params
from vae_numpy.files.atomic import atomic_write
from vae_numpy.files.checkpoint import load_checkpoint, save_checkpoint
from vae_numpy.data import synthetic_dataset
from vae_numpy.optim import SGD, Adam
from vae_numpy.train import TIME_FIELDS, train

CFG = VAEConfig(input_dim=784, latent_dim=3, encoder_hidden=(24,), decoder_hidden=(24,))


@pytest.fixture(scope="module")
def digits():
    return synthetic_dataset(n_train=160, n_test=40, seed=5)


def without_times(history):
    return [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in history]


def trained(digits, optimizer, epochs=1, seed=0):
    rng = np.random.default_rng(seed)
    params = init_params(CFG, rng)
    state = optimizer.init(params)
    history = train(params, CFG, digits.x_train, optimizer=optimizer, opt_state=state, rng=rng,
                    epochs=epochs, batch_size=32, progress=False, binarize="dynamic")
    return params, state, rng, history


@pytest.mark.parametrize("optimizer", [Adam(lr=2e-3, beta2=0.99, eps=1e-7),
                                       SGD(lr=0.05, momentum=0.8, nesterov=True)])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, digits, optimizer, compress):
    params, state, rng, history = trained(digits, optimizer)
    path = save_checkpoint(tmp_path / "c.npz", params, CFG, state, rng, history,
                           extra={"note": "hello", "n": [1, 2]}, optimizer=optimizer,
                           compress=compress)
    ckpt = load_checkpoint(path)
    assert ckpt.config == CFG
    assert ckpt.params.keys() == params.keys()
    assert all(np.array_equal(ckpt.params[k], params[k]) for k in params)
    assert all(ckpt.params[k].dtype == params[k].dtype for k in params)
    assert ckpt.optimizer_state.keys() == state.keys()
    assert all(np.array_equal(ckpt.optimizer_state[k], state[k]) for k in state)
    assert type(ckpt.optimizer) is type(optimizer) and vars(ckpt.optimizer) == vars(optimizer)
    assert ckpt.history == history
    assert ckpt.extra == {"note": "hello", "n": [1, 2]}
    # The restored generator continues the saved stream exactly.
    assert np.array_equal(ckpt.rng.standard_normal(5), rng.standard_normal(5))


def test_minimal_checkpoint_has_no_optimizer_or_rng(tmp_path):
    params = init_params(CFG, np.random.default_rng(0))
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "p.npz", params, CFG))
    assert ckpt.optimizer_state is None and ckpt.optimizer is None and ckpt.rng is None
    assert ckpt.history == [] and ckpt.extra == {}
    assert ckpt.version == __import__("vae_numpy").__version__


def test_file_is_plain_numpy(tmp_path):
    params = init_params(CFG, np.random.default_rng(0))
    path = save_checkpoint(tmp_path / "p.npz", params, CFG, rng=np.random.default_rng(1))
    with np.load(path, allow_pickle=False) as z:
        assert np.array_equal(z["param/enc.0.W"], params["enc.0.W"])
        assert json.loads(str(z["config_json"]))["latent_dim"] == 3
        assert json.loads(str(z["rng_json"]))["bit_generator"] == "PCG64"


def test_resume_is_bit_identical(tmp_path, digits):
    """2 epochs straight == 1 epoch, save, load, 1 epoch: same params and history, bit for bit.

    Uses dynamic binarization, a held-out set and a KL warm-up that spans the break (the
    warm-up's step counter must continue from the saved history)."""
    def run(rng, params, state, history, epochs):
        return train(params, CFG, digits.x_train, x_test=digits.x_test, optimizer=Adam(1e-3),
                     opt_state=state, rng=rng, history=history, epochs=epochs, batch_size=32,
                     binarize="dynamic", kl_warmup_epochs=1.5, progress=False)

    rng = np.random.default_rng(42)
    straight = init_params(CFG, rng)
    straight_history = run(rng, straight, Adam().init(straight), None, 2)

    rng = np.random.default_rng(42)
    params = init_params(CFG, rng)
    state = Adam().init(params)
    history = run(rng, params, state, None, 1)
    save_checkpoint(tmp_path / "c.npz", params, CFG, state, rng, history, optimizer=Adam(1e-3))
    del params, state, rng, history
    ckpt = load_checkpoint(tmp_path / "c.npz")
    resumed_history = run(ckpt.rng, ckpt.params, ckpt.optimizer_state, ckpt.history, 1)

    assert all(np.array_equal(ckpt.params[k], straight[k]) for k in straight)
    assert without_times(resumed_history) == without_times(straight_history)
    assert [r["epoch"] for r in resumed_history] == [1, 2]
    assert 0 < straight_history[0]["beta"] < straight_history[1]["beta"] == 1.0


def test_resume_without_the_rng_state_differs(tmp_path, digits):
    """The check above can fail: a fresh generator in place of the saved one changes the run."""
    params, state, rng, history = trained(digits, Adam())
    save_checkpoint(tmp_path / "c.npz", params, CFG, state, rng, history)
    a = load_checkpoint(tmp_path / "c.npz")
    b = load_checkpoint(tmp_path / "c.npz")
    for ckpt, gen in ((a, a.rng), (b, np.random.default_rng(0))):
        train(ckpt.params, CFG, digits.x_train, optimizer=Adam(), opt_state=ckpt.optimizer_state,
              rng=gen, history=ckpt.history, epochs=1, batch_size=32, progress=False)
    assert not np.array_equal(a.params["enc.mu.W"], b.params["enc.mu.W"])


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    old = init_params(CFG, np.random.default_rng(0))
    save_checkpoint(path, old, CFG)
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(np, "savez", crash)
    new = init_params(CFG, np.random.default_rng(1))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, new, CFG)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert np.array_equal(load_checkpoint(path).params["enc.0.W"], old["enc.0.W"])
    assert os.listdir(tmp_path) == ["c.npz"]   # no temporary file left behind


def test_atomic_write_gives_normal_permissions(tmp_path):
    with atomic_write(tmp_path / "f.txt", "w") as f:
        f.write("x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~mask
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with atomic_write(tmp_path / "missing" / "f.txt"):
            pass


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.npz")


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a vae_numpy checkpoint"):
        load_checkpoint(text)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a vae_numpy checkpoint.*no format"):
        load_checkpoint(other)


def rewrite(path, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[k]
    np.savez(path, **arrays)


def test_config_params_mismatch(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, init_params(CFG, np.random.default_rng(0)), CFG)
    other = VAEConfig(input_dim=784, latent_dim=5, encoder_hidden=(24,), decoder_hidden=(24,))
    rewrite(path, config_json=np.array(other.to_json()))
    with pytest.raises(ValueError, match="do not match the saved config"):
        load_checkpoint(path)


def test_dtype_mismatch_and_newer_format(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, init_params(CFG, np.random.default_rng(0)), CFG)
    f32 = VAEConfig(**{**CFG.to_dict(), "dtype": "float32"})
    rewrite(path, config_json=np.array(f32.to_json()))
    with pytest.raises(ValueError, match="dtype float32 but the params are float64"):
        load_checkpoint(path)
    save_checkpoint(path, init_params(CFG, np.random.default_rng(0)), CFG)
    rewrite(path, format_version=np.array(99))
    with pytest.raises(ValueError, match="newer than"):
        load_checkpoint(path)


def test_save_rejects_bad_inputs(tmp_path):
    params = init_params(CFG, np.random.default_rng(0))
    with pytest.raises(ValueError, match="do not match the config"):
        save_checkpoint(tmp_path / "c.npz", {"enc.0.W": params["enc.0.W"]}, CFG)
    with pytest.raises(TypeError, match="VAEConfig"):
        save_checkpoint(tmp_path / "c.npz", params, CFG.to_dict())
    with pytest.raises(TypeError, match="Generator"):
        save_checkpoint(tmp_path / "c.npz", params, CFG, rng=np.random.RandomState(0))
    assert not (tmp_path / "c.npz").exists()
