"""Learning-rate stages and budgets: the formulas, and train following them across a resume."""
import math

import numpy as np
import pytest

from vae_numpy import VAEConfig, init_params
from vae_numpy.files.checkpoint import load_checkpoint, save_checkpoint
from vae_numpy.data import synthetic_dataset
from vae_numpy.optim import Adam
from vae_numpy.schedule import (BURDA_EPOCHS, Budget, StagedSchedule, burda_lr, burda_schedule)
from vae_numpy.train import TIME_FIELDS, train

CFG = VAEConfig(input_dim=784, latent_dim=3, encoder_hidden=(16,), decoder_hidden=(16,),
                activation="tanh")
BATCH = 64   # 256 training images: 4 steps per epoch


@pytest.fixture(scope="module")
def digits():
    return synthetic_dataset(n_train=256, n_test=32, seed=5)


def without_times(history):
    return [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in history]


def test_burda_rates_as_the_paper_and_the_code_state_them():
    # Paper, Sec. 5: 1e-3 * 10**(-i/7). The code: 1e-4 * round(10**(1 - i/7), 1), whose
    # rounded mantissas are 10, 7.2, 5.2, 3.7, 2.7, 1.9, 1.4, 1.0 (10**(6/7) = 7.197, ...).
    for i in range(8):
        assert burda_lr(i, "paper") == pytest.approx(1e-3 / 10 ** (i / 7), rel=1e-14)
    code = [10, 7.2, 5.2, 3.7, 2.7, 1.9, 1.4, 1.0]
    assert [burda_lr(i, "code") for i in range(8)] == pytest.approx([1e-4 * c for c in code])
    assert BURDA_EPOCHS == 3280
    with pytest.raises(ValueError, match="variant"):
        burda_lr(0, "blog")


def test_burda_stages_end_after_3_to_the_i_epochs():
    schedule, budget = burda_schedule(), Budget(BURDA_EPOCHS, "epochs")
    # Stage i covers epochs [ (3**i - 1) / 2, (3**(i+1) - 1) / 2 ): 0, 1-3, 4-12, 13-39, ...
    for i in range(8):
        first, last = (3 ** i - 1) // 2, (3 ** (i + 1) - 1) // 2 - 1
        for epoch in (first, last):
            steps_per_epoch = 10
            f = budget.fraction(epoch * steps_per_epoch + 9, 0.0, steps_per_epoch)
            assert schedule.stage(f) == i, (i, epoch)
    assert schedule.stage(1.0) == schedule.stage(5.0) == 7


def test_time_budget_gives_stage_i_its_share_of_the_clock():
    schedule, budget = burda_schedule(), Budget(3280.0, "seconds")
    assert schedule.stage(budget.fraction(0, 0.999, 1)) == 0
    assert schedule.stage(budget.fraction(0, 1.001, 1)) == 1
    assert schedule.stage(budget.fraction(0, 3280 - 2187 - 1e-3, 1)) == 6
    assert schedule.stage(budget.fraction(0, 3280 - 2187 + 1e-3, 1)) == 7


@pytest.mark.parametrize("kw, match", [
    (dict(lrs=(1e-3,), weights=(1.0, 2.0)), "as many lrs as weights"),
    (dict(lrs=(1e-3, -1.0), weights=(1.0, 2.0)), "finite and > 0"),
    (dict(lrs=(), weights=()), "at least one"),
])
def test_bad_schedules_are_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        StagedSchedule(**kw)


@pytest.mark.parametrize("amount, unit, match", [
    (0, "epochs", "amount"), (math.inf, "seconds", "amount"), (10, "hours", "unit")])
def test_bad_budgets_are_clear_errors(amount, unit, match):
    with pytest.raises(ValueError, match=match):
        Budget(amount, unit)


def test_schedule_and_budget_round_trip_through_dicts():
    s = burda_schedule("code", lr_scale=2.0)
    assert StagedSchedule.from_dict(s.to_dict()) == s
    b = Budget(3600.0, "seconds")
    assert Budget.from_dict(b.to_dict()) == b


