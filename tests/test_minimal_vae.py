"""demos/minimal_vae.py, the one-page VAE, is the package's VAE: same loss, same gradients,
same Adam, without importing anything of vae_numpy."""
import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import vae_numpy
from vae_numpy.gradcheck import rel_error
from vae_numpy.optim import Adam

DEMO = Path(__file__).resolve().parents[1] / "demos" / "minimal_vae.py"
D, H, J, B = 30, 16, 4, 8
CFG = vae_numpy.VAEConfig(input_dim=D, latent_dim=J, encoder_hidden=(H,), decoder_hidden=(H,),
                          activation="relu", likelihood="bernoulli", beta=1.0)
# The two sides evaluate the same float64 formulas in equivalent forms (logaddexp against
# max + log1p for softplus, exp(-softplus(-l)) against scipy's expit, exp(logvar) - 1 against
# expm1): each entry differs by a few units of round-off (1e-16), and the sums over at most
# D = 30 terms add a factor of ~10 (measured: at most 7e-16 over 50 seeds, also at 784-400-20).
# 1e-12 leaves a wide margin and still fails a gradient off by 1e-9 relative (tested below).
LOSS_GRAD_RTOL = 1e-12
# Ten Adam steps divide by sqrt(v_hat) + eps, which amplifies the 1e-16 gradient differences
# where an entry of v is tiny (measured: at most 6e-14 over 50 seeds); 1e-10 allows that
# growth and still fails a wrong bias correction or beta (an error of order lr = 1e-3 against
# parameters of O(0.3)).
ADAM_RTOL = 1e-10
MAX_LINES = 200  # "about 150 lines": a reader sees the whole VAE on one page
ALLOWED_IMPORTS = {"argparse", "sys", "numpy"}


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("minimal_vae", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines things only: nothing runs at import
    return module


def batch(rng):
    """A [0, 1] minibatch (B, D) and its noise (B, J), float64."""
    return rng.uniform(size=(B, D)), rng.standard_normal((B, J))


def test_init_is_the_packages_init_bit_for_bit(demo):
    mine = demo.init(np.random.default_rng(3), D, H, J)
    theirs = vae_numpy.init_params(CFG, np.random.default_rng(3))
    assert list(mine) == list(theirs) == list(vae_numpy.model.param_shapes(CFG))
    for k in theirs:
        assert mine[k].dtype == theirs[k].dtype == np.float64, k
        np.testing.assert_array_equal(mine[k], theirs[k], err_msg=k)


def test_loss_and_grads_equal_the_packages(demo, rng):
    params = vae_numpy.init_params(CFG, rng)
    x, eps = batch(rng)
    loss, grads, terms = demo.loss_and_grads(params, x, eps)
    ref_loss, ref_grads, ref_terms = vae_numpy.loss_and_grads(params, x, eps, CFG,
                                                              reduction="mean")
    assert rel_error(loss, ref_loss) < LOSS_GRAD_RTOL, (loss, ref_loss)
    for name in ("rec", "kl"):
        assert rel_error(terms[name], ref_terms[name]) < LOSS_GRAD_RTOL, name
    assert list(grads) == list(ref_grads)
    for k in ref_grads:
        assert grads[k].shape == ref_grads[k].shape, k
        err = rel_error(grads[k], ref_grads[k])
        assert err < LOSS_GRAD_RTOL, f"grad of {k}: rel err {err:.1e} > {LOSS_GRAD_RTOL}"


def test_the_comparison_fails_on_a_slightly_wrong_gradient(demo, rng):
    """The tolerance has teeth: a 1e-9 relative change of one gradient is caught."""
    params = vae_numpy.init_params(CFG, rng)
    x, eps = batch(rng)
    grads = demo.loss_and_grads(params, x, eps)[1]
    ref = vae_numpy.loss_and_grads(params, x, eps, CFG)[1]
    assert rel_error(grads["enc.logvar.W"] * (1 + 1e-9), ref["enc.logvar.W"]) > LOSS_GRAD_RTOL


def test_ten_adam_steps_equal_the_packages_adam(demo, rng):
    start = vae_numpy.init_params(CFG, rng)
    batches = [batch(rng) for _ in range(10)]
    mine = {k: v.copy() for k, v in start.items()}
    state = demo.adam_init(mine)
    theirs = {k: v.copy() for k, v in start.items()}
    opt = Adam()
    opt_state = opt.init(theirs)
    for x, eps in batches:
        demo.adam_step(mine, demo.loss_and_grads(mine, x, eps)[1], state)
        opt.step(theirs, vae_numpy.loss_and_grads(theirs, x, eps, CFG)[1], opt_state)
    for k in start:
        moved = np.max(np.abs(theirs[k] - start[k]))
        assert moved > 1e-3, f"{k} moved only {moved:.1e}: the comparison would be vacuous"
        err = rel_error(mine[k], theirs[k])
        assert err < ADAM_RTOL, f"{k} after 10 Adam steps: rel err {err:.1e} > {ADAM_RTOL}"


def test_file_imports_nothing_of_the_package_and_fits_on_a_page():
    source = DEMO.read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in the one-page VAE"
            imported.add(node.module.split(".")[0])
    assert "vae_numpy" not in imported
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
    n_lines = len(source.splitlines())
    assert n_lines <= MAX_LINES, f"{n_lines} lines > {MAX_LINES}"


def test_two_epochs_on_the_toy_data_lower_the_negative_elbo(demo, capsys):
    history = demo.main(["--epochs", "2"])
    neg_elbo = history["neg_elbo"]
    assert len(neg_elbo) == 2 and np.all(np.isfinite(neg_elbo))
    assert neg_elbo[1] < neg_elbo[0]
    np.testing.assert_allclose(neg_elbo, np.add(history["rec"], history["kl"]), rtol=1e-15)
    out = capsys.readouterr().out
    assert out.count("-ELBO") == 2


def test_data_flag_reads_keras_layout_and_single_arrays(demo, tmp_path, rng):
    images = (rng.uniform(size=(60, 5, 6)) * 255).astype(np.uint8)
    np.savez(tmp_path / "keras.npz", x_train=images, y_train=np.zeros(60), x_test=images[:5])
    np.savez(tmp_path / "one.npz", images)
    np.save(tmp_path / "one.npy", images / 255.0)
    for name in ("keras.npz", "one.npz", "one.npy"):
        x = demo.load_data(tmp_path / name)
        assert x.shape == (60, 30), name
        np.testing.assert_allclose(x, images.reshape(60, 30) / 255, rtol=1e-6, err_msg=name)
    history = demo.main(["--data", str(tmp_path / "keras.npz"), "--epochs", "1",
                         "--hidden", "8", "--latent", "2", "--batch-size", "20"])
    assert np.isfinite(history["neg_elbo"][0])


def test_data_outside_the_unit_interval_is_a_clear_error(demo, tmp_path):
    np.save(tmp_path / "bad.npy", np.full((4, 3), 2.0))
    with pytest.raises(ValueError, match=r"bad\.npy: pixel values must be uint8 or floats in"):
        demo.load_data(tmp_path / "bad.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"x_train or a single array"):
        demo.load_data(tmp_path / "two.npz")


@pytest.mark.parametrize("argv, names", [
    (["--batch-size", "0"], "--batch-size"), (["--hidden", "0"], "--hidden"),
    (["--latent", "-1"], "--latent"), (["--seed", "-1"], "--seed"),
    (["--epochs", "two"], "--epochs"), (["--data", "missing.npz"], "missing.npz")])
def test_bad_flags_are_one_line_usage_errors(demo, argv, names, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        demo.main(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ": error: " in last and names in last, last
