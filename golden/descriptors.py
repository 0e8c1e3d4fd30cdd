"""Layer descriptors: pack, unpack and validate (docs/spec.md section 8).

One 64-byte little-endian descriptor per layer tells the accelerator what to run: the opcode,
the weight format and its parameters, the shapes, five buffer offsets and the fusion flags.
:func:`validate_descriptor` returns the :class:`ErrorCode` the hardware must report for a
descriptor (``ErrorCode.OK`` when it is runnable), checking the rules in a fixed order so golden
and hardware agree on *which* error is reported.  Pure Python (``struct``); no hardware imports.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import astuple, dataclass, fields

from .formats import FORMAT_CODES, HEADER_BYTES, FormatErrorCode

__all__ = ["ErrorCode", "Descriptor", "Opcode", "Flags", "DESC_BYTES", "DESC_MAGIC",
           "QUANT_RECORD_BYTES", "LUT_BYTES", "pack_descriptor", "unpack_descriptor",
           "matmul_descriptor", "conv2d_descriptor", "validate_descriptor",
           "validate_table", "buffer_sizes", "hardware_descriptor_code", "HW_DIM_MAX",
           "HW_GEO_MAX", "HW_FLAGS", "HW_OPS", "maxpool2d_descriptor", "avgpool2d_descriptor",
           "global_avgpool_descriptor", "add_descriptor", "depthwise_conv2d_descriptor",
           "ADD_QUANT_BYTES"]

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


_FLAGS_ALL = int(Flags.REQUANT | Flags.LUT | Flags.ACCUMULATE | Flags.IRQ | Flags.INCLUDE_PAD)
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


def _format_params_ok(code: int, a: int, b: int, cfg) -> bool:
    if code == 0:
        return a == 0 and b == 0
    if code == 1:
        return a == cfg.group_size and b == 0
    if code == 2:
        return a == cfg.block_size and b == 0
    return b in (2, 4, 8, 16, 32) and b <= cfg.nm_max_m and 1 <= a <= b


def validate_descriptor(desc, cfg, *, window_bytes: int) -> ErrorCode:
    """The error code the hardware reports for ``desc`` (``ErrorCode.OK`` if runnable).

    Checks, in this order (the first failing one is reported): magic (BAD_DESC_MAGIC), opcode
    known and built (BAD_OPCODE), format code 0..3 (BAD_FORMAT), format built in
    (FORMAT_UNSUPPORTED), format parameters match the build (BAD_PARAM; the opcodes without
    weights need format 0 and parameters 0, and have no FORMAT_UNSUPPORTED), flags, reserved
    and unused fields (BAD_FLAGS), shapes (BAD_SHAPE; also a ``col_split`` that is not
    a multiple of ``cols`` or leaves columns to no tile, section 8.1), buffer alignment to
    the AXI beat (MISALIGNED), buffers inside the window (OUT_OF_WINDOW).

    Parameters
    ----------
    desc : Descriptor or bytes
        The descriptor (64 raw bytes are unpacked first).
    cfg
        Any object with the ``hw.config.AcceleratorConfig`` attributes ``formats``,
        ``group_size``, ``block_size``, ``nm_max_m``, ``axi_data_width`` and ``lut_enabled``
        (and ``cols``, ``tiles`` for a descriptor with ``col_split``);
        optionally ``ops``, the operations built in (`Opcode` names in lower case; default
        `HW_OPS`): any other opcode is BAD_OPCODE.
    window_bytes : int
        Size of the memory window (``MEM_LIMIT - MEM_BASE``); offsets are relative to its base.
    """
    if not isinstance(desc, Descriptor):
        desc = unpack_descriptor(desc)
    E = ErrorCode
    if desc.magic != DESC_MAGIC:
        return E.BAD_DESC_MAGIC
    if (desc.opcode not in tuple(Opcode)
            or Opcode(desc.opcode).name.lower() not in tuple(getattr(cfg, "ops", HW_OPS))):
        return E.BAD_OPCODE
    op = Opcode(desc.opcode)
    if op in _NO_WEIGHTS:             # no weight image: no format, no format parameters
        if desc.format != 0:
            return E.BAD_FORMAT
        if desc.param_a or desc.param_b:
            return E.BAD_PARAM
    else:
        names = {v: k for k, v in FORMAT_CODES.items()}
        if desc.format not in names:
            return E.BAD_FORMAT
        if names[desc.format] not in tuple(cfg.formats):
            return E.FORMAT_UNSUPPORTED
        if not _format_params_ok(desc.format, desc.param_a, desc.param_b, cfg):
            return E.BAD_PARAM
    if _flags_broken(desc, op, cfg):
        return E.BAD_FLAGS
    if not all(1 <= v <= _SHAPE_MAX for v in (desc.m, desc.k, desc.n)):
        return E.BAD_SHAPE
    if op != Opcode.MATMUL and _shape_broken(desc, op):
        return E.BAD_SHAPE
    if desc.col_split and (desc.col_split % cfg.cols or desc.col_split * cfg.tiles < desc.n):
        return E.BAD_SHAPE
    beat = cfg.axi_data_width // 8
    sizes = buffer_sizes(desc)
    used = {name: size for name, size in sizes.items() if size}
    if any(getattr(desc, name) % beat for name in used):
        return E.MISALIGNED
    if any(getattr(desc, name) + size > window_bytes for name, size in used.items()):
        return E.OUT_OF_WINDOW
    return E.OK


def _flags_broken(desc: Descriptor, op: Opcode, cfg) -> bool:
    """Check 6 (BAD_FLAGS): unknown flag bits, reserved fields, flags the opcode does not take,
    fields the opcode does not use set (docs/spec.md sections 8 and 8.2)."""
    f = desc.flags
    geo = (desc.kh, desc.kw, desc.stride_h, desc.stride_w, desc.pad_h, desc.pad_w, desc.dil_h,
           desc.dil_w)
    if desc.col_split and op not in (Opcode.MATMUL, Opcode.CONV2D):
        return True
    if (f & ~_FLAGS_ALL or desc.reserved0 or desc.reserved2
            or (f & Flags.LUT and not f & Flags.REQUANT)
            or (f & Flags.LUT and not cfg.lut_enabled)
            or (f & Flags.INCLUDE_PAD and op != Opcode.AVGPOOL2D)):
        return True
    if op == Opcode.MATMUL:
        return any((desc.c, desc.h, desc.w) + geo)
    if op in _CONVS:
        return bool(op == Opcode.DEPTHWISE_CONV2D and f & Flags.ACCUMULATE)
    if op == Opcode.ADD:
        return (not f & Flags.REQUANT or bool(f & Flags.ACCUMULATE) or any(geo)
                or bool(desc.lut and not f & Flags.LUT))
    # pools: no requantization, no table, no weights
    return bool(f & (Flags.REQUANT | Flags.LUT | Flags.ACCUMULATE) or desc.weights
                or desc.quant or desc.lut or (op == Opcode.GLOBAL_AVGPOOL and any(geo)))


def _shape_broken(desc: Descriptor, op: Opcode) -> bool:
    """Check 7 (BAD_SHAPE) beyond ``1 <= m, k, n <= 2**31 - 1``, for every opcode but matmul."""
    d = desc
    if min(d.c, d.h, d.w) < 1:
        return True
    if op in _CONVS:
        k = d.c * d.kh * d.kw if op == Opcode.CONV2D else d.kh * d.kw
        return (min(d.kh, d.kw, d.stride_h, d.stride_w, d.dil_h, d.dil_w) < 1 or d.oh < 1
                or d.ow < 1 or d.k != k or d.n != d.oh * d.ow
                or (op == Opcode.DEPTHWISE_CONV2D and d.m != d.c))
    if op in _POOLS:
        return (not all(1 <= v <= POOL_GEO_MAX for v in (d.kh, d.kw, d.stride_h, d.stride_w))
                or d.pad_h > d.kh - 1 or d.pad_w > d.kw - 1 or (d.dil_h, d.dil_w) != (1, 1)
                or d.oh < 1 or d.ow < 1 or d.m != d.c or d.k != d.kh * d.kw
                or d.n != d.oh * d.ow)
    if op == Opcode.GLOBAL_AVGPOOL:
        return d.h * d.w > GLOBAL_POOL_MAX or d.m != d.c or d.k != d.h * d.w or d.n != 1
    return d.m != d.c or d.k != 1 or d.n != d.h * d.w          # add


#: Limits of the generated hardware beyond the architecture rules of `validate_descriptor`
#: (``hw.hub.desc_checker.DescChecker``, docs/accelerator.md): m, k and n fit the tiles' 16-bit
#: dimensions and the conv geometry (kernel, stride, padding, dilation) their 4-bit fields.
HW_DIM_MAX = (1 << 16) - 1
HW_GEO_MAX = 15
#: Flags the hardware runs: ACCUMULATE (split K) is an architecture feature it does not build.
HW_FLAGS = int(Flags.REQUANT | Flags.LUT | Flags.IRQ)

#: `validate_descriptor`'s codes in the order it checks them (OK last).
_CHECK_ORDER = (ErrorCode.BAD_DESC_MAGIC, ErrorCode.BAD_OPCODE, ErrorCode.BAD_FORMAT,
                ErrorCode.FORMAT_UNSUPPORTED, ErrorCode.BAD_PARAM, ErrorCode.BAD_FLAGS,
                ErrorCode.BAD_SHAPE, ErrorCode.MISALIGNED, ErrorCode.OUT_OF_WINDOW,
                ErrorCode.OK)


def hardware_descriptor_code(desc, cfg, *, window_bytes: int) -> ErrorCode:
    """The code the generated hardware's descriptor checker reports for ``desc``:
    `validate_descriptor` with the hardware's limits checked at the same places of its order
    (an N:M N that is not a power of two is BAD_PARAM, ACCUMULATE is BAD_FLAGS, m / k / n
    above `HW_DIM_MAX` or a conv geometry field above `HW_GEO_MAX` is BAD_SHAPE).  Whether
    the activations fit the tiles' buffers is checked after these (`golden.tiling`)."""
    if not isinstance(desc, Descriptor):
        desc = unpack_descriptor(desc)
    code = validate_descriptor(desc, cfg, window_bytes=window_bytes)
    rank = _CHECK_ORDER.index(code)
    E = ErrorCode
    a = desc.param_a
    if (rank > _CHECK_ORDER.index(E.BAD_PARAM) and desc.format == FORMAT_CODES["nm"]
            and a & (a - 1)):
        return E.BAD_PARAM
    if rank > _CHECK_ORDER.index(E.BAD_FLAGS) and desc.flags & ~HW_FLAGS:
        return E.BAD_FLAGS
    geo = (desc.kh, desc.kw, desc.stride_h, desc.stride_w, desc.pad_h, desc.pad_w, desc.dil_h,
           desc.dil_w)
    if rank > _CHECK_ORDER.index(E.BAD_SHAPE) and (
            max(desc.m, desc.k, desc.n) > HW_DIM_MAX
            or (desc.opcode == Opcode.CONV2D and max(geo) > HW_GEO_MAX)):
        return E.BAD_SHAPE
    return code


def validate_table(desc_base: int, count: int, *, mem_base: int, mem_limit: int,
                   axi_bytes: int) -> ErrorCode:
    """Error code of the descriptor table registers (checked when ``CONTROL.start`` is written).

    ``count == 0`` or a table running past ``mem_limit`` -> DESC_COUNT; ``desc_base`` not a
    multiple of ``axi_bytes`` -> MISALIGNED; ``desc_base`` outside ``[mem_base, mem_limit)``
    -> OUT_OF_WINDOW.  Checked in that order.
    """
    if count == 0:
        return ErrorCode.DESC_COUNT
    if desc_base % axi_bytes:
        return ErrorCode.MISALIGNED
    if not mem_base <= desc_base < mem_limit:
        return ErrorCode.OUT_OF_WINDOW
    if desc_base + count * DESC_BYTES > mem_limit:
        return ErrorCode.DESC_COUNT
    return ErrorCode.OK