def _run(digits, budget, epochs=None, history=None, params=None, state=None, rng=None,
         optimizer=None, **kw):
    rng = rng or np.random.default_rng(0)
    params = params if params is not None else init_params(CFG, rng)
    optimizer = optimizer or Adam(1e-3)
    history = train(params, CFG, digits.x_train, optimizer=optimizer, rng=rng, epochs=epochs,
                    batch_size=BATCH, binarize="dynamic", x_test=digits.x_test[:16],
                    opt_state=state, history=history, budget=budget, progress=False, **kw)
    return params, history


def test_the_schedule_sets_the_rate_of_every_step(digits):
    schedule = StagedSchedule(lrs=(1e-2, 1e-3, 1e-4), weights=(1, 1, 2))
    seen = []

    class Recording(Adam):
        def step(self, params, grads, state):
            seen.append(self.lr)
            super().step(params, grads, state)

    _, history = _run(digits, Budget(4, "epochs"), schedule=schedule, optimizer=Recording())
    # 16 steps: the first 4 at 1e-2, the next 4 at 1e-3, the last 8 at 1e-4.
    assert seen == [1e-2] * 4 + [1e-3] * 4 + [1e-4] * 8
    assert [(r["lr"], r["stage"]) for r in history] == [(1e-2, 0), (1e-3, 1), (1e-4, 2),
                                                        (1e-4, 2)]


def test_a_step_budget_ends_the_run_mid_epoch(digits):
    _, history = _run(digits, Budget(6, "steps"))
    assert [r["steps"] for r in history] == [4, 6]
    assert "examples" not in history[0] and history[1]["examples"] == 2 * BATCH
    _, history = _run(digits, Budget(6, "steps"), epochs=1)    # epochs stops it first
    assert [r["steps"] for r in history] == [4]


def test_a_spent_time_budget_trains_no_more(digits):
    params, history = _run(digits, Budget(1, "epochs"))
    before = {k: v.copy() for k, v in params.items()}
    _, history = _run(digits, Budget(history[-1]["clock_seconds"], "seconds"), params=params,
                      history=history)
    assert len(history) == 1 and all(np.array_equal(params[k], before[k]) for k in params)
    assert history[0]["clock_seconds"] > 0


@pytest.mark.parametrize("objective, k", [("vae", 1), ("iwae", 3)])
def test_resumed_from_a_checkpoint_equals_uninterrupted_bit_for_bit(digits, tmp_path,
                                                                    objective, k):
    schedule, budget = StagedSchedule(lrs=(3e-3, 1e-3, 3e-4), weights=(1, 2, 3)), Budget(5)
    kw = dict(schedule=schedule, objective=objective, k=k)
    whole_params, whole = _run(digits, budget, **kw)

    path = tmp_path / "ckpt.npz"

    def save(state):
        save_checkpoint(path, state.params, CFG, state.opt_state, state.rng, state.history,
                        optimizer=state.optimizer)

    _run(digits, budget, epochs=2, callback=save, **kw)          # interrupted after epoch 2
    ckpt = load_checkpoint(path)
    params, resumed = _run(digits, budget, params=ckpt.params, history=ckpt.history,
                           state=ckpt.optimizer_state, rng=ckpt.rng, optimizer=ckpt.optimizer,
                           **kw)
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4, 5]
    assert without_times(resumed) == without_times(whole)
    assert all(np.array_equal(params[name], whole_params[name]) for name in params)
    assert resumed[-1]["clock_seconds"] >= resumed[1]["clock_seconds"]   # the clock continued


@pytest.mark.parametrize("kw, error, match", [
    (dict(schedule=burda_schedule(), budget=None, epochs=1), ValueError, "needs a budget"),
    (dict(budget=None, epochs=None), ValueError, "give epochs"),
    (dict(objective="wake-sleep"), ValueError, "objective must be one of"),
    (dict(k=5), ValueError, "needs objective='iwae'"),
    (dict(objective="iwae", k=0), ValueError, "k \\(importance samples"),
    (dict(objective="iwae", k=2, kl_warmup_epochs=1), ValueError, "no KL warm-up"),
])
def test_bad_run_options_are_clear_errors(digits, kw, error, match):
    args = dict(budget=Budget(1), epochs=None)
    args.update(kw)
    with pytest.raises(error, match=match):
        _run(digits, **args)
