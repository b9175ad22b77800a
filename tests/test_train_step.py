"""What train's step runs: loss_and_grads and vae_numpy.iwae's step themselves (with the
decoder's logvar floor and the encoder's logvar check), the step= switch, and the estimator=
plumbing (recorded in the history, refused if changed on resume)."""
import importlib

import numpy as np
import pytest

from vae_numpy import VAEConfig, init_params, loss_and_grads
from vae_numpy.data import minibatches
from vae_numpy.iwae import iwae_loss_and_grads
from vae_numpy.optim import Adam

# The module, not the function vae_numpy.train that the package exports under the same name.
train_module = importlib.import_module("vae_numpy.train")

N, D, J, BATCH, K = 90, 12, 3, 32, 3   # 3 minibatches per epoch, the last one smaller
EPOCHS = 2
# Above most of the random model's raw log-variances at initialization (about -0.5 to 0.5),
# so the floor is active on many pixels from the first step.
LOGVAR_MIN = 0.2
# The encoder's logvar bias that overflows exp in float64: above LOGVAR_MAX = 354.9.
DIVERGED_LOGVAR = 400.0


def floored_config():
    return VAEConfig(input_dim=D, latent_dim=J, encoder_hidden=(10,), decoder_hidden=(9,),
                     activation="tanh", likelihood="gaussian_learned",
                     decoder_logvar_min=LOGVAR_MIN)


def data(seed=4):
    return np.random.default_rng(seed).standard_normal((N, D))   # (N, D), real-valued


def without_times(history):
    return [{k: v for k, v in r.items() if k not in train_module.TIME_FIELDS} for r in history]


def train_run(cfg, x, epochs=EPOCHS, seed=0, **kw):
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    optimizer = Adam(1e-2)
    state = optimizer.init(params)
    history = train_module.train(params, cfg, x, optimizer=optimizer, rng=rng, epochs=epochs,
                                 batch_size=BATCH, opt_state=state, progress=False, **kw)
    return params, state, history


def loop_run(cfg, x, step_fn, noise_shape, epochs=EPOCHS, seed=0):
    """train's loop written out: the draws in train's order, step_fn, then Adam."""
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    optimizer = Adam(1e-2)
    state = optimizer.init(params)
    for _ in range(epochs):
        for idx in minibatches(len(x), BATCH, rng):
            eps = rng.standard_normal(noise_shape(len(idx)), dtype=x.dtype)
            _, grads, _ = step_fn(params, x[idx], eps)
            optimizer.step(params, grads, state)
    return params, state


def assert_same_run(a, b, label):
    (params_a, state_a), (params_b, state_b) = a[:2], b[:2]
    for k in params_a:
        assert np.array_equal(params_a[k], params_b[k]), f"{label}: param {k} differs"
    for k in state_a:
        assert np.array_equal(state_a[k], state_b[k]), f"{label}: optimizer state {k} differs"


# --- train runs the readable functions ----------------------------------------------------------

def test_the_vae_objective_trains_with_loss_and_grads_itself_floor_included():
    """train's parameters equal those of a loop calling loss_and_grads, bit for bit, with the
    decoder's logvar floor active (a step that ignored the floor trained to other numbers)."""
    cfg, x = floored_config(), data()
    trained = train_run(cfg, x)
    looped = loop_run(cfg, x, lambda p, xb, eps: loss_and_grads(p, xb, eps, cfg),
                      lambda b: (b, J))
    assert_same_run(trained, looped, "train vs a loop over loss_and_grads")


def test_the_iwae_objective_trains_with_the_iwae_gradient_itself_floor_included():
    cfg, x = floored_config(), data()
    trained = train_run(cfg, x, objective="iwae", k=K)
    looped = loop_run(cfg, x, lambda p, xb, eps: iwae_loss_and_grads(p, xb, eps, cfg),
                      lambda b: (K, b, J))
    assert_same_run(trained, looped, "train vs a loop over iwae_loss_and_grads")


def test_the_floor_enters_the_training_objective():
    """With the floor, each pixel's rec is at least 0.5 * (log(2 pi) + floor), so the epoch's
    training rec is at least D times that; without it the same run reports less. The floor
    here, 2, is above every raw log-variance of the run: the bound, 23.0 nats, is then above
    the unfloored run's rec (about 18 on this standard-normal data)."""
    floor = 2.0
    cfg, x = VAEConfig(**{**floored_config().to_dict(), "decoder_logvar_min": floor}), data()
    bound = D * 0.5 * (np.log(2 * np.pi) + floor)
    floored = train_run(cfg, x)[2]
    unfloored = train_run(VAEConfig(**{**cfg.to_dict(), "decoder_logvar_min": None}), x)[2]
    assert all(r["train_rec"] >= bound for r in floored), [r["train_rec"] for r in floored]
    assert all(r["train_rec"] < bound - 1 for r in unfloored), [r["train_rec"] for r in unfloored]


