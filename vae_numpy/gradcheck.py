r"""Finite-difference gradient checks, public so users can check their own backward passes.

The central difference ``(f(a + h) - f(a - h)) / (2 h)`` has truncation error
``h**2 / 6 * f'''`` and round-off error about ``u * |f| / h`` (u = 1.1e-16 in float64); with
``h = 1e-5`` and O(1) values both are about 1e-11, far below the 1e-7 bar. A loss is often not
O(1): a VAE's on 784 pixels is ~550 nats, and at h = 1e-5 its round-off alone is ~6e-9, 1e-7
of a gradient tensor whose largest entry is 0.08 (784-400-20 at initialization, batch 32). So
the default step grows with the loss, ``h = DEFAULT_STEP * max(1, |f|)**(1/3)``
(:func:`default_step`): round-off ``u * |f| / h`` then grows as ``|f|**(2/3)`` instead of
``|f|``, and truncation, which does not depend on ``|f|`` when the derivatives are O(1), stays
~1e-9 for |f| up to ~1e3 (the sum of the two is smallest at ``h ~ (3 u |f| / |f'''|)**(1/3)``,
which grows the same way). On that model the worst sampled error drops from 1.1e-7 to 1.5e-8.

Error measure: for a tensor with analytic gradient ``g`` and numerical gradient ``n``,
``rel_error = max_i |g_i - n_i| / max(max_i |g_i|, max_i |n_i|, tiny)``: the worst entry's
error relative to the tensor's scale. (Entry-by-entry relative error would be dominated by
entries that are zero up to round-off, where any finite difference is "100% wrong".)

Sampled or full: a central difference costs two evaluations of the loss per entry, so a full
check of the 784-400-20 model (652,824 entries) takes hours. :func:`check_params` therefore
checks, by default, ``n = SAMPLED_ENTRIES`` entries of each tensor drawn at random with a seeded
generator (tensors of at most ``FULL_CHECK_MAX`` entries in full), in seconds; ``entries=None``
checks every entry. What sampling can miss, for a tensor of N entries of which n are checked:

* a single wrong entry is missed with probability ``1 - n / N`` (for the 313,600 entries of
  784-400-20's first weight matrix and n = 32: 0.9999; sampling finds errors that are spread
  over a tensor, a full check finds a single one);
* an error in a fraction f of the entries is missed with probability at most ``(1 - f)**n``
  (n = 32: 0.034 for f = 10%, 1e-6 for f = 35%);
* an error in every entry (a missing factor, a scaled or transposed gradient) is caught unless
  all n sampled gradients are far smaller than the tensor's largest, which sets the scale (a
  gradient scaled by 1 + 1e-4 is caught in each of 784-400-20's tensors,
  tests/test_gradcheck.py).
"""
import zlib

import numpy as np

from .commands.progress import Progress

DEFAULT_STEP = 1e-5  # h: truncation ~h**2 = 1e-10, round-off ~1e-16 * |f| / h = 1e-11 * |f|
TOLERANCE_FLOAT64 = 1e-7  # the project's bar; observed errors are ~1e-9 or smaller
_TINY = 1e-30  # avoids 0 / 0 when both gradients are exactly zero
# The default check samples SAMPLED_ENTRIES entries of each tensor larger than FULL_CHECK_MAX:
# 8 sampled tensors of the 784-400-20 model, 296 entries, 592 loss evaluations, about 5 s at
# 9 ms per loss_and_grads (batch 32, one thread). A tensor of FULL_CHECK_MAX entries costs
# 512 evaluations, 8x a sampled one: that is where checking everything stops being cheap.
SAMPLED_ENTRIES = 32
FULL_CHECK_MAX = 256
PROGRESS_AFTER = 1.0  # s: a check that finishes sooner prints nothing


def rel_error(analytic, numerical):
    r"""``max|analytic - numerical| / max(max|analytic|, max|numerical|)`` (see module doc)."""
    analytic, numerical = np.asarray(analytic), np.asarray(numerical)
    scale = max(np.max(np.abs(analytic), initial=0), np.max(np.abs(numerical), initial=0), _TINY)
    return float(np.max(np.abs(analytic - numerical), initial=0) / scale)


def default_step(f0):
    r"""The finite-difference step for a function whose value is ``f0``:
    ``DEFAULT_STEP * max(1, |f0|)**(1/3)`` (the module docstring says why)."""
    return DEFAULT_STEP * max(1.0, abs(float(f0))) ** (1 / 3)


def numerical_gradient(f, a, h=DEFAULT_STEP):
    r"""Central-difference gradient of the scalar ``f()`` with respect to the array ``a``.

    ``a`` is perturbed in place, one entry at a time, and restored exactly; ``f`` takes no
    arguments and must read ``a`` (a closure). Returns an array of a's shape, float64.
    """
    grad = np.zeros(a.shape)
    grad.reshape(-1)[:] = numerical_entries(f, a, np.arange(a.size), h)
    return grad


def numerical_entries(f, a, index, h=DEFAULT_STEP, progress=None):
    r"""Central differences ``(f(a + h e_i) - f(a - h e_i)) / (2 h)`` for the flat indices
    ``index`` of ``a`` (perturbed in place and restored exactly). Returns (len(index),) float64.

    ``progress``, if given, is called with the number of entries done after each entry.
    """
    if a.dtype != np.float64:
        raise TypeError(f"numerical_gradient needs a float64 array, got {a.dtype}: "
                        "finite differences in float32 are too coarse for a 1e-7 check")
    flat = a.reshape(-1)
    if not np.shares_memory(flat, a):
        raise ValueError("numerical_gradient needs a contiguous array to perturb in place")
    out = np.zeros(len(index))
    for n, i in enumerate(index):
        old = flat[i]
        flat[i] = old + h
        f_plus = float(f())
        flat[i] = old - h
        f_minus = float(f())
        flat[i] = old
        out[n] = (f_plus - f_minus) / (2 * h)
        if progress is not None:
            progress(n + 1)
    return out


