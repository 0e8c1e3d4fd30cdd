"""Bit-exact matmul and conv2d of the accelerator (docs/spec.md sections 1 and 2).

Products and sums are exact in int64 (``np.matmul`` on int64, never float), then wrapped to
``acc_width`` bits; wrapping once at the end equals wrapping after every addition because
two's-complement wrap is a ring homomorphism.  Bias, requantization and the activation table
follow `golden.quant`.  conv2d is NCHW / OIHW lowered to matmul through `im2col` (section 2.2).
"""

from __future__ import annotations

import numpy as np

from .formats import PackedWeights
from .quant import apply_lut, requantize, wrap

__all__ = ["matmul", "conv2d", "im2col", "conv_output_shape"]


def _int8(a, name: str) -> np.ndarray:
    if isinstance(a, PackedWeights):
        return a.unpack()
    a = np.asarray(a)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, not dtype {a.dtype}")
    if a.size and (a.min() < -128 or a.max() > 127):
        raise ValueError(f"{name} values must be int8 (-128..127), not range "
                         f"[{int(a.min())}, {int(a.max())}]")
    return a.astype(np.int8)


def _finish(acc, bias, mult, shift, lut, acc_width):
    """Bias (+ wrap), then requantize and the LUT along axis 0 (output channels)."""
    if mult is None:
        if shift is not None or lut is not None:
            raise ValueError("shift and lut need mult (requantization) to be given")
        if bias is not None:
            b = np.asarray(bias, dtype=np.int64).reshape(-1, *([1] * (acc.ndim - 1)))
            acc = wrap(acc + b, acc_width)
        return acc
    if shift is None:
        raise ValueError("mult needs shift to be given")
    y = requantize(acc, 0 if bias is None else bias, mult, shift, acc_width=acc_width,
                   channel_axis=0)
    return y if lut is None else apply_lut(y, lut)


def _check_channels(name, v, channels):
    if v is not None and np.size(v) not in (1, channels):
        raise ValueError(f"{name} must have 1 or {channels} entries (output channels), "
                         f"not {np.size(v)}")


def matmul(W, X, *, bias=None, mult=None, shift=None, lut=None, acc_width: int = 32
           ) -> np.ndarray:
    """``Y[M, N] = act(requant(W[M, K] @ X[K, N] + bias))``, bit-exact (spec sections 1, 2.1).

    Parameters
    ----------
    W : array_like of int8, shape (M, K), or PackedWeights
    X : array_like of int8, shape (K, N)
    bias : int or array_like of int32, shape (M,), optional
        Added to the accumulator (wrapping at ``acc_width``).
    mult, shift : int or array_like, shape (M,), optional
        Per-output-channel requantization (``1 <= mult <= 2**31-1``, ``1 <= shift <= 63``).
        Without them the wrapped accumulators are returned.
    lut : array_like, shape (256,), optional
        Activation table applied after requantization (needs ``mult``).
    acc_width : int
        Accumulator width in bits.

    Returns
    -------
    numpy.ndarray
        int64 accumulators holding ``acc_width``-bit values when ``mult`` is None, else int8.

    Raises
    ------
    TypeError, ValueError
        Non-integer or out-of-range inputs, mismatched shapes, bad requantization parameters.
    """
    W, X = _int8(W, "W"), _int8(X, "X")
    if W.ndim != 2 or X.ndim != 2 or W.shape[1] != X.shape[0]:
        raise ValueError(f"W (M, K) and X (K, N) must be 2-D with matching K, not shapes "
                         f"{W.shape!r} and {X.shape!r}")
    for name, v in (("bias", bias), ("mult", mult), ("shift", shift)):
        _check_channels(name, v, W.shape[0])
    acc = wrap(np.matmul(W.astype(np.int64), X.astype(np.int64)), acc_width)
    return _finish(acc, bias, mult, shift, lut, acc_width)


def _pair(v, name: str, lo: int) -> tuple[int, int]:
    t = (v, v) if np.isscalar(v) else tuple(v)
    if len(t) != 2 or any(not isinstance(x, int | np.integer) or x < lo for x in t):
        raise ValueError(f"{name} must be an int >= {lo} or a pair of them, not {v!r}")
    return int(t[0]), int(t[1])