@pytest.mark.parametrize("objective,k", [("vae", 1), ("iwae", K)])
def test_every_step_checks_the_encoders_logvar(objective, k):
    cfg, x = floored_config(), data()
    rng = np.random.default_rng(0)
    params = init_params(cfg, rng)
    params["enc.logvar.b"][:] = DIVERGED_LOGVAR
    with pytest.raises(FloatingPointError, match="the encoder's logvar is 400"):
        train_module.train(params, cfg, x, optimizer=Adam(1e-2), rng=rng, epochs=1,
                           batch_size=BATCH, progress=False, objective=objective, k=k)


# --- the step= switch ---------------------------------------------------------------------------

@pytest.mark.parametrize("objective,k", [("vae", 1), ("iwae", K)])
def test_readable_and_default_steps_train_bit_identically(objective, k):
    """float64, the logvar floor set: parameters, optimizer state and the history (but its
    wall-clock fields) agree bit for bit."""
    cfg, x = floored_config(), data()
    kw = dict(objective=objective, k=k, x_test=data(seed=5)[:20])
    if objective == "vae":
        kw.update(kl_warmup_epochs=1, free_bits=0.05, clip_norm=30.0)
    readable = train_run(cfg, x, step="readable", **kw)
    default = train_run(cfg, x, step="default", **kw)
    assert_same_run(readable, default, f"{objective}: readable vs default")
    assert without_times(readable[2]) == without_times(default[2])
    assert len(readable[2]) == EPOCHS


@pytest.mark.parametrize("step", ["fast", "", None, "READABLE"])
def test_an_unknown_step_is_a_clear_error(step):
    cfg, x = floored_config(), data()
    with pytest.raises(ValueError, match=r"step must be one of \('default', 'readable'\)"):
        train_run(cfg, x, step=step)


# --- estimator= -----------------------------------------------------------------------------------

def test_the_vae_objective_takes_no_estimator():
    cfg, x = floored_config(), data()
    for estimator in ("iwae", "stl"):
        with pytest.raises(ValueError, match="needs objective='iwae'.*no sticking-the-landing"):
            train_run(cfg, x, estimator=estimator)


def test_an_unknown_estimator_is_a_clear_error():
    cfg, x = floored_config(), data()
    with pytest.raises(ValueError, match=r"estimator must be one of \('iwae', 'stl', 'dreg'\)"):
        train_run(cfg, x, objective="iwae", k=K, estimator="reinforce")


def test_the_estimator_is_recorded_and_a_resume_must_keep_it():
    cfg, x = floored_config(), data()
    params, state, history = train_run(cfg, x, epochs=1, objective="iwae", k=K)
    assert history[-1]["estimator"] == "iwae"
    before = {k: v.copy() for k, v in params.items()}
    for changed in ("stl", "dreg"):
        with pytest.raises(ValueError, match=f"estimator='{changed}', but the run in history "
                                             "trained with estimator='iwae'"):
            train_module.train(params, cfg, x, optimizer=Adam(1e-2), opt_state=state,
                               rng=np.random.default_rng(1), history=history, epochs=1,
                               batch_size=BATCH, progress=False, objective="iwae", k=K,
                               estimator=changed)
    assert all(np.array_equal(before[k], params[k]) for k in params) and len(history) == 1
    # a record written before estimators existed counts as "iwae"
    del history[-1]["estimator"]
    with pytest.raises(ValueError, match="trained with estimator='iwae'"):
        train_module.train(params, cfg, x, optimizer=Adam(1e-2), opt_state=state,
                           rng=np.random.default_rng(1), history=history, epochs=1,
                           batch_size=BATCH, progress=False, objective="iwae", k=K,
                           estimator="dreg")
    train_module.train(params, cfg, x, optimizer=Adam(1e-2), opt_state=state,
                       rng=np.random.default_rng(1), history=history, epochs=1,
                       batch_size=BATCH, progress=False, objective="iwae", k=K)
    assert [r["estimator"] for r in history[1:]] == ["iwae"]


@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_the_iwae_objective_trains_with_the_chosen_estimator(estimator):
    cfg, x = floored_config(), data()
    trained = train_run(cfg, x, objective="iwae", k=K, estimator=estimator)
    assert [r["estimator"] for r in trained[2]] == [estimator] * EPOCHS
    looped = loop_run(cfg, x, lambda p, xb, eps: iwae_loss_and_grads(p, xb, eps, cfg,
                                                                     estimator=estimator),
                      lambda b: (K, b, J))
    assert_same_run(trained, looped, f"train vs a loop over iwae_loss_and_grads ({estimator})")
