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

import numpy as np

__all__ = ["FUNCTIONS", "activation", "build_lut", "lut_error", "INT8_MIN", "INT8_MAX"]

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
