"""Adam without torch: a few steps against Kingma & Ba (2015), Algorithm 1, written out here.

The expected values come from the closed forms of the moments after t steps,

    m_t = (1 - beta1) * sum_{s<=t} beta1**(t-s) g_s,    v_t = (1 - beta2) * sum_{s<=t} beta2**(t-s) g_s**2
    p_T = p_0 - lr * sum_{t<=T} (m_t / (1 - beta1**t)) / (sqrt(v_t / (1 - beta2**t)) + eps)

evaluated in float64 with NumPy, not from vae_numpy.optim's recursion; tests/test_optim_torch.py
compares with torch.optim.Adam when torch is installed.
"""
import numpy as np
import pytest

from vae_numpy.optim import Adam, cache_blocks

# Non-default hyperparameters, so swapped or hard-coded betas, lr or eps fail.
LR, BETA1, BETA2, EPS = 0.01, 0.8, 0.95, 1e-6
STEPS = 5
# The shapes: a matrix large enough to span any blocking of a fast in-place step, a vector,
# and a scalar-like (1,) array.
SHAPES = {"W": (300, 70), "b": (70,), "s": (1,)}
# float64: each step is a handful of float64 operations on values of order lr (relative
# round-off ~1e-15), summed over STEPS steps; 1e-12 * lr is far above that and far below what
# any mistake in the formula moves (eps inside the square root moves a step by ~lr/2 on the
# entries whose gradients are ~eps, below).
ATOL64 = 1e-12 * LR
# float32: parameters of magnitude <= 1 carry a rounding of 6e-8 per stored update; 1e-6 allows
# STEPS of them with margin and is still 1e-4 of a single step.
ATOL32 = 1e-6
# The moments are sums of STEPS terms, each step rounding a few times (scale, multiply, add):
# their error is below ROUNDING_ULPS units of round-off of the sum of the terms' magnitudes
# (m can cancel to near 0, so its error is measured against that sum, not against m).
ROUNDING_ULPS = 32


def gradients(rng):
    """STEPS gradients per parameter: signs that flip, scales from 1e-7 (eps matters) to 10."""
    grads = []
    for _ in range(STEPS):
        g = {}
        for name, shape in SHAPES.items():
            scale = 10.0 ** rng.integers(-7, 2, size=shape)     # per entry, 1e-7 .. 10
            g[name] = scale * rng.standard_normal(shape)
        grads.append(g)
    return grads


def expected_adam(p0, gs):
    """p_T, m_T, v_T from the closed forms in the module docstring (float64), and the sum of
    the magnitudes of m_T's terms."""
    T = len(gs)
    p = p0.astype(np.float64).copy()
    for t in range(1, T + 1):
        m_t = (1 - BETA1) * sum(BETA1 ** (t - s) * gs[s - 1] for s in range(1, t + 1))
        v_t = (1 - BETA2) * sum(BETA2 ** (t - s) * gs[s - 1] ** 2 for s in range(1, t + 1))
        m_hat, v_hat = m_t / (1 - BETA1**t), v_t / (1 - BETA2**t)
        p -= LR * m_hat / (np.sqrt(v_hat) + EPS)
    m_size = (1 - BETA1) * sum(BETA1 ** (T - s) * np.abs(gs[s - 1]) for s in range(1, T + 1))
    return p, m_t, v_t, m_size


