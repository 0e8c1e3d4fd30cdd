"""Bit-exact integer rules shared by every part of sparsemac (docs/spec.md section 1).

Written once: widen, accumulate (wrap at ``acc_width``), add bias, requantize (multiply, round
half up, arithmetic shift, saturate) and apply the activation table.  Pure NumPy.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["wrap", "saturate", "requantize", "apply_lut", "INT8_MIN", "INT8_MAX",
           "check_requant_params"]

INT8_MIN, INT8_MAX = -128, 127


def wrap(x, width: int) -> np.ndarray:
    """Two's-complement wrap of integers ``x`` to ``width`` bits (returns int64, or object for
    widths above 63)."""
    if not 1 <= width <= 64:
        raise ValueError(f"width must be between 1 and 64, not {width!r}")
    a = np.asarray(x)
    if width >= 64 and a.dtype != object:
        return a.astype(np.int64)
    if a.dtype == object:
        m = 1 << width
        h = 1 << (width - 1)
        f = np.frompyfunc(lambda v: ((int(v) + h) % m) - h, 1, 1)
        return f(a)
    a = a.astype(np.int64)
    k = np.int64(64 - width)  # sign-extend the low ``width`` bits (shifts never overflow-warn)
    return (a << k) >> k


def saturate(x, lo: int = INT8_MIN, hi: int = INT8_MAX) -> np.ndarray:
    """Clamp to ``[lo, hi]``."""
    return np.clip(np.asarray(x), lo, hi)


def check_requant_params(mult, shift) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-channel multipliers (int32, > 0) and shifts (1..63)."""
    mult = np.atleast_1d(np.asarray(mult, dtype=np.int64))
    shift = np.atleast_1d(np.asarray(shift, dtype=np.int64))
    if np.any(mult <= 0) or np.any(mult > 2**31 - 1):
        bad = mult[(mult <= 0) | (mult > 2**31 - 1)][0]
        raise ValueError(f"mult must be between 1 and {2**31 - 1}, not {int(bad)!r}")
    if np.any(shift < 1) or np.any(shift > 63):
        bad = shift[(shift < 1) | (shift > 63)][0]
        raise ValueError(f"shift must be between 1 and 63, not {int(bad)!r}")
    return mult, shift


def requantize(acc, bias, mult, shift, *, acc_width: int = 32, channel_axis: int = 0
               ) -> np.ndarray:
    """``y = sat8(((wrap(acc + bias) * mult) + (1 << (shift - 1))) >> shift)``.

    ``acc + bias`` wraps at ``acc_width`` bits (the hardware adder), the product is exact
    (``acc_width + 32`` bits; a signed 64-bit product when ``acc_width <= 32``), rounding is
    half up (toward +inf: ties of -2.5 give -2), the shift is arithmetic and the result saturates
    to int8.  ``bias``, ``mult`` and ``shift`` are scalars or per-channel vectors along
    ``channel_axis`` of ``acc``.
    """
    acc = np.asarray(acc)
    mult, shift = check_requant_params(mult, shift)
    bias = np.atleast_1d(np.asarray(bias, dtype=np.int64))

    def per_channel(v):
        if v.size == 1:
            return v.reshape(())
        shape = [1] * acc.ndim
        shape[channel_axis] = v.size
        return v.reshape(shape)

    s = wrap(acc.astype(np.int64) + per_channel(bias), acc_width)
    m, sh = per_channel(mult), per_channel(shift)
    if acc_width <= 32:
        prod = s * m + (np.int64(1) << (sh - 1))
        y = prod >> sh
    else:  # exact with Python integers
        s_o, m_o, sh_o = (np.asarray(v).astype(object) for v in (s, m, sh))
        y = (s_o * m_o + (1 << (sh_o - 1))) >> sh_o
        y = np.asarray(np.clip(y, INT8_MIN, INT8_MAX), dtype=np.int64)
    return saturate(y).astype(np.int8)


def apply_lut(y, table) -> np.ndarray:
    """Apply a 256-entry int8 table: entry ``i`` holds ``f(i - 128)``, so
    ``out = table[y + 128]``."""
    table = np.asarray(table)
    if table.shape != (256,):
        raise ValueError(f"table must have 256 entries, not shape {table.shape!r}")
    if table.min() < INT8_MIN or table.max() > INT8_MAX:
        raise ValueError("table entries must be between -128 and 127")
    y = np.asarray(y).astype(np.int64)
    if y.size and (y.min() < INT8_MIN or y.max() > INT8_MAX):  # else y + 128 would wrap around
        raise ValueError(f"y must be int8 (-128..127), not range [{int(y.min())}, "
                         f"{int(y.max())}]")
    return table.astype(np.int8)[y + 128]


def check_int(v, name: str, lo: int, hi: int) -> int:
    """``v`` as an int in ``[lo, hi]``; TypeError / ValueError naming ``name`` otherwise."""
    if isinstance(v, bool) or not isinstance(v, int | np.integer):
        raise TypeError(f"{name} must be an integer, not {v!r}")
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {int(v)!r}")
    return int(v)


def fixed_point(real: float) -> tuple[int, int]:
    """``(mult, shift)`` with ``mult / 2**shift ~= real > 0``: 31 significant bits
    (``2**30 <= mult < 2**31``, ``frexp(real) = f * 2**e``, ``mult = round(f * 2**31)``,
    ``shift = 31 - e``) where ``1 <= shift <= 63`` allows; below ``2**-32`` fewer bits (at least
    ``mult = 1``), from ``2**30 - 2**-2`` up ``(2**31 - 1, 1)`` (saturating ratios)."""
    f, e = math.frexp(real)  # real = f * 2**e, 0.5 <= f < 1
    m, s = round(f * 2**31), 31 - e
    if m == 2**31:
        m, s = 2**30, s - 1
    if s > 63:
        m, s = max(1, round(m / 2 ** (s - 63))), 63
    if s < 1:
        m, s = 2**31 - 1, 1
    return m, s