def conv_output_shape(in_hw, kernel_hw, stride=1, padding=0, dilation=1) -> tuple[int, int]:
    """``(OH, OW)`` with ``O = floor((I + 2*pad - dil*(K-1) - 1) / stride) + 1`` (spec 2.2).

    Raises
    ------
    ValueError
        Bad stride/padding/dilation, or a kernel larger than the padded input.
    """
    (h, w), (kh, kw) = _pair(in_hw, "input size", 1), _pair(kernel_hw, "kernel size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"dilated kernel ({dh * (kh - 1) + 1}, {dw * (kw - 1) + 1}) must fit "
                         f"the padded input ({h + 2 * ph}, {w + 2 * pw})")
    return oh, ow


def im2col(x, kh: int, kw: int, stride=1, padding=0, dilation=1
           ) -> tuple[np.ndarray, np.ndarray]:
    """Implicit-im2col matrix of an NCHW input (spec section 2.2), made explicit.

    Row ``k = (c*KH + r)*KW + s``, column ``p = (n*OH + oh)*OW + ow``, value
    ``x[n, c, oh*sh - ph + r*dh, ow*sw - pw + s*dw]`` (0 outside the image).

    Returns
    -------
    cols : numpy.ndarray, shape (C*KH*KW, N*OH*OW)
        Same dtype as ``x``.
    is_pad : numpy.ndarray of bool, same shape
        True where the element is padding (never fetched by the hardware).
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), not shape {x.shape!r}")
    n, c, h, w = x.shape
    oh, ow = conv_output_shape((h, w), (kh, kw), stride, padding, dilation)
    (sh, sw), (ph, pw), (dh, dw) = (_pair(stride, "stride", 1), _pair(padding, "padding", 0),
                                    _pair(dilation, "dilation", 1))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    pad = np.ones((h + 2 * ph, w + 2 * pw), dtype=bool)
    pad[ph:ph + h, pw:pw + w] = False
    ih = (np.arange(kh) * dh)[:, None] + (np.arange(oh) * sh)[None, :]  # (KH, OH)
    iw = (np.arange(kw) * dw)[:, None] + (np.arange(ow) * sw)[None, :]  # (KW, OW)
    ri, ci = ih[:, None, :, None], iw[None, :, None, :]  # -> (KH, KW, OH, OW)
    patches = xp[:, :, ri, ci]  # (N, C, KH, KW, OH, OW)
    cols = patches.transpose(1, 2, 3, 0, 4, 5).reshape(c * kh * kw, n * oh * ow)
    is_pad = np.broadcast_to(pad[ri, ci][None, :, :, None], (c, kh, kw, n, oh, ow))
    return cols, is_pad.reshape(c * kh * kw, n * oh * ow).copy()


def conv2d(x, w, *, bias=None, stride=1, padding=0, dilation=1, mult=None, shift=None, lut=None,
           acc_width: int = 32) -> np.ndarray:
    """Bit-exact NCHW x OIHW convolution (spec section 2.2): `matmul` of the flattened weights
    ``w.reshape(O, C*KH*KW)`` with `im2col` of ``x``.

    Parameters
    ----------
    x : array_like of int8, shape (N, C, H, W)
    w : array_like of int8, shape (O, C, KH, KW)
    bias, mult, shift, lut, acc_width
        As in `matmul` (per output channel ``O``).
    stride, padding, dilation : int or (int, int)
        Per axis ``(h, w)``; padding is symmetric (top = bottom, left = right).

    Returns
    -------
    numpy.ndarray, shape (N, O, OH, OW)
        int64 accumulators when ``mult`` is None, else int8.
    """
    x, w = _int8(x, "x"), _int8(w, "w")
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(f"x (N, C, H, W) and w (O, C, KH, KW) must be 4-D with matching C, "
                         f"not shapes {x.shape!r} and {w.shape!r}")
    o, _, kh, kw = w.shape
    oh, ow = conv_output_shape(x.shape[2:], (kh, kw), stride, padding, dilation)
    cols, _ = im2col(x, kh, kw, stride, padding, dilation)
    y = matmul(w.reshape(o, -1), cols, bias=bias, mult=mult, shift=shift, lut=lut,
               acc_width=acc_width)
    return y.reshape(o, x.shape[0], oh, ow).transpose(1, 0, 2, 3).copy()
