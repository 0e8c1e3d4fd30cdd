"""Validation of sparse weight images: every consistency rule of docs/spec.md section 3.

Each broken rule raises `golden.formats.FormatError` with a stable `FormatErrorCode` (mirrored by
the hardware) and a message naming the field, its position and expected vs actual values.
Checks run in the order of the table in section 3: header, sizes, sections, pointers, masks,
indices, padding.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .formats import (
    _FORMAT_NAMES,
    ALIGN,
    HEADER_BYTES,
    MAGIC,
    FormatError,
    FormatErrorCode,
    PackedWeights,
    _cdiv,
    _check_params,
    _decode,
    _section_sizes,
)

__all__ = ["parse_weights", "unpack_weights", "check_header"]


def _fail(code, msg):
    raise FormatError(code, msg)


def _check_ptr(name: str, ptr: np.ndarray, capacity: int, what: str) -> int:
    ptr = ptr.astype(np.int64)
    if ptr[0] != 0:
        _fail(FormatErrorCode.BAD_PTR, f"{name}[0] must be 0, not {int(ptr[0])}")
    dec = np.nonzero(np.diff(ptr) < 0)[0]
    if dec.size:
        i = int(dec[0]) + 1
        _fail(FormatErrorCode.BAD_PTR, f"{name}[{i}] = {int(ptr[i])} is less than {name}[{i - 1}]"
              f" = {int(ptr[i - 1])} (must be non-decreasing)")
    if ptr[-1] > capacity:
        _fail(FormatErrorCode.BAD_PTR, f"{name}[{ptr.size - 1}] = {int(ptr[-1])} {what}, "
              f"but the sections hold at most {capacity}")
    return int(ptr[-1])


def parse_weights(image) -> PackedWeights:
    """Validate an image against every rule of docs/spec.md section 3.

    Parameters
    ----------
    image : bytes, bytearray, numpy.ndarray or PackedWeights
        An array is taken as its raw bytes (so an array of ``<u4`` memory words works too).

    Raises
    ------
    FormatError
        With ``.code`` the first broken rule, checked in the order of `FormatErrorCode`
        (header, sizes, sections, pointers, masks, indices, padding).
    """
    if isinstance(image, PackedWeights):
        image = image.image
    raw = image.tobytes() if isinstance(image, np.ndarray) else bytes(image)  # words -> LE bytes
    img = np.frombuffer(raw, dtype=np.uint8).copy()
    img.flags.writeable = False
    if img.size < HEADER_BYTES:
        _fail(FormatErrorCode.BAD_SIZE, f"image is {img.size} bytes, shorter than the "
              f"{HEADER_BYTES}-byte header")
    fmt, (rows, cols), a, b, (sec_a, sec_b, sec_c) = _header_rules(img[:HEADER_BYTES], img.size)
    pw = PackedWeights(img, fmt, (rows, cols), a, b, sec_a, sec_b, sec_c, 0, rows * cols)
    if fmt != "dense":
        pw = _CHECKS[fmt](pw)
    return replace(pw, nnz=int(np.count_nonzero(_decode(pw))))


def _header_rules(hdr: np.ndarray, size: int):
    """The rules of docs/spec.md section 3 that the 32-byte header ``hdr`` decides, for an
    image of ``size`` bytes (magic, format, parameters, shape, total, section offsets and
    fixed section sizes, in `FormatErrorCode` order); raises `FormatError`.  Returns
    ``(format name, (rows, cols), param_a, param_b, (sec_a, sec_b, sec_c))``."""
    magic, _, rows, cols, sec_a, sec_b, sec_c, total = (int(v) for v in
                                                        hdr.view("<u4"))
    code, a, b, reserved = (int(v) for v in hdr[4:8])
    if magic != MAGIC:
        _fail(FormatErrorCode.BAD_MAGIC, f"magic at offset 0 must be 0x{MAGIC:08X}, "
              f"not 0x{magic:08X}")
    if code not in _FORMAT_NAMES:
        _fail(FormatErrorCode.BAD_FORMAT, f"format at offset 4 must be one of 0..3, not {code}")
    fmt = _FORMAT_NAMES[code]
    if reserved != 0:
        _fail(FormatErrorCode.BAD_PARAM, f"reserved byte at offset 7 must be 0, not {reserved}")
    try:
        ea, eb = _check_params(fmt, a, a, (a, b))
    except ValueError as e:
        _fail(FormatErrorCode.BAD_PARAM, f"{fmt} header params (param_a={a}, param_b={b}): {e}")
    if (ea, eb) != (a, b):
        _fail(FormatErrorCode.BAD_PARAM, f"{fmt} header params must be ({ea}, {eb}), "
              f"not ({a}, {b})")
    if rows == 0 or cols == 0:
        _fail(FormatErrorCode.BAD_SHAPE, f"rows and cols must be non-zero, not ({rows}, {cols})")
    if fmt == "block" and _cdiv(cols, a) > 1 << 16:
        _fail(FormatErrorCode.BAD_SHAPE, f"block columns ceil(K/B) = {_cdiv(cols, a)} must be "
              f"at most 65536")
    if total % ALIGN or total != size or total < HEADER_BYTES:
        _fail(FormatErrorCode.BAD_SIZE, f"total at offset 28 = {total} must be a multiple of "
              f"{ALIGN}, at least {HEADER_BYTES} and equal the image length {size}")
    offs = {"sec_a": sec_a, "sec_b": sec_b, "sec_c": sec_c}
    for name, off in offs.items():
        if off % ALIGN or not HEADER_BYTES <= off <= total:
            _fail(FormatErrorCode.BAD_SECTION, f"{name} = {off} must be a multiple of {ALIGN} "
                  f"in [{HEADER_BYTES}, total={total}]")
    if not sec_a <= sec_b <= sec_c:
        _fail(FormatErrorCode.BAD_SECTION, f"sections must be in order, not sec_a={sec_a}, "
              f"sec_b={sec_b}, sec_c={sec_c}")
    used = {"dense": 1, "bitmap": 3, "block": 3, "nm": 2}[fmt]
    for name in list(offs)[used:]:
        if offs[name] != total:
            _fail(FormatErrorCode.BAD_SECTION, f"unused {name} of {fmt} must equal total="
                  f"{total}, not {offs[name]}")
    ends = [sec_b, sec_c, total]
    fixed = _section_sizes(fmt, (rows, cols), a, b, 0)
    for i, name in enumerate(["A", "B", "C"][:used]):
        if fixed[i] > ends[i] - (sec_a, sec_b, sec_c)[i]:
            _fail(FormatErrorCode.BAD_SECTION, f"section {name} of {fmt} needs at least "
                  f"{fixed[i]} bytes, but has {ends[i] - (sec_a, sec_b, sec_c)[i]}")
    return fmt, (rows, cols), a, b, (sec_a, sec_b, sec_c)


def check_header(header) -> None:
    """Check a weight image header alone (the first 32 bytes), as the hardware's header
    checker does before the body streams: every rule `parse_weights` applies to the header,
    with ``total`` taken as the image length.  Raises `FormatError`."""
    raw = bytes(header)[:HEADER_BYTES]
    if len(raw) < HEADER_BYTES:
        _fail(FormatErrorCode.BAD_SIZE, f"header is {len(raw)} bytes, not {HEADER_BYTES}")
    hdr = np.frombuffer(raw, dtype=np.uint8)
    _header_rules(hdr, int(hdr[28:32].view("<u4")[0]))


def _check_bitmap(pw: PackedWeights) -> PackedWeights:
    (rows, cols), g = pw.shape, pw.param_a
    pw = replace(pw, stored=_check_ptr("row_ptr", pw.row_ptr, pw.nbytes - pw.sec_c,
                                       "non-zero values"))
    bits = np.unpackbits(pw.mask_bytes, axis=-1, bitorder="little").reshape(rows, -1)
    if bits[:, cols:].any():
        r, c = (int(v) + cols * i for i, v in enumerate(np.argwhere(bits[:, cols:])[0]))
        _fail(FormatErrorCode.BAD_PAD, f"mask bit of row {r} column {c} (group {c // g}, bit "
              f"{c % g}) is past K={cols} and must be 0")
    counts = bits.sum(axis=1, dtype=np.int64)
    diffs = np.diff(pw.row_ptr.astype(np.int64))
    bad = np.nonzero(counts != diffs)[0]
    if bad.size:
        r = int(bad[0])
        _fail(FormatErrorCode.BAD_MASK_COUNT, f"popcount of row {r} masks is {int(counts[r])}, "
              f"expected row_ptr[{r + 1}] - row_ptr[{r}] = {int(diffs[r])}")
    return pw


def _check_block(pw: PackedWeights) -> PackedWeights:
    (rows, cols), b = pw.shape, pw.param_a
    nbc = _cdiv(cols, b)
    ptr = pw.blk_ptr.astype(np.int64)
    cap = min((pw.sec_c - pw.sec_b) // 2, (pw.nbytes - pw.sec_c) // (b * b))
    pw = replace(pw, stored=_check_ptr("blk_ptr", ptr, cap, "stored blocks"))
    col = pw.blk_col.astype(np.int64)
    if col.size and col.max() >= nbc:
        i = int(np.argmax(col >= nbc))
        _fail(FormatErrorCode.BAD_INDEX, f"blk_col[{i}] = {int(col[i])} must be less than "
              f"ceil(K/B) = {nbc}")
    brow = np.repeat(np.arange(ptr.size - 1), np.diff(ptr))
    bad = np.nonzero((np.diff(col) <= 0) & (np.diff(brow) == 0))[0]
    if bad.size:
        i = int(bad[0]) + 1
        _fail(FormatErrorCode.BAD_INDEX, f"blk_col[{i}] = {int(col[i])} must be greater than "
              f"blk_col[{i - 1}] = {int(col[i - 1])} (same block row {int(brow[i])})")
    vals = pw.values
    rr = brow[:, None] * b + np.arange(b)[None, :]  # (nnzb, B) matrix rows / columns
    cc = col[:, None] * b + np.arange(b)[None, :]
    bad = ((rr[:, :, None] >= rows) | (cc[:, None, :] >= cols)) & (vals != 0)
    if bad.any():
        i, r, c = (int(v) for v in np.argwhere(bad)[0])
        _fail(FormatErrorCode.BAD_PAD, f"block {i} (block row {int(brow[i])}, blk_col "
              f"{int(col[i])}) element ({r}, {c}) is past M={rows} or K={cols} and must be 0, "
              f"not {int(vals[i, r, c])}")
    return pw


def _check_nm(pw: PackedWeights) -> PackedWeights:
    (rows, cols), m = pw.shape, pw.param_b
    pw = replace(pw, stored=rows * pw.ngroups * pw.param_a)
    idx = pw.indices.astype(np.int64)
    if idx.max() >= m:
        r, g, s = (int(v) for v in np.argwhere(idx >= m)[0])
        _fail(FormatErrorCode.BAD_INDEX, f"nm index of row {r} group {g} slot {s} is "
              f"{int(idx[r, g, s])}, must be less than M={m}")
    if np.any(np.diff(idx, axis=-1) <= 0):
        r, g, s = (int(v) for v in np.argwhere(np.diff(idx, axis=-1) <= 0)[0])
        _fail(FormatErrorCode.BAD_INDEX, f"nm indices of row {r} group {g} must be strictly "
              f"increasing, not {idx[r, g].tolist()} (slot {s + 1})")
    col = np.arange(idx.shape[1])[None, :, None] * m + idx
    bad = (col >= cols) & (pw.values != 0)
    if bad.any():
        r, g, s = (int(v) for v in np.argwhere(bad)[0])
        _fail(FormatErrorCode.BAD_PAD, f"nm slot {s} of row {r} group {g} points past K={cols} "
              f"(column {int(col[r, g, s])}) and must hold 0, not {int(pw.values[r, g, s])}")
    return pw


_CHECKS = {"bitmap": _check_bitmap, "block": _check_block, "nm": _check_nm}


def unpack_weights(image) -> np.ndarray:
    """Validate an image (see `parse_weights`) and return the int8 matrix ``W[M, K]``.

    Raises
    ------
    FormatError
        The image breaks a rule of docs/spec.md section 3; ``.code`` says which.
    """
    return parse_weights(image).unpack()
