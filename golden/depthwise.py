"""Bit-exact depthwise conv2d (docs/spec.md section 2.5): one KH x KW filter per channel.

Channel ``c`` of the output is the convolution of input channel ``c`` alone with ``w[c, 0]``
(groups = channels, channel multiplier 1).  Products and sums are exact in int64 and wrapped to
``acc_width`` bits once (as `golden.ops.matmul`); bias, requantization and the activation table
are the epilogue of `golden.ops.conv2d`, per channel.  Pure NumPy.
"""

from __future__ import annotations

import numpy as np

from .ops import _check_channels, _finish, _int8, conv_output_shape, im2col
from .quant import wrap

__all__ = ["depthwise_conv2d"]


def depthwise_conv2d(x, w, *, bias=None, stride=1, padding=0, dilation=1, mult=None, shift=None,
                     lut=None, acc_width: int = 32) -> np.ndarray:
    """Depthwise NCHW convolution with weights ``(C, 1, KH, KW)`` (spec 2.5), bit-exact.

    ``acc[n, c, oh, ow] = wrap(sum_{r, s} w[c, 0, r, s] * x[n, c, oh*sh - ph + r*dh,
    ow*sw - pw + s*dw], acc_width)`` (zero outside the image), then the section 1 epilogue with
    channel ``c``'s bias / mult / shift.  Equal to ONNX ``Conv`` with ``group = C``.

    Parameters
    ----------
    x : array_like of int8, shape (N, C, H, W)
    w : array_like of int8, shape (C, 1, KH, KW)
    bias, mult, shift : int or array_like, shape (C,), optional
        As in `golden.ops.conv2d` (one value per channel).
    lut : array_like, shape (256,), optional
    stride, padding, dilation : int or (int, int)
        As in `golden.ops.conv2d`.
    acc_width : int
        Accumulator width in bits, 1..64.

    Returns
    -------
    numpy.ndarray, shape (N, C, OH, OW)
        int64 accumulators when ``mult`` is None, else int8.

    Raises
    ------
    TypeError, ValueError
        Non-integer or out-of-range inputs, mismatched shapes, bad geometry or requantization
        parameters.
    """
    x, w = _int8(x, "x"), _int8(w, "w")
    if x.ndim != 4 or w.ndim != 4 or w.shape[0] != x.shape[1] or w.shape[1] != 1:
        raise ValueError(f"x (N, C, H, W) and w (C, 1, KH, KW) must be 4-D with matching C, not "
                         f"shapes {x.shape!r} and {w.shape!r}")
    if isinstance(acc_width, bool) or not isinstance(acc_width, int | np.integer) \
            or not 1 <= acc_width <= 64:
        raise ValueError(f"acc_width must be between 1 and 64, not {acc_width!r}")
    n, c = x.shape[:2]
    _, _, kh, kw = w.shape
    for name, v in (("bias", bias), ("mult", mult), ("shift", shift)):
        _check_channels(name, v, c)
    oh, ow = conv_output_shape(x.shape[2:], (kh, kw), stride, padding, dilation)
    cols, _ = im2col(x, kh, kw, stride, padding, dilation)  # rows k = (c*KH + r)*KW + s
    cols = cols.reshape(c, kh * kw, n * oh * ow).astype(np.int64)
    acc = wrap(np.einsum("ck,ckp->cp", w.reshape(c, kh * kw).astype(np.int64), cols), acc_width)
    y = _finish(acc, bias, mult, shift, lut, acc_width)
    return y.reshape(c, n, oh, ow).transpose(1, 0, 2, 3).copy()
