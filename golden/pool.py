"""Bit-exact max / average / global average pooling on int8 NCHW tensors (docs/spec.md 2.3).

Pooling keeps the input's scale (and zero point 0): a maximum of int8 values is an int8 value,
an average of them rounds back onto the same grid, so there is no requantization and no table.

Max pooling pads with -128, the smallest int8, which can never win over a real value; since
``padding < kernel`` every window holds at least one real value.

Average pooling sums the window exactly and divides with **round half up**
(``y = floor(sum / count + 1/2)``, ties toward +inf as in section 1) by a divider-free rule:
the sum is taken in offset binary, ``u = sum + 128 * count`` (each value ``x ^ 0x80``, an
included padding position counts as 128), and ``y = ((u * R + 2**(S-1)) >> S) - 128`` with
``R = ceil(2**S / count)``.  This equals ``floor((2*u + count) / (2*count)) - 128`` exactly
whenever ``510 * count * (count - 1) < 2**S``; ``S = 25`` covers every window of up to 256
elements (``S = 24`` does not: ``count = 195, u = 43387``).  Pure NumPy.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .ops import _int8
from .quant import check_int

__all__ = ["maxpool2d", "avgpool2d", "avgpool2d_sums", "global_avgpool", "avg_divide",
           "avg_shift", "avg_recip", "pool_output_shape", "AVG_SHIFT", "MAX_POOL_KERNEL",
           "MAX_POOL_STRIDE", "MAX_AVG_COUNT"]

#: Rounding shift ``S`` of the average division for windows of up to 256 elements.
AVG_SHIFT = 25
#: Largest kernel side (so a window holds at most 16 x 16 = 256 elements).
MAX_POOL_KERNEL = 16
#: Largest stride.
MAX_POOL_STRIDE = 16
#: Largest element count of one average (global pooling: ``H * W``).
MAX_AVG_COUNT = 65536


def _pair(v, name: str, lo: int, hi) -> tuple[int, int]:
    """``v`` (an int or a pair) as ``(h, w)``; ``hi`` is an int or a pair of per-axis bounds."""
    t = (v, v) if np.isscalar(v) else tuple(v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, not {v!r}")
    his = (hi, hi) if np.isscalar(hi) else hi
    return tuple(check_int(x, name, lo, h) for x, h in zip(t, his))


def pool_output_shape(in_hw, kernel, stride, padding=0) -> tuple[int, int]:
    """``(OH, OW)`` with ``O = floor((I + 2*pad - K) / stride) + 1`` (spec 2.3).

    Raises
    ------
    TypeError, ValueError
        ``kernel`` not in 1..16, ``stride`` not in 1..16, ``padding`` not in 0..kernel-1 (per
        axis), or a kernel larger than the padded input.
    """
    h, w = in_hw
    kh, kw = _pair(kernel, "kernel", 1, MAX_POOL_KERNEL)
    sh, sw = _pair(stride, "stride", 1, MAX_POOL_STRIDE)
    ph, pw = _pair(padding, "padding", 0, (kh - 1, kw - 1))
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ValueError(f"kernel {(kh, kw)} must fit the padded input "
                         f"{(h + 2 * ph, w + 2 * pw)}")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def _windows(xp, kh, kw, sh, sw, oh, ow):
    """``(N, C, OH, OW, KH, KW)`` view of the padded input's windows."""
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]


def _geometry(x, kernel, stride, padding):
    x = _int8(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), not shape {x.shape!r}")
    oh, ow = pool_output_shape(x.shape[2:], kernel, stride, padding)
    kh, kw = _pair(kernel, "kernel", 1, MAX_POOL_KERNEL)
    (sh, sw), (ph, pw) = _pair(stride, "stride", 1, MAX_POOL_STRIDE), (
        _pair(padding, "padding", 0, (kh - 1, kw - 1)))
    return x, (kh, kw, sh, sw, ph, pw, oh, ow)


def maxpool2d(x, kernel, stride, padding=0) -> np.ndarray:
    """Max pooling of an int8 NCHW tensor (spec 2.3): the largest value of each window, padding
    positions holding -128.

    Parameters
    ----------
    x : array_like of int8, shape (N, C, H, W)
    kernel : int or (int, int)
        Window ``(KH, KW)``, each 1..16.
    stride : int or (int, int)
        Each 1..16 (may exceed the kernel: rows and columns in between are skipped).
    padding : int or (int, int)
        Symmetric, each ``0 .. K - 1`` (so every window holds a real value).

    Returns
    -------
    numpy.ndarray of int8, shape (N, C, OH, OW)

    Raises
    ------
    TypeError, ValueError
        Non-integer or out-of-range input, bad geometry (see `pool_output_shape`).
    """
    x, (kh, kw, sh, sw, ph, pw, oh, ow) = _geometry(x, kernel, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-128)
    return _windows(xp, kh, kw, sh, sw, oh, ow).max(axis=(4, 5)).astype(np.int8)


