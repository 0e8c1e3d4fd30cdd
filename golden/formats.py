"""Sparse weight memory images: pack, validate, unpack (docs/spec.md section 3).

A packed ``W[M, K]`` is one little-endian byte image: a 32-byte header, then up to three
sections, each starting at a multiple of 32 bytes.  ``pack_weights`` builds the canonical image,
``parse_weights`` checks every consistency rule of section 3 (raising `FormatError` with a
stable `FormatErrorCode` that the hardware mirrors; the checks live in `golden.format_check`)
and ``golden.format_check.unpack_weights`` returns the int8 matrix.  Pure NumPy; no hardware
imports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = ["pack_weights", "packed_size", "PackedWeights",
           "FormatError", "FormatErrorCode", "FormatCode", "FORMAT_CODES", "MAGIC",
           "HEADER_BYTES", "ALIGN", "GROUP_SIZES", "BLOCK_SIZES", "NM_MS"]

MAGIC = 0x574D5053  # "SPMW" little-endian
HEADER_BYTES = 32
ALIGN = 32


class FormatCode(enum.IntEnum):
    """Format code of a weight image header (byte 4) and of a descriptor's ``format`` field."""

    DENSE = 0
    BITMAP = 1
    BLOCK = 2
    NM = 3


#: ``{name: code}`` (plain ints) of `FormatCode`, in code order.
FORMAT_CODES = {f.name.lower(): int(f) for f in FormatCode}
_FORMAT_NAMES = {v: k for k, v in FORMAT_CODES.items()}
GROUP_SIZES = (8, 16, 32)
BLOCK_SIZES = (2, 4, 8, 16)
NM_MS = (2, 4, 8, 16, 32)
_U32_MAX = 2**32 - 1


class FormatErrorCode(enum.IntEnum):
    """Stable error codes of image validation (the hardware status register mirrors them)."""

    OK = 0
    BAD_MAGIC = 1       #: header magic is not ``0x574D5053``
    BAD_FORMAT = 2      #: unknown format code
    BAD_PARAM = 3       #: G / B / N:M / reserved byte not allowed for the format
    BAD_SHAPE = 4       #: rows or cols is zero (or too many block columns for u16)
    BAD_SIZE = 5        #: image shorter than the header, ``total`` not a multiple of 32 or
    #: different from the image length
    BAD_SECTION = 6     #: section offset misaligned, out of order, outside ``total`` or too small
    BAD_PTR = 7         #: row_ptr / blk_ptr not starting at 0, decreasing, or past the stored data
    BAD_MASK_COUNT = 8  #: popcount of a row's masks differs from its row_ptr difference
    BAD_INDEX = 9       #: blk_col out of range / not increasing; nm index >= M / not increasing
    BAD_PAD = 10        #: non-zero padding (mask bits, block values or nm values past M or K)


class FormatError(ValueError):
    """A weight image breaks a rule of docs/spec.md section 3.

    Members
    -------
    code : FormatErrorCode
        Stable code, mirrored by the hardware.
    """

    def __init__(self, code: FormatErrorCode, msg: str):
        self.code = FormatErrorCode(code)
        self.msg = msg
        super().__init__(f"{self.code.name}: {msg}")

    def __reduce__(self):  # picklable (pytest-xdist)
        return (type(self), (self.code, self.msg))


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _check_params(fmt, group_size, block_size, nm) -> tuple[int, int]:
    """Return the header (param_a, param_b) of a format, validating its parameters."""
    if fmt not in FORMAT_CODES:
        raise ValueError(f"fmt must be one of {tuple(FORMAT_CODES)}, not {fmt!r}")
    if fmt == "bitmap":
        if group_size not in GROUP_SIZES:
            raise ValueError(f"group_size must be one of {GROUP_SIZES}, not {group_size!r}")
        return group_size, 0
    if fmt == "block":
        if block_size not in BLOCK_SIZES:
            raise ValueError(f"block_size must be one of {BLOCK_SIZES}, not {block_size!r}")
        return block_size, 0
    if fmt == "nm":
        try:
            n, m = (int(v) for v in nm)
        except (TypeError, ValueError):
            raise ValueError(f"nm must be a pair (N, M), not {nm!r}") from None
        if m not in NM_MS:
            raise ValueError(f"nm M must be a power of two in 2..32, not {m!r}")
        if not 1 <= n <= m:
            raise ValueError(f"nm N must be between 1 and M={m}, not {n!r}")
        return n, m
    return 0, 0


