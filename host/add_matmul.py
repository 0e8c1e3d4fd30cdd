"""The residual add on the hardware: a matmul over its two inputs side by side (docs/host.md).

``y = act(requant(w_a * a + w_b * b))`` is the add of docs/spec.md section 2.4 with the
ratios of `sparsemac.golden.add_matmul_params` (int8 weights ``w_a``, ``w_b`` and one 24-bit
multiplier): bit for bit the section 1 requantization of a matmul ``W[C, K] @ X[K, N]`` whose
input ``X`` is the two ``C x N`` int8 tensors stored one after the other, ``W[c, c] = w_first``
and ``W[c, R + c] = w_second`` (``R`` rows from the first tensor's start to the second's), every
other weight 0.  The compiler places the second tensor ``R`` rows after the first (`pairs`);
the rows between them (alignment, at most ``lcm(N, align) / N`` of them) meet zero weights, and
the sparse formats skip every zero: a matmul of two effectual MACs per output.  No new
hardware, no second input port: the tiles, the requantizer, the table and the write path of any
matmul.  Pure NumPy.
"""

from __future__ import annotations

import math

import numpy as np

from .network import LayerSpec, Network, NetworkError

__all__ = ["pair_rows", "add_weights", "add_format", "pairs"]


def pair_rows(c: int, n: int, align: int) -> int:
    """``R``: the rows of ``n`` bytes from the first input's start to the second's, the
    smallest ``R >= c`` with ``R * n`` a multiple of ``align`` (both starts aligned)."""
    step = math.lcm(n, align) // n
    return -(-c // step) * step


def add_weights(c: int, rows: int, w_first: int, w_second: int) -> np.ndarray:
    """``W[c, rows + c]`` int8: ``w_first`` at ``[i, i]``, ``w_second`` at ``[i, rows + i]``."""
    w = np.zeros((c, rows + c), dtype=np.int8)
    i = np.arange(c)
    w[i, i] = w_first
    w[i, rows + i] = w_second
    return w


def add_format(w2: np.ndarray, cfg) -> tuple[str, tuple[int, int] | None]:
    """The format the add's matrix runs in: ``bitmap`` (every zero skipped), else ``nm``
    ``1:M`` with the largest ``M <= nm_max_m`` whose groups hold one weight each (else 2:4),
    else ``block``, else ``dense``; only formats built into ``cfg``."""
    formats = tuple(cfg.formats)
    if "bitmap" in formats:
        return "bitmap", None
    if "nm" in formats:
        for m in (32, 16, 8, 4, 2):
            if m <= min(int(cfg.nm_max_m), w2.shape[1]) and _fits_nm(w2, 1, m):
                return "nm", (1, m)
        if _fits_nm(w2, 2, 4):
            return "nm", (2, 4)
    if "block" in formats:
        return "block", None
    return "dense", None


def _fits_nm(w2: np.ndarray, n: int, m: int) -> bool:
    k = w2.shape[1]
    g = np.pad(w2 != 0, ((0, 0), (0, (-k) % m))).reshape(w2.shape[0], -1, m)
    return bool(g.sum(axis=2).max(initial=0) <= n)


def pairs(net: Network) -> tuple[dict[int, int], dict[int, int]]:
    """Where the adds of ``net`` need their inputs: ``(after, at)`` with ``after[first] =
    add`` (the first input's buffer is followed by the second's) and ``at[second] = first``
    (tensor ``-1``: the network input).  The first input is the one written first (the lower
    index).

    Raises
    ------
    NetworkError
        An add of a tensor with itself, or a tensor that two adds read (each tensor can sit
        next to one partner only): run it with ``limits="architecture"``.
    """
    after: dict[int, int] = {}
    at: dict[int, int] = {}
    used: dict[int, LayerSpec] = {}
    for spec in net.layers:
        if not spec.is_add:
            continue
        first, second = sorted(spec.sources)
        where = f"{net.source}:{spec.lines.get('inputs', spec.line)}" if spec.line else \
            net.source
        if first == second:
            raise NetworkError(f"{where}: layers[{spec.index}].inputs must name two different "
                               f"tensors for the hardware add (a matmul over both side by "
                               f"side), not the same one twice; use limits architecture")
        for t in (first, second):
            if t in used:
                other = used[t]
                raise NetworkError(
                    f"{where}: layers[{spec.index}].inputs must not share a tensor with "
                    f"another add on the hardware (layer {other.index}, {other.name!r}, "
                    f"reads it too; each add's inputs sit side by side in memory); use limits "
                    f"architecture")
            used[t] = spec
        after[first] = spec.index
        at[second] = first
    return after, at