def avgpool2d_sums(x, kernel, stride, padding=0, *, count_include_pad: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Exact window sums and divisors of `avgpool2d` (before the division).

    Returns
    -------
    sums : numpy.ndarray of int64, shape (N, C, OH, OW)
        Sum of the window's real values (padding adds 0).
    counts : numpy.ndarray of int64, same shape
        ``KH * KW`` with ``count_include_pad``, else the number of real values in the window
        (always >= 1).
    """
    x, (kh, kw, sh, sw, ph, pw, oh, ow) = _geometry(x, kernel, stride, padding)
    pads = ((0, 0), (0, 0), (ph, ph), (pw, pw))
    sums = _windows(np.pad(x.astype(np.int64), pads), kh, kw, sh, sw, oh, ow).sum(axis=(4, 5))
    if count_include_pad:
        counts = np.full(sums.shape, kh * kw, dtype=np.int64)
    else:
        real = np.pad(np.ones(x.shape, dtype=np.int64), pads)
        counts = _windows(real, kh, kw, sh, sw, oh, ow).sum(axis=(4, 5))
    return sums, counts


def avg_shift(max_count: int) -> int:
    """Rounding shift ``S`` of the average division for counts ``1 .. max_count``: the smallest
    ``S >= 25`` with ``510 * max_count * (max_count - 1) < 2**S`` (25 up to 256 elements, 41 at
    65536)."""
    a = check_int(max_count, "max_count", 1, MAX_AVG_COUNT)
    return max(AVG_SHIFT, (510 * a * (a - 1)).bit_length())


def avg_recip(count, shift: int) -> np.ndarray:
    """Reciprocal ``R = ceil(2**shift / count)`` (int64; at most ``2**shift``)."""
    c = np.asarray(count, dtype=np.int64)
    return ((np.int64(1) << np.int64(shift)) + c - 1) // c


def avg_divide(sums, counts, *, max_count: int) -> np.ndarray:
    """``y = round_half_up(sums / counts)`` as the hardware computes it (spec 2.3).

    ``u = sums + 128 * counts`` (offset binary, ``0 <= u <= 255 * counts``), ``S =
    avg_shift(max_count)``, ``R = ceil(2**S / counts)``, ``y = ((u * R + 2**(S-1)) >> S) - 128``.
    The product needs at most ``S + 8`` bits (33 for windows of up to 256 elements, 49 at 65536).

    Parameters
    ----------
    sums : array_like of int
        Exact sums of ``counts`` int8 values each (so ``-128*count <= sum <= 127*count``).
    counts : array_like of int
        Divisors, ``1 .. max_count``, broadcastable to ``sums``.
    max_count : int
        The largest divisor of the layer (``KH * KW``, or ``H * W`` for global pooling),
        1..65536; it fixes ``S``.

    Returns
    -------
    numpy.ndarray of int8
    """
    shift = avg_shift(max_count)
    s = np.asarray(sums, dtype=np.int64)
    c = np.broadcast_to(np.asarray(counts, dtype=np.int64), s.shape)
    if c.size and (c.min() < 1 or c.max() > max_count):
        bad = int(c[(c < 1) | (c > max_count)][0])
        raise ValueError(f"counts must be between 1 and {max_count} (max_count), not {bad!r}")
    u = s + 128 * c
    off = (u < 0) | (u > 255 * c)
    if off.any():
        i = tuple(int(v) for v in np.argwhere(off)[0])
        raise ValueError(f"sums must be between -128 * count and 127 * count, not {int(s[i])!r} "
                         f"for count {int(c[i])!r}")
    y = ((u * avg_recip(c, shift) + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift))
    return (y - 128).astype(np.int8)


def avgpool2d(x, kernel, stride, padding=0, *, count_include_pad: bool) -> np.ndarray:
    """Average pooling of an int8 NCHW tensor (spec 2.3), bit-exact.

    ``y = round_half_up(sum / count)`` (ties toward +inf) computed by `avg_divide` with
    ``S = 25``: the output stays on the input's scale.

    Parameters
    ----------
    x, kernel, stride, padding
        As in `maxpool2d`.
    count_include_pad : bool
        True: every window divides by ``KH * KW`` (padding counts as zeros, PyTorch's default);
        False: by the number of real values in the window (ONNX's default).  No default, so a
        model converted from either framework states its choice.

    Returns
    -------
    numpy.ndarray of int8, shape (N, C, OH, OW)
    """
    if not isinstance(count_include_pad, bool | np.bool_):
        raise TypeError(f"count_include_pad must be a bool, not {count_include_pad!r}")
    sums, counts = avgpool2d_sums(x, kernel, stride, padding,
                                  count_include_pad=bool(count_include_pad))
    kh, kw = _pair(kernel, "kernel", 1, MAX_POOL_KERNEL)
    return avg_divide(sums, counts, max_count=kh * kw)


def global_avgpool(x) -> np.ndarray:
    """Global average pooling (spec 2.3): ``y[n, c] = round_half_up(sum(x[n, c]) / (H*W))``.

    ``1 <= H * W <= 65536`` (the sum then fits 24 bits offset binary); ``S = avg_shift(H*W)``.

    Returns
    -------
    numpy.ndarray of int8, shape (N, C, 1, 1)
    """
    x = _int8(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), not shape {x.shape!r}")
    count = x.shape[2] * x.shape[3]
    if not 1 <= count <= MAX_AVG_COUNT:
        raise ValueError(f"H * W must be between 1 and {MAX_AVG_COUNT}, not {count!r}")
    sums = x.astype(np.int64).sum(axis=(2, 3), keepdims=True)
    return avg_divide(sums, count, max_count=count)
