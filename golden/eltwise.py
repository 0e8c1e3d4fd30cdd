"""Bit-exact quantized residual add (docs/spec.md section 2.4).

``y = act(sat8(round_half_up(a * mult_a / 2**shift_a + b * mult_b / 2**shift_b) + bias))``,
the integer form of ONNX QLinearAdd / TFLite ADD with zero points 0.  Both products are aligned
exactly on the common grid ``2**-S``, ``S = max(shift_a, shift_b)``, added, and rounded
**once** (half up, as section 1), so the only error against the real-valued add is the 31-bit
quantization of the two scale ratios.  ``|shift_a - shift_b| <= 24`` keeps the aligned sum
inside a signed 64-bit value.  Pure NumPy.
"""

from __future__ import annotations

import math

import numpy as np

from .ops import _int8
from .quant import INT8_MAX, INT8_MIN, apply_lut, check_int, fixed_point, saturate

__all__ = ["add_requant", "add_params", "add_matmul_params", "MAX_SHIFT_DIFF",
           "MATMUL_MULT_BITS"]

#: Bits of the shared multiplier of `add_matmul_params` (``127 * 2**24 < 2**31``).
MATMUL_MULT_BITS = 24
#: Largest ``|shift_a - shift_b|``: ``2 * 128 * (2**31 - 1) * 2**24 < 2**63``.
MAX_SHIFT_DIFF = 24
_MULT_MAX = 2**31 - 1
_BIAS_MIN, _BIAS_MAX = -2**31, 2**31 - 1