def _section_sizes(fmt, shape, a, b, stored) -> tuple[int, int, int]:
    """Byte sizes of sections A, B, C; ``stored`` = nnz (bitmap) or stored blocks (block)."""
    rows, cols = shape
    if fmt == "dense":
        return rows * cols, 0, 0
    if fmt == "bitmap":
        return 4 * (rows + 1), rows * _cdiv(cols, a) * (a // 8), stored
    if fmt == "block":
        return 4 * (_cdiv(rows, a) + 1), 2 * stored, stored * a * a
    slots = rows * _cdiv(cols, b) * a
    return slots, slots, 0


def _layout(fmt, sizes) -> tuple[int, int, int, int]:
    """Canonical section offsets and total for section byte sizes (unused sections = total)."""
    used = {"dense": 1, "bitmap": 3, "block": 3, "nm": 2}[fmt]
    offs, pos = [], HEADER_BYTES
    for i in range(used):
        offs.append(pos)
        pos = _align(pos + sizes[i])
    offs += [pos] * (3 - used)
    return offs[0], offs[1], offs[2], pos


def packed_size(fmt: str, shape, *, nnz: int = 0, nnz_blocks: int = 0, group_size: int = 16,
                block_size: int = 8, nm=(2, 4)) -> int:
    """Bytes of the canonical image of ``fmt`` without building it (for fast sweeps).

    ``nnz`` (bitmap: non-zero weights) and ``nnz_blocks`` (block: stored blocks) are the only
    data-dependent quantities; dense and nm sizes depend on the shape alone.
    """
    a, b = _check_params(fmt, group_size, block_size, nm)
    stored = nnz if fmt == "bitmap" else nnz_blocks
    return _layout(fmt, _section_sizes(fmt, tuple(shape), a, b, stored))[3]


@dataclass(frozen=True, eq=False)
class PackedWeights:
    """A validated weight image and typed views of its sections (docs/spec.md section 3).

    Members
    -------
    image : numpy.ndarray
        The whole image, read-only ``uint8`` (``image.tobytes()`` is what goes to memory).
    fmt : str
        ``"dense"``, ``"bitmap"``, ``"block"`` or ``"nm"``.
    shape : tuple of int
        ``(M, K)`` of the unpacked matrix.
    param_a, param_b : int
        Header parameters: G (bitmap), B (block), N and M (nm).
    sec_a, sec_b, sec_c : int
        Section byte offsets (unused sections point at ``nbytes``).
    nnz : int
        Non-zero weights of the matrix.
    stored : int
        Stored entries: nnz (bitmap), stored blocks (block), value slots (nm), M*K (dense).
    """

    image: np.ndarray
    fmt: str
    shape: tuple[int, int]
    param_a: int
    param_b: int
    sec_a: int
    sec_b: int
    sec_c: int
    nnz: int
    stored: int

    @property
    def nbytes(self) -> int:
        """Image size in bytes (header ``total``)."""
        return int(self.image.size)

    @property
    def group_size(self) -> int | None:
        return self.param_a if self.fmt == "bitmap" else None

    @property
    def block_size(self) -> int | None:
        return self.param_a if self.fmt == "block" else None

    @property
    def nm(self) -> tuple[int, int] | None:
        return (self.param_a, self.param_b) if self.fmt == "nm" else None

    @property
    def ngroups(self) -> int:
        """Groups per row (bitmap: ceil(K/G), nm: ceil(K/M)), or block columns (block)."""
        div = {"bitmap": self.param_a, "block": self.param_a, "nm": self.param_b}.get(self.fmt, 1)
        return _cdiv(self.shape[1], div)

    def _sec(self, start: int, nbytes: int, dtype) -> np.ndarray:
        return self.image[start:start + nbytes].view(dtype)

    def _need(self, *fmts):
        if self.fmt not in fmts:
            raise AttributeError(f"format {self.fmt!r} has no such section (only {fmts})")

    @property
    def header(self) -> bytes:
        return self.image[:HEADER_BYTES].tobytes()

    @property
    def row_ptr(self) -> np.ndarray:
        """bitmap: ``M + 1`` uint32 offsets of each row's first value."""
        self._need("bitmap")
        return self._sec(self.sec_a, 4 * (self.shape[0] + 1), "<u4")

    @property
    def mask_bytes(self) -> np.ndarray:
        """bitmap: ``(M, ngroups, G/8)`` uint8 mask bytes as stored."""
        self._need("bitmap")
        nb = self.param_a // 8
        m = self._sec(self.sec_b, self.shape[0] * self.ngroups * nb, np.uint8)
        return m.reshape(self.shape[0], self.ngroups, nb)

    @property
    def masks(self) -> np.ndarray:
        """bitmap: ``(M, ngroups)`` integer masks (bit i = element g*G + i is non-zero)."""
        mb = self.mask_bytes.astype(np.uint64)
        weights = np.uint64(1) << (np.uint64(8) * np.arange(mb.shape[-1], dtype=np.uint64))
        return (mb * weights).sum(axis=-1).astype(np.uint32)

    @property
    def blk_ptr(self) -> np.ndarray:
        """block: ``ceil(M/B) + 1`` uint32 offsets of each block row's first stored block."""
        self._need("block")
        return self._sec(self.sec_a, 4 * (_cdiv(self.shape[0], self.param_a) + 1), "<u4")

    @property
    def blk_col(self) -> np.ndarray:
        """block: uint16 block column of each stored block."""
        self._need("block")
        return self._sec(self.sec_b, 2 * self.stored, "<u2")

    @property
    def indices(self) -> np.ndarray:
        """nm: ``(M, ngroups, N)`` uint8 in-group indices."""
        self._need("nm")
        shp = (self.shape[0], self.ngroups, self.param_a)
        return self._sec(self.sec_b, int(np.prod(shp)), np.uint8).reshape(shp)

    @property
    def values(self) -> np.ndarray:
        """int8 values: dense ``(M, K)``, bitmap ``(nnz,)``, block ``(nnzb, B, B)``,
        nm ``(M, ngroups, N)``."""
        if self.fmt == "dense":
            return self._sec(self.sec_a, self.shape[0] * self.shape[1], np.int8).reshape(
                self.shape)
        if self.fmt == "bitmap":
            return self._sec(self.sec_c, self.stored, np.int8)
        if self.fmt == "block":
            b = self.param_a
            return self._sec(self.sec_c, self.stored * b * b, np.int8).reshape(-1, b, b)
        shp = (self.shape[0], self.ngroups, self.param_a)
        return self._sec(self.sec_a, int(np.prod(shp)), np.int8).reshape(shp)

    def unpack(self) -> np.ndarray:
        """The int8 matrix ``W[M, K]`` (no validation: built by `pack_weights` or
        `parse_weights`)."""
        return _decode(self)


def _as_int8_matrix(W) -> np.ndarray:
    W = np.asarray(W)
    if W.dtype == bool or not np.issubdtype(W.dtype, np.integer):
        raise TypeError(f"W must be an integer array, not dtype {W.dtype}")
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (M, K), not shape {W.shape!r}")
    if W.shape[0] < 1 or W.shape[1] < 1 or max(W.shape) > _U32_MAX:
        raise ValueError(f"W must have 1..2**32-1 rows and columns, not shape {W.shape!r}")
    if W.size and (W.min() < -128 or W.max() > 127):
        raise ValueError(f"W values must be int8 (-128..127), not range "
                         f"[{int(W.min())}, {int(W.max())}]")
    return W.astype(np.int8)


def _pad_to(W: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return np.pad(W, ((0, rows - W.shape[0]), (0, cols - W.shape[1])))


def pack_weights(W, fmt: str, *, group_size: int = 16, block_size: int = 8,
                 nm=(2, 4)) -> PackedWeights:
    """Pack an int8 matrix into the canonical image of ``fmt`` (docs/spec.md section 3).

    Parameters
    ----------
    W : array_like of int, shape (M, K)
        Values in -128..127.
    fmt : {"dense", "bitmap", "block", "nm"}
    group_size : int
        ``G`` of ``bitmap`` (8, 16, 32).
    block_size : int
        ``B`` of ``block`` (2, 4, 8, 16).
    nm : (int, int)
        ``(N, M)`` of ``nm``; ``M`` a power of two in 2..32, ``1 <= N <= M``.

    Raises
    ------
    TypeError
        ``W`` is not an integer array.
    ValueError
        Bad parameter, bad shape, values outside int8, or a matrix that does not fit the format
        (an nm group with more than N non-zeros; more than 65536 block columns).
    """
    W = _as_int8_matrix(W)
    a, b = _check_params(fmt, group_size, block_size, nm)
    rows, cols = W.shape
    nnz = int(np.count_nonzero(W))
    if fmt == "dense":
        secs = [W.view(np.uint8).ravel()]
        stored = rows * cols
    elif fmt == "bitmap":
        ng = _cdiv(cols, a)
        nz = _pad_to(W, rows, ng * a).reshape(rows, ng, a) != 0
        masks = np.packbits(nz, axis=-1, bitorder="little")
        row_ptr = np.concatenate([[0], np.cumsum(nz.sum(axis=(1, 2)))]).astype("<u4")
        secs = [row_ptr.view(np.uint8), masks.ravel(), W[W != 0].view(np.uint8)]
        stored = nnz
    elif fmt == "block":
        nbr, nbc = _cdiv(rows, a), _cdiv(cols, a)
        if nbc > 1 << 16:
            raise ValueError(f"block format holds at most 65536 block columns (u16 blk_col), "
                             f"not {nbc} (K={cols}, B={a})")
        blocks = _pad_to(W, nbr * a, nbc * a).reshape(nbr, a, nbc, a).transpose(0, 2, 1, 3)
        nzb = blocks.any(axis=(2, 3))
        blk_ptr = np.concatenate([[0], np.cumsum(nzb.sum(axis=1))]).astype("<u4")
        blk_col = np.nonzero(nzb)[1].astype("<u2")
        secs = [blk_ptr.view(np.uint8), blk_col.view(np.uint8),
                np.ascontiguousarray(blocks[nzb]).view(np.uint8).ravel()]
        stored = int(nzb.sum())
    else:
        n, m = a, b
        ng = _cdiv(cols, m)
        groups = _pad_to(W, rows, ng * m).reshape(rows, ng, m)
        counts = np.count_nonzero(groups, axis=-1)
        if np.any(counts > n):
            r, g = (int(v) for v in np.argwhere(counts > n)[0])
            raise ValueError(f"W does not fit nm {n}:{m}: row {r} group {g} (columns {g * m}.."
                             f"{min(g * m + m, cols) - 1}) has {int(counts[r, g])} non-zeros, "
                             f"more than N={n}")
        pos = np.arange(m, dtype=np.int64)
        key = np.where(groups != 0, pos, m + pos)  # non-zeros first, then smallest free indices
        idx = np.sort(np.argsort(key, axis=-1, kind="stable")[..., :n], axis=-1)
        vals = np.take_along_axis(groups, idx, axis=-1)
        secs = [vals.view(np.uint8).ravel(), idx.astype(np.uint8).ravel()]
        stored = rows * ng * n
    sizes = [s.size for s in secs] + [0] * (3 - len(secs))
    sec_a, sec_b, sec_c, total = _layout(fmt, sizes)
    image = np.zeros(total, dtype=np.uint8)
    hdr = np.array([MAGIC, 0, rows, cols, sec_a, sec_b, sec_c, total], dtype="<u4")
    image[:HEADER_BYTES] = hdr.view(np.uint8)
    image[4:8] = (FORMAT_CODES[fmt], a, b, 0)
    for off, s in zip((sec_a, sec_b, sec_c), secs):
        image[off:off + s.size] = s
    image.flags.writeable = False
    return PackedWeights(image, fmt, (rows, cols), a, b, sec_a, sec_b, sec_c, nnz, stored)


def _decode(pw: PackedWeights) -> np.ndarray:
    rows, cols = pw.shape
    if pw.fmt == "dense":
        return pw.values.copy()
    if pw.fmt == "bitmap":
        bits = np.unpackbits(pw.mask_bytes, axis=-1, bitorder="little").reshape(rows, -1)
        W = np.zeros(bits.shape, dtype=np.int8)
        W[bits.astype(bool)] = pw.values  # row-major order, as packed
        return W[:, :cols]
    if pw.fmt == "block":
        b = pw.param_a
        nbr, nbc = _cdiv(rows, b), _cdiv(cols, b)
        blocks = np.zeros((nbr, nbc, b, b), dtype=np.int8)
        brow = np.repeat(np.arange(nbr), np.diff(pw.blk_ptr.astype(np.int64)))
        blocks[brow, pw.blk_col.astype(np.int64)] = pw.values
        return blocks.transpose(0, 2, 1, 3).reshape(nbr * b, nbc * b)[:rows, :cols].copy()
    m = pw.param_b
    ng = pw.ngroups
    W = np.zeros((rows, ng, m), dtype=np.int8)
    np.put_along_axis(W, pw.indices.astype(np.int64), pw.values, axis=-1)
    return W.reshape(rows, ng * m)[:, :cols].copy()
