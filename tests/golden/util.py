"""Shared helpers of the golden tests: random int8 data with the awkward values on purpose."""

import numpy as np


def rand_int8(rng, shape, density=1.0, *, zero_rows=False):
    """Random int8 array, about ``density`` non-zero, with -128 / 127 / +-1 over-represented.

    ``zero_rows`` zeroes about a quarter of the rows (axis 0) so all-zero rows appear.
    """
    vals = rng.integers(-128, 128, size=shape)
    special = rng.choice(np.array([-128, 127, 1, -1]), size=shape)
    vals = np.where(rng.random(shape) < 0.3, special, vals)
    vals = np.where(rng.random(shape) < density, vals, 0)
    if zero_rows and vals.ndim >= 1 and vals.shape[0] > 0:
        vals[rng.random(vals.shape[0]) < 0.25] = 0
    return vals.astype(np.int8)


def fit_nm(rng, W, n, m):
    """Zero random elements so every group of ``m`` along axis 1 has at most ``n`` non-zeros."""
    W = W.copy()
    for r in range(W.shape[0]):
        for g in range(0, W.shape[1], m):
            nz = [g + i for i in range(min(m, W.shape[1] - g)) if W[r, g + i] != 0]
            if len(nz) > n:
                drop = rng.choice(len(nz), size=len(nz) - n, replace=False)
                for d in drop:
                    W[r, nz[d]] = 0
    return W


def show(name, expected, actual, seed=None):
    """Failure message with expected vs actual (first differing position) and the seed."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    msg = f"{name}: seed={seed}\n"
    if expected.shape != actual.shape:
        return msg + f"shape expected {expected.shape}, actual {actual.shape}"
    diff = np.argwhere(expected != actual)
    if diff.size:
        i = tuple(int(v) for v in diff[0])
        msg += (f"{len(diff)} mismatches; first at {i}: expected {expected[i]!r}, "
                f"actual {actual[i]!r}\n")
    return msg + f"expected=\n{expected}\nactual=\n{actual}"
