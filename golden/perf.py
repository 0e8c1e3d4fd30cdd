"""Performance limits of a layer: MAC counts, bytes moved, roofline (docs/spec.md section 6).

These are bounds, not predictions: ``compute_cycles`` assumes every PE does one effectual MAC per
cycle, ``memory_cycles`` assumes every AXI beat is full and every byte is moved once.  A
micro-architecture-accurate predictor lives elsewhere.  ``cfg`` is duck-typed (any object with
``rows``, ``cols``, ``tiles``, ``axi_data_width``; optional ``group_size``, ``block_size``,
``acc_width``), so golden never imports hw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .formats import PackedWeights, pack_weights, packed_size
from .ops import im2col

__all__ = ["LayerStats", "layer_stats", "conv_layer_stats", "roofline_cycles", "pe_count",
           "axi_bytes", "effectual_macs"]


def _cfg_int(cfg, name: str, default=None) -> int:
    v = getattr(cfg, name, default)
    if v is None or isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise ValueError(f"cfg.{name} must be a positive int, not {v!r}")
    return int(v)


def pe_count(cfg) -> int:
    """MAC units of the whole accelerator: ``rows * cols * tiles``."""
    return _cfg_int(cfg, "rows") * _cfg_int(cfg, "cols") * _cfg_int(cfg, "tiles")


def axi_bytes(cfg) -> int:
    """Bytes per AXI data beat: ``axi_data_width // 8``."""
    w = _cfg_int(cfg, "axi_data_width")
    if w % 8:
        raise ValueError(f"cfg.axi_data_width must be a multiple of 8, not {w!r}")
    return w // 8


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def roofline_cycles(macs: int, bytes_read: int, bytes_written: int, cfg) -> int:
    """``max(ceil(macs / PEs), ceil(bytes_read / beat), ceil(bytes_written / beat))``.

    AXI4 read and write data channels are independent, so reads and writes overlap.
    """
    beat = axi_bytes(cfg)
    return max(_cdiv(macs, pe_count(cfg)), _cdiv(bytes_read, beat), _cdiv(bytes_written, beat))


def effectual_macs(W, X) -> tuple[int, int, int]:
    """``(dense, weight_effectual, effectual)`` MACs of ``W[M, K] @ X[K, N]``.

    ``weight_effectual = nnz(W) * N``; ``effectual`` counts ``(m, k, n)`` with ``W[m, k] != 0``
    and ``X[k, n] != 0`` (``sum_k nnz(W[:, k]) * nnz(X[k, :])``, exact in int64).
    """
    W, X = np.asarray(W), np.asarray(X)
    wnz, xnz = (W != 0), (X != 0)
    eff = int(np.dot(wnz.sum(axis=0, dtype=np.int64), xnz.sum(axis=1, dtype=np.int64)))
    return W.shape[0] * W.shape[1] * X.shape[1], int(wnz.sum()) * X.shape[1], eff


@dataclass(frozen=True)
class LayerStats:
    """Work, traffic and cycle limits of one layer ``Y[M, N] = W[M, K] @ X[K, N]``.

    Members
    -------
    fmt : str
        Weight format.
    m, k, n : int
        Matmul shape.
    pes, axi_bytes : int
        ``rows * cols * tiles`` and bytes per AXI beat of the configuration.
    dense_macs, weight_effectual_macs, effectual_macs : int
        ``M*K*N``; ``nnz(W) * N``; pairs with both ``w != 0`` and ``x != 0``.
    weight_bytes, act_bytes, param_bytes : int
        Packed weight image, activations read, bias / requant / LUT parameters.
    bytes_read, bytes_written : int
        ``weight_bytes + act_bytes + param_bytes``; output bytes.
    compute_cycles, weight_compute_cycles, dense_compute_cycles : int
        ``ceil(macs / pes)`` for effectual, weight-effectual and dense MACs.
    read_cycles, write_cycles, memory_cycles : int
        ``ceil(bytes / axi_bytes)`` for reads, writes, and their maximum.
    roofline_cycles, weight_roofline_cycles : int
        ``max(compute, memory)`` with full zero skipping / weight-only skipping.
    dense_roofline_cycles : int
        Roofline of the same layer in the ``dense`` format (the speedup baseline).
    """

    fmt: str
    m: int
    k: int
    n: int
    pes: int
    axi_bytes: int
    dense_macs: int
    weight_effectual_macs: int
    effectual_macs: int
    weight_bytes: int
    act_bytes: int
    param_bytes: int
    bytes_read: int
    bytes_written: int
    compute_cycles: int
    weight_compute_cycles: int
    dense_compute_cycles: int
    read_cycles: int
    write_cycles: int
    memory_cycles: int
    roofline_cycles: int
    weight_roofline_cycles: int
    dense_roofline_cycles: int

    @property
    def bound(self) -> str:
        """``"compute"`` or ``"memory"``: which limit sets ``roofline_cycles``."""
        return "compute" if self.compute_cycles >= self.memory_cycles else "memory"

    @property
    def ideal_speedup(self) -> float:
        """``dense_roofline_cycles / roofline_cycles``: best speedup over dense."""
        return self.dense_roofline_cycles / max(self.roofline_cycles, 1)

    def efficiency(self, cycles: int) -> float:
        """Achieved fraction of the roofline: ``roofline_cycles / cycles``."""
        if cycles < 1:
            raise ValueError(f"cycles must be a positive int, not {cycles!r}")
        return self.roofline_cycles / cycles

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self) | {"bound": self.bound, "ideal_speedup": self.ideal_speedup}


