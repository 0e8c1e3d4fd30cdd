"""The bias/requantization record of the ``quant`` buffer (docs/spec.md section 8).

One record per output channel, ``QUANT_RECORD_BYTES`` (16) bytes little-endian: bias i32,
mult i32, shift u8, then 7 padding bytes that must be zero.  This module owns the byte layout:
the compiler writes records with :func:`pack_quant_records` and the functional model reads them
with :func:`unpack_quant_records`.
"""

from __future__ import annotations

import struct

from .descriptors import QUANT_RECORD_BYTES

__all__ = ["QUANT_RECORD", "pack_quant_records", "unpack_quant_records"]

#: ``(bias, mult, shift, padding)`` of one record.
QUANT_RECORD = struct.Struct("<iiB7s")
assert QUANT_RECORD.size == QUANT_RECORD_BYTES


def pack_quant_records(bias, mult, shift) -> bytes:
    """The records of the channels ``zip(bias, mult, shift)`` (equal lengths), zero padded."""
    return b"".join(QUANT_RECORD.pack(int(b), int(m), int(s), bytes(7))
                    for b, m, s in zip(bias, mult, shift, strict=True))


def unpack_quant_records(image, offset: int, count: int) -> list[tuple[int, int, int, bytes]]:
    """``(bias, mult, shift, padding)`` of ``count`` records at byte ``offset`` of ``image``."""
    return [QUANT_RECORD.unpack_from(image, offset + QUANT_RECORD.size * c)
            for c in range(count)]