def check_vjp(forward, inputs, backward, dout, h=None):
    r"""Check a backward (vector-Jacobian product) against finite differences.

    For ``out = forward(*inputs)`` and an upstream gradient ``dout`` of out's shape, the
    scalar ``L = sum(out * dout)`` has gradient ``backward(dout)[k]`` with respect to
    ``inputs[k]``. Each is compared with the central difference of L.

    Parameters
    ----------
    forward : callable(*inputs) -> array
    inputs : list of float64 arrays (perturbed in place during the check, then restored)
    backward : callable(dout) -> tuple of gradients, one per input (None skips an input)
    dout : array of out's shape
    h : the step (default: :func:`default_step` of L at the inputs)

    Returns
    -------
    list of rel_error, one per input (None where backward returned None).
    """
    inputs = [np.ascontiguousarray(a) for a in inputs]
    analytic = backward(dout)
    if not isinstance(analytic, (tuple, list)):
        analytic = (analytic,)
    if len(analytic) != len(inputs):
        raise ValueError(f"backward returned {len(analytic)} gradients for {len(inputs)} inputs")
    loss = lambda: np.sum(forward(*inputs) * dout)  # noqa: E731 (the scalar L)
    h = default_step(loss()) if h is None else h
    errors = []
    for a, g in zip(inputs, analytic):
        if g is None:
            errors.append(None)
            continue
        numerical = numerical_gradient(loss, a, h)
        errors.append(rel_error(g, numerical))
    return errors


def check_params(loss_fn, params, grads, h=None, keys=None, entries=SAMPLED_ENTRIES,
                 seed=0, progress=None):
    r"""Check a whole-model gradient: ``grads[k]`` against finite differences of ``loss_fn()``.

    By default a sampled check: ``entries`` entries of each tensor, drawn without replacement
    by ``default_rng([seed, crc32(name)])`` (so a tensor's sample does not depend on which
    other tensors are checked); tensors of at most ``max(entries, FULL_CHECK_MAX)`` entries are
    checked in full. ``entries=None`` checks every entry of every tensor. What a sampled check
    can miss is stated in the module docstring: a single wrong entry among N is missed with
    probability ``1 - entries / N``.

    Parameters
    ----------
    loss_fn : callable() -> scalar loss, reading the arrays in ``params`` (perturbed in place).
    params : dict name -> float64 array
    grads : dict name -> analytic gradient, the same keys as params
    h : the step (default: :func:`default_step` of ``loss_fn()`` at params)
    keys : names to check (default: all)
    entries : int or None, entries per tensor (None: all)
    seed : int, seeds the sample
    progress : bool or None. None (default): a progress line on stderr once the check has run
        for PROGRESS_AFTER seconds; True: from the start; False: never
        (:class:`vae_numpy.commands.progress.Progress`).

    Returns
    -------
    dict name -> rel_error over the checked entries:
    ``max_i |g_i - n_i| / max(max |g|, max_i |n_i|)``, i over the checked entries, ``max |g|``
    over the whole analytic tensor (the scale of the full check, so a sample is not judged
    against a smaller scale than the tensor's).
    """
    if set(grads) != set(params):
        missing, extra = sorted(set(params) - set(grads)), sorted(set(grads) - set(params))
        raise ValueError(f"grads keys differ from params keys: missing {missing}, extra {extra}")
    if entries is not None and (not isinstance(entries, (int, np.integer)) or entries < 1):
        raise ValueError(f"entries must be a positive int (entries per tensor) or None (every "
                         f"entry), got {entries!r}")
    h = default_step(loss_fn()) if h is None else h
    names = list(keys or params)
    index = {k: sample_index(k, np.size(params[k]), entries, seed) for k in names}
    total, done = sum(len(i) for i in index.values()), 0
    errors = {}
    with Progress(enabled=progress is not False,
                  delay=PROGRESS_AFTER if progress is None else 0.0) as meter:
        for count, k in enumerate(names, 1):
            def status(n, k=k, count=count, before=done):
                meter.status(f"gradcheck: {before + n} of {total} entries, tensor {count} of "
                             f"{len(names)} ({k})")
            numerical = numerical_entries(loss_fn, params[k], index[k], h, status)
            done += len(index[k])
            analytic = np.asarray(grads[k]).reshape(-1)
            scale = max(np.max(np.abs(analytic), initial=0), np.max(np.abs(numerical), initial=0),
                        _TINY)
            errors[k] = float(np.max(np.abs(analytic[index[k]] - numerical), initial=0) / scale)
        if meter.shown:
            meter.line(f"gradcheck: {total} entries of {len(names)} tensors checked")
    return errors


def sample_index(name, size, entries=SAMPLED_ENTRIES, seed=0):
    r"""The sorted flat indices of tensor ``name`` (``size`` entries) that :func:`check_params`
    checks: all of them when ``entries`` is None or ``size <= max(entries, FULL_CHECK_MAX)``,
    otherwise ``entries`` of them drawn by ``default_rng([seed, crc32(name)])``."""
    if entries is None or size <= max(entries, FULL_CHECK_MAX):
        return np.arange(size)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return np.sort(rng.choice(size, size=entries, replace=False))


def failures(errors, tol=TOLERANCE_FLOAT64):
    r"""Labelled messages for the entries of ``{name: rel_error}`` above ``tol`` (empty if none)."""
    return [f"grad of {k}: rel err {e:.2e} > {tol:.0e}"
            for k, e in errors.items() if e is not None and not e <= tol]