@pytest.mark.parametrize("dtype, atol", [(np.float64, ATOL64), (np.float32, ATOL32)])
def test_adam_steps_follow_algorithm_1(dtype, atol, rng):
    params = {k: rng.uniform(-1, 1, shape).astype(dtype) for k, shape in SHAPES.items()}
    p0 = {k: v.copy() for k, v in params.items()}
    grads = gradients(rng)
    opt = Adam(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS)
    state = opt.init(params)
    arrays = {k: (params[k], state[f"m/{k}"], state[f"v/{k}"]) for k in params}
    for g in grads:
        opt.step(params, {k: v.astype(dtype) for k, v in g.items()}, state)
    assert int(state["step"]) == STEPS
    for k in params:
        # in place: the same arrays, updated, in their dtype
        assert params[k] is arrays[k][0] and params[k].dtype == dtype
        assert state[f"m/{k}"] is arrays[k][1] and state[f"v/{k}"] is arrays[k][2]
        gs = [g[k].astype(dtype).astype(np.float64) for g in grads]
        p, m, v, m_size = expected_adam(p0[k], gs)
        ulp = np.finfo(dtype).eps
        np.testing.assert_allclose(params[k], p, rtol=0, atol=atol, err_msg=f"param {k}")
        assert np.all(np.abs(state[f"m/{k}"] - m) <= ROUNDING_ULPS * ulp * m_size), f"m/{k}"
        np.testing.assert_allclose(state[f"v/{k}"], v, rtol=ROUNDING_ULPS * ulp, atol=0,
                                   err_msg=f"v/{k}")


def test_constant_gradient_moves_lr_times_g_over_abs_g_plus_eps_each_step():
    """With g constant the bias-corrected moments are exactly g and g**2, so every step is
    ``lr * g / (|g| + eps)``: at g = eps it is lr / 2, at |g| >> eps almost lr."""
    g = np.array([EPS, -EPS, 3.0, -0.25])
    params = {"p": np.zeros(4)}
    opt = Adam(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS)
    state = opt.init(params)
    for _ in range(STEPS):
        opt.step(params, {"p": g.copy()}, state)
    expected = -STEPS * LR * g / (np.abs(g) + EPS)
    np.testing.assert_allclose(params["p"], expected, rtol=1e-12, atol=0)
    assert params["p"][0] == pytest.approx(-STEPS * LR / 2, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_bytes", [200, 2**18])
def test_the_cache_blocks_change_no_number(dtype, block_bytes, rng, monkeypatch):
    """Adam.step (the update on blocks: 200 bytes cut every array mid-row into many) equals
    Adam.update on the whole arrays bit for bit, moments included."""
    monkeypatch.setattr("vae_numpy.optim.BLOCK_BYTES", block_bytes)
    params = {k: rng.uniform(-1, 1, shape).astype(dtype) for k, shape in SHAPES.items()}
    whole = {k: v.copy() for k, v in params.items()}
    opt = Adam(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS)
    state, whole_state = opt.init(params), opt.init(whole)
    for t, g in enumerate(gradients(rng), start=1):
        g = {k: v.astype(dtype) for k, v in g.items()}
        opt.step(params, g, state)
        for k in whole:
            opt.update(whole[k], g[k], whole_state[f"m/{k}"], whole_state[f"v/{k}"],
                       1 - BETA1**t, 1 - BETA2**t)
        for k in params:
            for name, a, b in (("param", params[k], whole[k]),
                               ("m", state[f"m/{k}"], whole_state[f"m/{k}"]),
                               ("v", state[f"v/{k}"], whole_state[f"v/{k}"])):
                assert np.array_equal(a, b), f"step {t}: {name} {k} differs"


def test_a_non_contiguous_parameter_is_updated_in_place(rng):
    base = rng.standard_normal((6, 8))
    params = {"W": base[:, ::2]}            # a strided view of base
    expected = params["W"].copy()
    g = rng.standard_normal((6, 4))
    opt = Adam(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS)
    state = opt.init(params)
    opt.step(params, {"W": g}, state)
    expected -= LR * g / (np.abs(g) + EPS)   # step 1: m_hat = g, v_hat = g**2
    np.testing.assert_allclose(base[:, ::2], expected, rtol=1e-12, atol=0)


def test_cache_blocks_cover_every_entry_once():
    a, b = np.zeros((5, 7)), np.zeros((5, 7))
    blocks = list(cache_blocks(a, b, block_bytes=8 * 4))
    for x, y in blocks:
        x += 1
        y += 2
    assert np.all(a == 1) and np.all(b == 2)
    assert [len(x) for x, _ in blocks] == [4] * 8 + [3]
    strided = np.zeros((4, 6))[:, ::2]
    blocks = list(cache_blocks(strided, strided.copy(), block_bytes=8))
    assert len(blocks) == 1 and blocks[0][0] is strided   # not contiguous: the whole arrays
