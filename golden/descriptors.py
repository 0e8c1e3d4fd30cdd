"""Layer descriptors: pack, unpack and validate (docs/spec.md section 8).

One 64-byte little-endian descriptor per layer tells the accelerator what to run: the opcode,
the weight format and its parameters, the shapes, five buffer offsets and the fusion flags.
This module encodes and decodes them (and builds them per op); the rules a descriptor must meet
live in :mod:`golden.desc_rules`.  Pure Python (``struct``); no hardware imports.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import astuple, dataclass, fields

from .formats import FORMAT_CODES, HEADER_BYTES, FormatErrorCode

__all__ = ["ErrorCode", "Descriptor", "Opcode", "Flags", "DESC_BYTES", "DESC_MAGIC",
           "QUANT_RECORD_BYTES", "LUT_BYTES", "pack_descriptor", "unpack_descriptor",
           "matmul_descriptor", "conv2d_descriptor", "buffer_sizes", "HW_OPS",
           "maxpool2d_descriptor", "avgpool2d_descriptor", "global_avgpool_descriptor",
           "add_descriptor", "depthwise_conv2d_descriptor", "ADD_QUANT_BYTES"]

DESC_BYTES = 64
DESC_MAGIC = 0x444D5053  # "SPMD" little-endian
#: Bytes per output channel in the bias/requant table: bias i32, mult i32, shift u8, 7 zero bytes.
QUANT_RECORD_BYTES = 16
#: Bytes of an activation table (256 int8 entries).
LUT_BYTES = 256
_SHAPE_MAX = 2**31 - 1

_STRUCT = struct.Struct("<IBBBBHHIIIIIIIIHHHBBBBBBBBHI")
assert _STRUCT.size == DESC_BYTES


class ErrorCode(enum.IntEnum):
    """Error codes the accelerator reports in ``STATUS.error_code`` (docs/spec.md section 8).

    Codes 1..10 mirror :class:`golden.formats.FormatErrorCode` (weight-image checks), 16..31 are
    descriptor and DMA-command checks, 32..47 bus faults.  Where several rules break, the
    lowest-numbered check in the order of :func:`validate_descriptor` is reported.
    """

    OK = 0
    # -- weight image (mirror golden.formats.FormatErrorCode) ---------------------------------
    BAD_MAGIC = 1        #: weight image magic is not ``"SPMW"``
    BAD_FORMAT = 2       #: unknown format code (image header or descriptor)
    BAD_PARAM = 3        #: G / B / N:M not allowed for the format (image header or descriptor)
    BAD_SHAPE = 4        #: a zero, negative or inconsistent shape (image header or descriptor)
    BAD_SIZE = 5         #: image ``total`` broken
    BAD_SECTION = 6      #: image section offsets broken
    BAD_PTR = 7          #: row_ptr / blk_ptr broken
    BAD_MASK_COUNT = 8   #: bitmap popcount differs from row_ptr
    BAD_INDEX = 9        #: block column / nm index out of range or not increasing
    BAD_PAD = 10         #: non-zero padding
    # -- descriptors and DMA commands ---------------------------------------------------------
    BAD_DESC_MAGIC = 16  #: descriptor magic is not ``"SPMD"``
    BAD_OPCODE = 17      #: unknown opcode
    FORMAT_UNSUPPORTED = 18  #: format code known but not built into this accelerator
    BAD_FLAGS = 19       #: reserved flag bits / fields non-zero, or LUT without REQUANT / LUT
    MISALIGNED = 20      #: an address or a length is not a multiple of the AXI beat bytes
    OUT_OF_WINDOW = 21   #: a buffer is not inside the memory window
    DESC_COUNT = 22      #: descriptor count zero or the table runs past the memory window
    BAD_LENGTH = 23      #: a DMA command of zero bytes
    # -- bus faults ---------------------------------------------------------------------------
    AXI_SLVERR = 32      #: a read or write answered SLVERR
    AXI_DECERR = 33      #: a read or write answered DECERR
    WATCHDOG = 34        #: no bus progress for ``watchdog_cycles`` cycles


for _c in FormatErrorCode:  # the mirror is checked at import, so it can never drift
    assert ErrorCode[_c.name] == _c.value, _c


class Opcode(enum.IntEnum):
    """Layer operation (docs/spec.md sections 2 and 8.2).

    Which of them an accelerator runs is its config's ``ops`` (default `HW_OPS`: the generated
    hardware runs matmul and conv2d; the others are refused with ``BAD_OPCODE``)."""

    MATMUL = 0
    CONV2D = 1
    MAXPOOL2D = 2
    AVGPOOL2D = 3
    GLOBAL_AVGPOOL = 4
    ADD = 5
    DEPTHWISE_CONV2D = 6


#: The operations the generated hardware runs (`Opcode` names in lower case); a config object
#: without an ``ops`` attribute builds these.
HW_OPS = ("matmul", "conv2d")
_POOLS = (Opcode.MAXPOOL2D, Opcode.AVGPOOL2D)
_NO_WEIGHTS = (Opcode.MAXPOOL2D, Opcode.AVGPOOL2D, Opcode.GLOBAL_AVGPOOL, Opcode.ADD)
_CONVS = (Opcode.CONV2D, Opcode.DEPTHWISE_CONV2D)
#: Pool kernel and stride limits (docs/spec.md section 2.3) and the global pool's largest H*W.
POOL_GEO_MAX = 16
GLOBAL_POOL_MAX = 65536


class Flags(enum.IntFlag):
    """Fusion flags of a descriptor."""

    REQUANT = 1     #: add bias and requantize to int8 (else write int32 accumulators)
    LUT = 2         #: apply the activation table after requantization (needs REQUANT)
    ACCUMULATE = 4  #: start from the previous descriptor's accumulators (split K)
    IRQ = 8         #: raise IRQ_STATUS.desc_done when this descriptor completes
    INCLUDE_PAD = 16  #: avgpool2d: padding positions count (``count_include_pad``)
    #: read the activation table and requant records after the weight image bodies, while the
    #: tiles compute (needs REQUANT; a schedule only: the results are the same either way)
    LATE_TABLES = 32


_FLAGS_ALL = int(Flags.REQUANT | Flags.LUT | Flags.ACCUMULATE | Flags.IRQ | Flags.INCLUDE_PAD
                 | Flags.LATE_TABLES)
#: Bytes of an add's requant records: ``(bias, mult_a, shift_a)`` and ``(0, mult_b, shift_b)``.
ADD_QUANT_BYTES = 2 * QUANT_RECORD_BYTES


@dataclass(frozen=True)
class Descriptor:
    """Field-by-field view of one descriptor (offsets in docs/spec.md section 8).

    Buffer fields (``weights``, ``acts``, ``out``, ``quant``, ``lut``) are byte offsets from the
    memory window base (``MEM_BASE`` register).  For ``matmul`` the conv fields are 0; for
    ``conv2d`` ``m``/``k``/``n`` are the lowered matmul shapes ``Kout``, ``C*KH*KW``, ``OH*OW``.
    """

    magic: int = DESC_MAGIC
    opcode: int = Opcode.MATMUL
    format: int = 0
    param_a: int = 0
    param_b: int = 0
    flags: int = 0
    reserved0: int = 0
    weights: int = 0
    acts: int = 0
    out: int = 0
    quant: int = 0
    lut: int = 0
    m: int = 0
    k: int = 0
    n: int = 0
    c: int = 0
    h: int = 0
    w: int = 0
    kh: int = 0
    kw: int = 0
    stride_h: int = 0
    stride_w: int = 0
    pad_h: int = 0
    pad_w: int = 0
    dil_h: int = 0
    dil_w: int = 0
    col_split: int = 0
    reserved2: int = 0

    def pack(self) -> bytes:
        """The 64-byte image.

        Raises
        ------
        ValueError
            A field does not fit its width (for example a negative shape).
        """
        return pack_descriptor(self)

    def replace(self, **changes) -> Descriptor:
        vals = {f.name: getattr(self, f.name) for f in fields(self)}
        vals.update(changes)
        return Descriptor(**vals)

    @property
    def oh(self) -> int:
        """Output height of a conv2d (may be <= 0 for a broken descriptor)."""
        return (self.h + 2 * self.pad_h - self.dil_h * (self.kh - 1) - 1) // max(
            self.stride_h, 1) + 1

    @property
    def ow(self) -> int:
        return (self.w + 2 * self.pad_w - self.dil_w * (self.kw - 1) - 1) // max(
            self.stride_w, 1) + 1


_WIDTHS = dict(zip((f.name for f in fields(Descriptor)), (
    32, 8, 8, 8, 8, 16, 16, 32, 32, 32, 32, 32, 32, 32, 32, 16, 16, 16,
    8, 8, 8, 8, 8, 8, 8, 8, 16, 32)))


def pack_descriptor(desc: Descriptor) -> bytes:
    """Pack ``desc`` into 64 little-endian bytes (see :meth:`Descriptor.pack`)."""
    for name, width in _WIDTHS.items():
        v = getattr(desc, name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an integer, not {v!r}")
        if not 0 <= v < (1 << width):
            raise ValueError(f"{name} must be between 0 and {(1 << width) - 1}, not {v!r}")
    return _STRUCT.pack(*(int(v) for v in astuple(desc)))


def unpack_descriptor(raw) -> Descriptor:
    """Decode 64 bytes (never fails on content: use :func:`validate_descriptor`).

    Raises
    ------
    ValueError
        ``raw`` is not exactly 64 bytes.
    """
    raw = bytes(raw)
    if len(raw) != DESC_BYTES:
        raise ValueError(f"descriptor must be {DESC_BYTES} bytes, not {len(raw)!r}")
    return Descriptor(*_STRUCT.unpack(raw))


def _format_fields(fmt: str, group_size: int, block_size: int, nm: tuple[int, int]):
    if fmt not in FORMAT_CODES:
        raise ValueError(f"fmt must be one of {', '.join(FORMAT_CODES)}, not {fmt!r}")
    a, b = {"dense": (0, 0), "bitmap": (group_size, 0), "block": (block_size, 0),
            "nm": tuple(nm)}[fmt]
    return FORMAT_CODES[fmt], a, b


def matmul_descriptor(*, m: int, k: int, n: int, fmt: str = "dense", weights: int = 0,
                      acts: int = 0, out: int = 0, quant: int = 0, lut: int = 0,
                      flags: int = Flags.REQUANT, group_size: int = 16, block_size: int = 8,
                      nm: tuple[int, int] = (2, 4)) -> Descriptor:
    """Descriptor of ``Y[m, n] = W[m, k] @ X[k, n]`` (docs/spec.md section 2.1)."""
    code, a, b = _format_fields(fmt, group_size, block_size, nm)
    return Descriptor(opcode=Opcode.MATMUL, format=code, param_a=a, param_b=b, flags=int(flags),
                      weights=weights, acts=acts, out=out, quant=quant, lut=lut, m=m, k=k, n=n)


def conv2d_descriptor(*, c: int, h: int, w: int, kout: int, kh: int, kw: int,
                      stride=(1, 1), pad=(0, 0), dilation=(1, 1), fmt: str = "dense",
                      weights: int = 0, acts: int = 0, out: int = 0, quant: int = 0,
                      lut: int = 0, flags: int = Flags.REQUANT, group_size: int = 16,
                      block_size: int = 8, nm: tuple[int, int] = (2, 4)) -> Descriptor:
    """Descriptor of an NCHW conv2d (docs/spec.md section 2.2), lowered shapes filled in."""
    code, a, b = _format_fields(fmt, group_size, block_size, nm)
    d = Descriptor(opcode=Opcode.CONV2D, format=code, param_a=a, param_b=b, flags=int(flags),
                   weights=weights, acts=acts, out=out, quant=quant, lut=lut,
                   c=c, h=h, w=w, kh=kh, kw=kw, stride_h=stride[0], stride_w=stride[1],
                   pad_h=pad[0], pad_w=pad[1], dil_h=dilation[0], dil_w=dilation[1])
    return d.replace(m=kout, k=c * kh * kw, n=max(d.oh, 0) * max(d.ow, 0))


def _geo2(v, name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, not {v!r}")
    return t


def _pool_descriptor(op, *, c, h, w, kernel, stride, pad, acts, out, flags) -> Descriptor:
    (kh, kw), (sh, sw), (ph, pw) = (_geo2(kernel, "kernel"), _geo2(stride, "stride"),
                                    _geo2(pad, "pad"))
    d = Descriptor(opcode=op, flags=int(flags), acts=acts, out=out, c=c, h=h, w=w, kh=kh, kw=kw,
                   stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw, dil_h=1, dil_w=1)
    return d.replace(m=c, k=kh * kw, n=max(d.oh, 0) * max(d.ow, 0))


def maxpool2d_descriptor(*, c: int, h: int, w: int, kernel, stride, pad=0, acts: int = 0,
                         out: int = 0, flags: int = 0) -> Descriptor:
    """Descriptor of an int8 max pool (docs/spec.md sections 2.3 and 8.2): ``m = C``,
    ``k = KH*KW``, ``n = OH*OW``; ``kernel``, ``stride``, ``pad``: an int or ``(h, w)``."""
    return _pool_descriptor(Opcode.MAXPOOL2D, c=c, h=h, w=w, kernel=kernel, stride=stride,
                            pad=pad, acts=acts, out=out, flags=flags)


def avgpool2d_descriptor(*, c: int, h: int, w: int, kernel, stride, pad=0,
                         count_include_pad: bool, acts: int = 0, out: int = 0,
                         flags: int = 0) -> Descriptor:
    """Descriptor of an int8 average pool (sections 2.3 and 8.2); ``count_include_pad`` sets
    ``Flags.INCLUDE_PAD`` (no default: PyTorch and ONNX differ)."""
    flags = int(flags) | (int(Flags.INCLUDE_PAD) if count_include_pad else 0)
    return _pool_descriptor(Opcode.AVGPOOL2D, c=c, h=h, w=w, kernel=kernel, stride=stride,
                            pad=pad, acts=acts, out=out, flags=flags)


def global_avgpool_descriptor(*, c: int, h: int, w: int, acts: int = 0, out: int = 0,
                              flags: int = 0) -> Descriptor:
    """Descriptor of a global average pool (sections 2.3 and 8.2): ``m = C``, ``k = H*W``,
    ``n = 1``; the output is ``C`` int8 values."""
    return Descriptor(opcode=Opcode.GLOBAL_AVGPOOL, flags=int(flags), acts=acts, out=out, c=c,
                      h=h, w=w, m=c, k=h * w, n=1)


def add_descriptor(*, c: int, h: int, w: int, a: int = 0, b: int = 0, out: int = 0,
                   quant: int = 0, lut: int = 0, flags: int = Flags.REQUANT) -> Descriptor:
    """Descriptor of the requantized residual add ``y = act(requant_a(a) + requant_b(b))``
    (sections 2.4 and 8.2): input ``a`` at ``acts``, input ``b`` at ``weights``, two requant
    records at ``quant``; ``m = C``, ``k = 1``, ``n = H*W``."""
    return Descriptor(opcode=Opcode.ADD, flags=int(flags), weights=b, acts=a, out=out,
                      quant=quant, lut=lut, c=c, h=h, w=w, m=c, k=1, n=h * w)


def depthwise_conv2d_descriptor(*, c: int, h: int, w: int, kh: int, kw: int, stride=(1, 1),
                                pad=(0, 0), dilation=(1, 1), fmt: str = "dense",
                                weights: int = 0, acts: int = 0, out: int = 0, quant: int = 0,
                                lut: int = 0, flags: int = Flags.REQUANT, group_size: int = 16,
                                block_size: int = 8, nm: tuple[int, int] = (2, 4)) -> Descriptor:
    """Descriptor of a depthwise conv2d (sections 2.5 and 8.2): weights ``W[C, KH*KW]``,
    ``m = C``, ``k = KH*KW``, ``n = OH*OW``."""
    d = conv2d_descriptor(c=c, h=h, w=w, kout=c, kh=kh, kw=kw, stride=stride, pad=pad,
                          dilation=dilation, fmt=fmt, weights=weights, acts=acts, out=out,
                          quant=quant, lut=lut, flags=flags, group_size=group_size,
                          block_size=block_size, nm=nm)
    return d.replace(opcode=Opcode.DEPTHWISE_CONV2D, k=kh * kw)


def buffer_sizes(desc: Descriptor) -> dict[str, int]:
    """Bytes each buffer of ``desc`` occupies (0 for an unused one).

    ``weights`` counts only the 32-byte image header of a weight image (matmul, conv2d,
    depthwise): the image's ``total`` is checked against the window once the header has been
    read; an add's ``weights`` is its second input (``C*H*W`` bytes); pools read no weights.
    ``out`` holds int8 results with ``REQUANT`` (always for pools and add), else int32
    accumulators.
    """
    op = desc.opcode
    chw = desc.c * desc.h * desc.w
    requant = bool(desc.flags & Flags.REQUANT)
    if op in _NO_WEIGHTS:
        return {
            "weights": chw if op == Opcode.ADD else 0,
            "acts": chw,
            "out": desc.m * desc.n,
            "quant": ADD_QUANT_BYTES if op == Opcode.ADD else 0,
            "lut": LUT_BYTES if op == Opcode.ADD and desc.flags & Flags.LUT else 0,
        }
    return {
        "weights": HEADER_BYTES,
        "acts": desc.k * desc.n if op == Opcode.MATMUL else chw,
        "out": desc.m * desc.n * (1 if requant else 4),
        "quant": desc.m * QUANT_RECORD_BYTES if requant else 0,
        "lut": LUT_BYTES if desc.flags & Flags.LUT else 0,
    }
