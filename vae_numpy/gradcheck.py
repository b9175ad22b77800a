r"""Finite-difference gradient checks, public so users can check their own backward passes.

The central difference ``(f(a + h) - f(a - h)) / (2 h)`` has truncation error
``h**2 / 6 * f'''`` and round-off error about ``eps_machine * |f| / h``; in float64 with
``h = 1e-5`` and O(1) values both are about 1e-11, far below the 1e-7 bar.

Error measure: for a tensor with analytic gradient ``g`` and numerical gradient ``n``,
``rel_error = max_i |g_i - n_i| / max(max_i |g_i|, max_i |n_i|, tiny)``: the worst entry's
error relative to the tensor's scale. (Entry-by-entry relative error would be dominated by
entries that are zero up to round-off, where any finite difference is "100% wrong".)
"""
import numpy as np

DEFAULT_STEP = 1e-5  # h: truncation ~h**2 = 1e-10, round-off ~1e-16 * |f| / h = 1e-11 * |f|
TOLERANCE_FLOAT64 = 1e-7  # the project's bar; observed errors are ~1e-9 or smaller
_TINY = 1e-30  # avoids 0 / 0 when both gradients are exactly zero


def rel_error(analytic, numerical):
    r"""``max|analytic - numerical| / max(max|analytic|, max|numerical|)`` (see module doc)."""
    analytic, numerical = np.asarray(analytic), np.asarray(numerical)
    scale = max(np.max(np.abs(analytic), initial=0), np.max(np.abs(numerical), initial=0), _TINY)
    return float(np.max(np.abs(analytic - numerical), initial=0) / scale)


def numerical_gradient(f, a, h=DEFAULT_STEP):
    r"""Central-difference gradient of the scalar ``f()`` with respect to the array ``a``.

    ``a`` is perturbed in place, one entry at a time, and restored exactly; ``f`` takes no
    arguments and must read ``a`` (a closure). Returns an array of a's shape, float64.
    """
    if a.dtype != np.float64:
        raise TypeError(f"numerical_gradient needs a float64 array, got {a.dtype}: "
                        "finite differences in float32 are too coarse for a 1e-7 check")
    grad = np.zeros(a.shape)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, a):
        raise ValueError("numerical_gradient needs a contiguous array to perturb in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        f_plus = float(f())
        flat[i] = old - h
        f_minus = float(f())
        flat[i] = old
        gflat[i] = (f_plus - f_minus) / (2 * h)
    return grad


def check_vjp(forward, inputs, backward, dout, h=DEFAULT_STEP):
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
    errors = []
    for a, g in zip(inputs, analytic):
        if g is None:
            errors.append(None)
            continue
        numerical = numerical_gradient(lambda: np.sum(forward(*inputs) * dout), a, h)
        errors.append(rel_error(g, numerical))
    return errors


def check_params(loss_fn, params, grads, h=DEFAULT_STEP, keys=None):
    r"""Check a whole-model gradient: ``grads[k]`` against finite differences of ``loss_fn()``.

    Parameters
    ----------
    loss_fn : callable() -> scalar loss, reading the arrays in ``params`` (perturbed in place).
    params : dict name -> float64 array
    grads : dict name -> analytic gradient, the same keys as params
    keys : names to check (default: all)

    Returns
    -------
    dict name -> rel_error.
    """
    if set(grads) != set(params):
        missing, extra = sorted(set(params) - set(grads)), sorted(set(grads) - set(params))
        raise ValueError(f"grads keys differ from params keys: missing {missing}, extra {extra}")
    return {k: rel_error(grads[k], numerical_gradient(loss_fn, params[k], h))
            for k in (keys or params)}


def failures(errors, tol=TOLERANCE_FLOAT64):
    r"""Labelled messages for the entries of ``{name: rel_error}`` above ``tol`` (empty if none)."""
    return [f"grad of {k}: rel err {e:.2e} > {tol:.0e}"
            for k, e in errors.items() if e is not None and not e <= tol]