def add_requant(a, b, *, mult_a, shift_a, mult_b, shift_b, bias=0, lut=None) -> np.ndarray:
    """Quantized element-wise add of two int8 tensors of one shape (spec 2.4), bit-exact.

    ``S = max(shift_a, shift_b)``,
    ``T = a * mult_a * 2**(S - shift_a) + b * mult_b * 2**(S - shift_b)`` (exact),
    ``y = sat8(((T + 2**(S-1)) >> S) + bias)``, then ``lut[y + 128]`` if a table is given.

    Parameters
    ----------
    a, b : array_like of int8, same shape
        Inputs with scales ``s_a``, ``s_b`` (zero point 0).
    mult_a, shift_a, mult_b, shift_b : int
        Per-tensor fixed-point ratios ``mult / 2**shift ~= s_in / s_y`` (`add_params`):
        ``1 <= mult <= 2**31 - 1``, ``1 <= shift <= 63``, ``|shift_a - shift_b| <= 24``.
    bias : int
        int32 added in output LSBs after the rounding (an output offset), before saturation.
    lut : array_like, shape (256,), optional
        Activation table applied after saturation (section 1.1).

    Returns
    -------
    numpy.ndarray of int8, the shape of ``a``

    Raises
    ------
    TypeError, ValueError
        Non-integer or out-of-range inputs or parameters, different shapes.
    """
    a, b = _int8(a, "a"), _int8(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, not {a.shape!r} and {b.shape!r}")
    ma = check_int(mult_a, "mult_a", 1, _MULT_MAX)
    sa = check_int(shift_a, "shift_a", 1, 63)
    mb = check_int(mult_b, "mult_b", 1, _MULT_MAX)
    sb = check_int(shift_b, "shift_b", 1, 63)
    if abs(sa - sb) > MAX_SHIFT_DIFF:
        raise ValueError(f"shift_a - shift_b must be between {-MAX_SHIFT_DIFF} and "
                         f"{MAX_SHIFT_DIFF}, not {sa - sb!r}")
    bias = check_int(bias, "bias", _BIAS_MIN, _BIAS_MAX)
    s = max(sa, sb)
    # |each term| <= 128 * (2**31 - 1) * 2**24 < 2**62: the sum fits int64
    t = ((a.astype(np.int64) * np.int64(ma)) << np.int64(s - sa)) + (
        (b.astype(np.int64) * np.int64(mb)) << np.int64(s - sb))
    # floor((t + 2**(s-1)) / 2**s) == floor((floor(t / 2**(s-1)) + 1) / 2): no wider adder
    r = ((t >> np.int64(s - 1)) + 1) >> 1
    y = saturate(r + bias, INT8_MIN, INT8_MAX).astype(np.int8)
    return y if lut is None else apply_lut(y, lut)


def _fixed(real: float) -> tuple[int, int]:
    """`golden.quant.fixed_point` (the rule of ``host.compiler.requant_params``); an
    underflowed ratio 0 gives ``(1, 63)``."""
    return (1, 63) if real == 0.0 else fixed_point(real)


def add_params(scale_a: float, scale_b: float, scale_y: float) -> dict[str, int]:
    """Integer parameters of `add_requant` for real scales (``real = q * scale``).

    Each ratio ``scale_in / scale_y`` (below ``2**30``) gets 31 significant bits
    (``2**30 <= mult < 2**31``, ``shift = 31 - e`` for ``ratio = f * 2**e``, ``0.5 <= f < 1``;
    a ratio below ``2**-33`` keeps shift 63 and fewer bits, at least ``mult = 1``).  When the
    shifts then differ by more than 24, the smaller ratio's mult loses the excess low bits
    (rounded half up, at least 1): its term then errs by at most
    ``128 * 2**-(24 + min(shift_a, shift_b)) <= 2**-18`` output LSBs more.  With both ratios below
    ``2**23`` the result is within one LSB of the real-valued add (the 31-bit ratios err by
    ``128 * (r_a + r_b) * 2**-31 < 1`` output LSB together).

    Returns
    -------
    dict
        ``mult_a``, ``shift_a``, ``mult_b``, ``shift_b``: pass as ``add_requant(a, b, **p)``.

    Raises
    ------
    ValueError
        A scale that is not a positive finite number, a ratio of ``2**30`` or more.
    """
    for name, v in (("scale_a", scale_a), ("scale_b", scale_b), ("scale_y", scale_y)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) \
                or not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, not {v!r}")
    ratios = []
    for name, v in (("scale_a", scale_a), ("scale_b", scale_b)):
        r = float(v) / float(scale_y)
        if not r < 2.0**30:
            raise ValueError(f"{name} / scale_y must be below 2**30, not {r!r}")
        ratios.append(r)
    (ma, sa), (mb, sb) = (_fixed(r) for r in ratios)
    if sa - sb > MAX_SHIFT_DIFF:
        k = sa - sb - MAX_SHIFT_DIFF
        ma, sa = max(1, (ma + (1 << (k - 1))) >> k), sa - k
    elif sb - sa > MAX_SHIFT_DIFF:
        k = sb - sa - MAX_SHIFT_DIFF
        mb, sb = max(1, (mb + (1 << (k - 1))) >> k), sb - k
    return {"mult_a": ma, "shift_a": sa, "mult_b": mb, "shift_b": sb}


def add_matmul_params(scale_a: float, scale_b: float, scale_y: float) -> dict[str, int]:
    """`add_requant` parameters that a matmul with int8 weights computes exactly (spec 2.4.1).

    The ratios ``r_a = scale_a / scale_y`` and ``r_b = scale_b / scale_y`` are coded as
    ``w_a * M / 2**S`` and ``w_b * M / 2**S`` with int8 weights ``1 <= w_a, w_b <= 127`` and one
    24-bit multiplier ``2**23 <= M < 2**24`` (``w * M < 2**31``).  Then
    ``add_requant(a, b, mult_a=w_a*M, shift_a=S, mult_b=w_b*M, shift_b=S)`` equals the section 1
    requantization of ``acc = w_a * a + w_b * b`` with ``bias 0, mult M, shift S`` bit for bit:
    both round ``(acc * M + 2**(S-1)) >> S``.  The larger ratio's weight ``w1`` is searched over
    1..127, the other's is ``max(1, round(w1 * r_small / r_large))``, and ``M, S`` code
    ``r_large / w1`` with 24 bits; the pair with the smallest worst-case error
    ``128 * (|w_a*M/2**S - r_a| + |w_b*M/2**S - r_b|)`` (output LSBs, ties: the larger ``w1``)
    wins.  The error against the real-valued add is that plus the final rounding (reported by
    ``error_lsb``; at most ``128 / 254`` LSB of ``max(r_a, r_b)`` times one plus 2**-23, and
    a smaller ratio below ``r_large / 254`` counts as ``r_large / 127``).

    Returns
    -------
    dict
        ``mult_a``, ``shift_a``, ``mult_b``, ``shift_b`` (`add_requant`'s keywords), ``w_a``,
        ``w_b``, ``mult``, ``shift`` (the matmul's weights and its requantization record) and
        ``error_lsb`` (the worst-case ratio error above, a float).

    Raises
    ------
    ValueError
        A scale that is not a positive finite number, a larger ratio that the 24-bit ``M``
        with a shift of 1..63 cannot code (from about ``2**30`` up, below about ``2**-40``).
    """
    for name, v in (("scale_a", scale_a), ("scale_b", scale_b), ("scale_y", scale_y)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) \
                or not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, not {v!r}")
    r_a, r_b = float(scale_a) / float(scale_y), float(scale_b) / float(scale_y)
    big, small = max(r_a, r_b), min(r_a, r_b)
    top = 1 << MATMUL_MULT_BITS
    best = None
    for w1 in range(127, 0, -1):
        w2 = max(1, min(w1, round(w1 * small / big)))
        f, e = math.frexp(big / w1)
        m, s = round(f * top), MATMUL_MULT_BITS - e
        if m == top:
            m, s = top >> 1, s - 1
        if not 1 <= s <= 63:
            continue
        q = m / 2.0**s
        err = 128 * (abs(w1 * q - big) + abs(w2 * q - small))
        if best is None or err < best[0]:
            best = (err, w1, w2, m, s)
    if best is None:
        raise ValueError(f"max(scale_a, scale_b) / scale_y must be between 2**-40 and 2**30 "
                         f"(24-bit mult, shift 1..63), not {big!r}")
    err, w1, w2, m, s = best
    w_a, w_b = (w1, w2) if r_a >= r_b else (w2, w1)
    return {"mult_a": w_a * m, "shift_a": s, "mult_b": w_b * m, "shift_b": s,
            "w_a": w_a, "w_b": w_b, "mult": m, "shift": s, "error_lsb": float(err)}