def layer_stats(W, X, fmt: str, cfg, *, group_size: int | None = None,
                block_size: int | None = None, nm=(2, 4), bias: bool = True,
                requant: bool = True, lut: bool = False, acc_width: int | None = None,
                act_bytes: int | None = None) -> LayerStats:
    """Limits of ``W[M, K] @ X[K, N]`` with ``W`` stored in ``fmt`` (docs/spec.md section 6).

    Parameters
    ----------
    W : array_like of int8, shape (M, K), or PackedWeights
        Already pruned weights (``fmt`` must fit them).
    X : array_like of int8, shape (K, N)
    fmt : str
        Weight format; ignored if ``W`` is a `PackedWeights` (its own format is used).
    cfg : object
        ``rows``, ``cols``, ``tiles``, ``axi_data_width`` (``group_size``, ``block_size``,
        ``acc_width`` are used as defaults when present).
    bias, requant, lut : bool
        Parameters read per layer: bias 4 B/channel; mult 4 B + shift 1 B per channel; a
        256-byte table.  Without ``requant`` the output is accumulators of
        ``ceil(acc_width / 8)`` rounded up to 4 or 8 bytes, else int8.
    act_bytes : int, optional
        Activation bytes read (default ``X.size``; conv passes its input tensor size).
    """
    if isinstance(W, PackedWeights):
        packed = W
        W = W.unpack()
    else:
        W = np.asarray(W)
        gs = group_size if group_size is not None else getattr(cfg, "group_size", 16)
        bs = block_size if block_size is not None else getattr(cfg, "block_size", 8)
        packed = pack_weights(W, fmt, group_size=gs, block_size=bs, nm=nm)
    X = np.asarray(X)
    if W.ndim != 2 or X.ndim != 2 or W.shape[1] != X.shape[0]:
        raise ValueError(f"W (M, K) and X (K, N) must be 2-D with matching K, not shapes "
                         f"{W.shape!r} and {X.shape!r}")
    m, k = W.shape
    n = X.shape[1]
    pes, beat = pe_count(cfg), axi_bytes(cfg)
    aw = acc_width if acc_width is not None else getattr(cfg, "acc_width", 32)
    dense, weff, eff = effectual_macs(W, X)
    a_bytes = X.size if act_bytes is None else int(act_bytes)
    p_bytes = (4 * m if bias else 0) + (5 * m if requant else 0) + (256 if lut else 0)
    out_bytes = m * n * (1 if requant else (4 if aw <= 32 else 8))
    rd = packed.nbytes + a_bytes + p_bytes
    rc, wc = _cdiv(rd, beat), _cdiv(out_bytes, beat)
    mem = max(rc, wc)
    cc, wcc, dcc = _cdiv(eff, pes), _cdiv(weff, pes), _cdiv(dense, pes)
    dense_rd = packed_size("dense", (m, k)) + a_bytes + p_bytes
    dense_roof = max(dcc, _cdiv(dense_rd, beat), wc)
    return LayerStats(packed.fmt, m, k, n, pes, beat, dense, weff, eff, packed.nbytes, a_bytes,
                      p_bytes, rd, out_bytes, cc, wcc, dcc, rc, wc, mem, max(cc, mem),
                      max(wcc, mem), dense_roof)


def conv_layer_stats(x, w, fmt: str, cfg, *, stride=1, padding=0, dilation=1,
                     **kwargs) -> LayerStats:
    """`layer_stats` of an NCHW x OIHW convolution lowered to matmul (spec section 2.2).

    Activation bytes are the input tensor (``x.size``: each pixel read once), not the im2col
    matrix; padding positions are zeros, so they never count as effectual MACs.
    """
    x, w = np.asarray(x), np.asarray(w)
    cols, _ = im2col(x, w.shape[2], w.shape[3], stride, padding, dilation)
    return layer_stats(w.reshape(w.shape[0], -1), cols, fmt, cfg, act_bytes=x.size, **kwargs)
