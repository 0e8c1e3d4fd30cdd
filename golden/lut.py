"""Activation tables and their error against float math (docs/spec.md sections 1.1 and 1.2).

``build_lut`` builds the 256-entry int8 -> int8 table of the activation engine:
``table[i] = sat8(round_half_even(f((i - 128) * in_scale) / out_scale))``.
Pure NumPy; never imports ``hw/`` or Amaranth.

Domain rules at ``x <= 0`` (spec section 1.1): ``log`` is ``-inf`` there (the entry saturates to
the most negative code), ``reciprocal(0)`` is ``+inf`` (saturates to the most positive code) and
``reciprocal(x < 0) = 1 / x``, ``rsqrt`` is ``+inf`` for every ``x <= 0`` (the limit from above,
saturating to the most positive code).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["FUNCTIONS", "activation", "build_lut", "lut_error", "requantize_to", "output_pipeline",
           "PwlTable", "build_pwl", "pwl_apply", "pwl_error", "INT8_MIN", "INT8_MAX"]

INT8_MIN, INT8_MAX = -128, 127

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _relu(x):
    return np.maximum(x, 0.0)


def _relu6(x):
    return np.clip(x, 0.0, 6.0)


def _gelu(x):  # exact (erf) GELU
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _sigmoid(x):
    # numerically stable for both signs
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _silu(x):
    return x * _sigmoid(x)


def _log(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), -np.inf)


def _reciprocal(x):
    with np.errstate(divide="ignore"):
        return np.where(x == 0, np.inf, 1.0 / np.where(x == 0, 1.0, x))


def _rsqrt(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, 1.0 / np.sqrt(np.where(x > 0, x, 1.0)), np.inf)


def _exp(x):
    with np.errstate(over="ignore"):
        return np.exp(x)


#: Named activation functions (float64 -> float64, vectorised), see the module docstring for
#: the values of ``log``, ``reciprocal`` and ``rsqrt`` at ``x <= 0``.
FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda x: np.asarray(x, dtype=np.float64) * 1.0,
    "relu": _relu,
    "relu6": _relu6,
    "gelu": _gelu,
    "silu": _silu,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "exp": _exp,
    "log": _log,
    "reciprocal": _reciprocal,
    "rsqrt": _rsqrt,
}


def activation(func) -> Callable[[np.ndarray], np.ndarray]:
    """Resolve ``func`` (a name of ``FUNCTIONS`` or a callable) to a vectorised float function."""
    if callable(func):
        return lambda x: np.asarray(func(np.asarray(x, dtype=np.float64)), dtype=np.float64)
    if isinstance(func, str) and func in FUNCTIONS:
        return FUNCTIONS[func]
    raise ValueError(f"func must be one of {', '.join(FUNCTIONS)} or a callable, not {func!r}")


def _check_scale(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a positive number, not {value!r}")
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, not {value!r}")
    return value


def quantize_float(v, lo: int, hi: int) -> np.ndarray:
    """``clamp(round_half_even(v), lo, hi)`` as int64; ``+-inf`` saturate, NaN is an error."""
    v = np.asarray(v, dtype=np.float64)
    if np.any(np.isnan(v)):
        raise ValueError("activation function returned NaN")
    return np.rint(np.clip(v, lo, hi)).astype(np.int64)


def build_lut(func, in_scale: float, out_scale: float) -> np.ndarray:
    """Build the 256-entry activation table of ``func`` (spec section 1.1).

    ``table[i] = sat8(round_half_even(f((i - 128) * in_scale) / out_scale))``; the hardware
    indexes it with ``y ^ 0x80`` (``y`` the requantized int8 value).

    Parameters
    ----------
    func : str or callable
        A name of ``FUNCTIONS`` or a vectorised float function.
    in_scale, out_scale : float
        Real value of one LSB of the table's input and output (positive, finite).

    Returns
    -------
    numpy.ndarray
        ``int8[256]``.

    Raises
    ------
    ValueError
        Unknown function name, non-positive scale, or a function returning NaN.
    """
    f = activation(func)
    in_scale = _check_scale("in_scale", in_scale)
    out_scale = _check_scale("out_scale", out_scale)
    x = (np.arange(256, dtype=np.float64) - 128.0) * in_scale
    with np.errstate(over="ignore", divide="ignore"):
        v = f(x) / out_scale
    return quantize_float(v, INT8_MIN, INT8_MAX).astype(np.int8)


def lut_error(func, table, in_scale: float, out_scale: float) -> dict:
    """Error of a 256-entry table against the float function, in output LSBs.

    The reference of entry ``i`` is ``f((i - 128) * in_scale) / out_scale`` clamped to the int8
    range (saturation is the format's limit, not a table error; infinities clamp the same way).

    Returns
    -------
    dict
        ``{"max": float, "mean": float, "argmax": int}`` (``argmax`` is the input code
        ``i - 128`` of the worst entry).
    """
    f = activation(func)
    in_scale = _check_scale("in_scale", in_scale)
    out_scale = _check_scale("out_scale", out_scale)
    table = np.asarray(table)
    if table.shape != (256,):
        raise ValueError(f"table must have 256 entries, not shape {table.shape!r}")
    x = (np.arange(256, dtype=np.float64) - 128.0) * in_scale
    with np.errstate(over="ignore", divide="ignore"):
        ref = np.clip(f(x) / out_scale, INT8_MIN, INT8_MAX)
    err = np.abs(table.astype(np.float64) - ref)
    worst = int(np.argmax(err))
    return {"max": float(err[worst]), "mean": float(err.mean()), "argmax": worst - 128}


def requantize_to(acc, bias, mult, shift, *, acc_width: int = 32, out_width: int = 8
                  ) -> np.ndarray:
    """The spec's requantization rule (section 1) saturating to ``out_width`` bits.

    ``out_width = 8`` is ``golden.quant.requantize``; 16 feeds the interpolated activation
    (section 1.2).  Scalars ``bias``, ``mult``, ``shift`` (one channel).  Exact (Python ints).
    """
    from .quant import check_requant_params, wrap

    check_requant_params(mult, shift)
    mult, shift, bias = int(mult), int(shift), int(bias)
    lo, hi = -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1
    s = wrap(np.asarray(acc, dtype=np.int64) + bias, acc_width)
    out = [min(max((int(v) * mult + (1 << (shift - 1))) >> shift, lo), hi)
           for v in np.ravel(s)]
    return np.asarray(out, dtype=np.int64).reshape(np.shape(acc))


def output_pipeline(acc, bias, mult, shift, table, *, acc_width: int = 32, channel_axis: int = 0
                    ) -> np.ndarray:
    """Requantize (``golden.quant.requantize``) then apply the 256-entry table: the int8 result
    of ``hw.output_pipeline.OutputPipeline`` in LUT mode."""
    from .quant import apply_lut, requantize

    y = requantize(acc, bias, mult, shift, acc_width=acc_width, channel_axis=channel_axis)
    return apply_lut(y, table)


# -- interpolated (PWL) activation, spec section 1.2 ---------------------------------------------

PWL_BASE_WIDTH, PWL_SLOPE_WIDTH, PWL_SHIFT_MAX = 32, 18, 31


@dataclass(frozen=True)
class PwlTable:
    """A run-time loadable segment table of the interpolated activation (spec section 1.2).

    ``base[s]`` (int32), ``slope[s]`` (int18) and ``shift[s]`` (1..31) per segment;
    ``out_width`` is 8 or 16.  ``segments = len(base)`` is a power of two (4..256).
    """

    base: np.ndarray
    slope: np.ndarray
    shift: np.ndarray
    out_width: int = 8

    def __post_init__(self):
        n = len(self.base)
        if not (4 <= n <= 256 and n & (n - 1) == 0):
            raise ValueError(f"segments must be a power of two between 4 and 256, not {n!r}")
        if not (len(self.slope) == len(self.shift) == n):
            raise ValueError("base, slope and shift must have one entry per segment")
        if self.out_width not in (8, 16):
            raise ValueError(f"out_width must be 8 or 16, not {self.out_width!r}")
        b, s, f = (np.asarray(v, dtype=np.int64) for v in (self.base, self.slope, self.shift))
        if np.any(np.abs(b + 0.5) > 2**31):
            raise ValueError("base must be int32")
        if np.any(s < -(1 << 17)) or np.any(s >= 1 << 17):
            raise ValueError("slope must be int18")
        if np.any(f < 1) or np.any(f > PWL_SHIFT_MAX):
            raise ValueError(f"shift must be between 1 and {PWL_SHIFT_MAX}")
        object.__setattr__(self, "base", b)
        object.__setattr__(self, "slope", s)
        object.__setattr__(self, "shift", f)

    @property
    def segments(self) -> int:
        return len(self.base)

    @property
    def offset_width(self) -> int:
        """Bits of the in-segment offset: ``16 - log2(segments)``."""
        return 16 - (self.segments.bit_length() - 1)


def _out_range(out_width: int) -> tuple[int, int]:
    return -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1


def pwl_apply(x, table: PwlTable, *, counts: bool = False):
    """Bit-exact interpolated activation of int16 inputs ``x`` (spec section 1.2).

    ``u = x + 32768``; ``s = u >> ow``; ``off = u & (2**ow - 1)`` (``ow = 16 - log2(S)``);
    ``acc = base[s] + slope[s] * off``; ``r = (acc + (1 << (shift[s] - 1))) >> shift[s]``;
    ``y = clamp(r, lo, hi)`` for ``out_width``.  With ``counts=True`` also returns the number
    of values with ``r < lo`` (underflows) and ``r > hi`` (overflows).
    """
    x = np.asarray(x, dtype=np.int64)
    if x.size and (x.min() < -32768 or x.max() > 32767):
        raise ValueError("x must be int16 values")
    ow = table.offset_width
    u = x + 32768
    s = u >> ow
    off = u & ((1 << ow) - 1)
    f = table.shift[s]
    acc = table.base[s] + table.slope[s] * off
    r = (acc + (np.int64(1) << (f - 1))) >> f
    lo, hi = _out_range(table.out_width)
    y = np.clip(r, lo, hi)
    if counts:
        return y, int(np.count_nonzero(r < lo)), int(np.count_nonzero(r > hi))
    return y


def _pwl_target(func, in_scale, out_scale, x, out_width):
    f = activation(func)
    lo, hi = _out_range(out_width)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        v = f(np.asarray(x, dtype=np.float64) * in_scale) / out_scale
    if np.any(np.isnan(v)):
        raise ValueError("activation function returned NaN")
    return np.clip(v, lo, hi)


def build_pwl(func, in_scale: float, out_scale: float, *, segments: int = 32,
              out_width: int = 8) -> PwlTable:
    """Segment table approximating ``clamp(f(x * in_scale) / out_scale)`` for int16 ``x``.

    Per segment: the chord between the segment's first and last integer input, moved by half
    the sum of the largest positive and negative deviation over
    the segment's integer inputs (minimum max-error for that slope), in fixed point with the
    largest ``shift`` (1..31) for which ``slope`` fits int18 and ``base`` int32.
    """
    in_scale = _check_scale("in_scale", in_scale)
    out_scale = _check_scale("out_scale", out_scale)
    if isinstance(segments, bool) or not isinstance(segments, int):
        raise TypeError(f"segments must be an integer, not {segments!r}")
    if not (4 <= segments <= 256 and segments & (segments - 1) == 0):
        raise ValueError(f"segments must be a power of two between 4 and 256, not {segments!r}")
    if out_width not in (8, 16):
        raise ValueError(f"out_width must be 8 or 16, not {out_width!r}")
    ow = 16 - (segments.bit_length() - 1)
    n = 1 << ow
    xs = np.arange(-32768, 32768, dtype=np.int64)
    g = _pwl_target(func, in_scale, out_scale, xs, out_width)
    base, slope, shift = [], [], []
    for s in range(segments):
        seg = g[s * n:(s + 1) * n]  # the segment's own n inputs
        k = (seg[-1] - seg[0]) / (n - 1)
        dev = seg - (seg[0] + k * np.arange(n))
        b = seg[0] + (dev.max() + dev.min()) / 2
        for f in range(PWL_SHIFT_MAX, 0, -1):
            bi, ki = round(b * 2**f), round(k * 2**f)
            if -(1 << 17) <= ki < (1 << 17) and -(2**31) <= bi < 2**31:
                break
        base.append(bi)
        slope.append(ki)
        shift.append(f)
    return PwlTable(np.array(base), np.array(slope), np.array(shift), out_width)


def pwl_error(func, table: PwlTable, in_scale: float, out_scale: float) -> dict:
    """Max and mean error (output LSBs) of ``pwl_apply`` over all 65536 int16 inputs against
    ``clamp(f(x * in_scale) / out_scale)``; ``argmax`` is the worst input."""
    in_scale = _check_scale("in_scale", in_scale)
    out_scale = _check_scale("out_scale", out_scale)
    xs = np.arange(-32768, 32768, dtype=np.int64)
    ref = _pwl_target(func, in_scale, out_scale, xs, table.out_width)
    err = np.abs(pwl_apply(xs, table).astype(np.float64) - ref)
    worst = int(np.argmax(err))
    return {"max": float(err[worst]), "mean": float(err.mean()), "argmax": worst - 32768}
