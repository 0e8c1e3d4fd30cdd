"""The rules a layer descriptor must meet (docs/spec.md section 8), in golden's check order.

:func:`validate_descriptor` returns the :class:`~golden.descriptors.ErrorCode` the hardware must
report for a descriptor (``ErrorCode.OK`` when it is runnable), checking the rules in a fixed
order so golden and hardware agree on *which* error is reported;
:func:`hardware_descriptor_code` adds the limits of a built accelerator and
:func:`validate_table` checks a descriptor table's placement.  The encoding itself is
:mod:`golden.descriptors`.  Pure Python; no hardware imports.
"""

from __future__ import annotations

from .descriptors import (
    _CONVS,
    _FLAGS_ALL,
    _NO_WEIGHTS,
    _POOLS,
    _SHAPE_MAX,
    DESC_BYTES,
    DESC_MAGIC,
    GLOBAL_POOL_MAX,
    HW_OPS,
    POOL_GEO_MAX,
    Descriptor,
    ErrorCode,
    Flags,
    Opcode,
    buffer_sizes,
    unpack_descriptor,
)
from .formats import FORMAT_CODES

__all__ = ["validate_descriptor", "validate_table", "hardware_descriptor_code", "HW_DIM_MAX",
           "HW_GEO_MAX", "HW_FLAGS"]


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
            or (f & Flags.LATE_TABLES and not f & Flags.REQUANT)
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
#: dimensions and the conv and pool geometry (kernel, stride, padding, dilation) their 4-bit
#: fields; a global average pool runs as one ``H x W`` window, so its ``H`` and ``W`` too.
HW_DIM_MAX = (1 << 16) - 1
HW_GEO_MAX = 15
#: Flags the hardware runs: ACCUMULATE (split K) is an architecture feature it does not build
#: (INCLUDE_PAD is avgpool2d's; `validate_descriptor` refuses it on every other opcode).
HW_FLAGS = int(Flags.REQUANT | Flags.LUT | Flags.IRQ | Flags.INCLUDE_PAD | Flags.LATE_TABLES)
#: Opcodes whose kernel, stride, padding and dilation fields the tile runs as a window.
_WINDOWED = (Opcode.CONV2D, Opcode.MAXPOOL2D, Opcode.AVGPOOL2D)

#: `validate_descriptor`'s codes in the order it checks them (OK last).
_CHECK_ORDER = (ErrorCode.BAD_DESC_MAGIC, ErrorCode.BAD_OPCODE, ErrorCode.BAD_FORMAT,
                ErrorCode.FORMAT_UNSUPPORTED, ErrorCode.BAD_PARAM, ErrorCode.BAD_FLAGS,
                ErrorCode.BAD_SHAPE, ErrorCode.MISALIGNED, ErrorCode.OUT_OF_WINDOW,
                ErrorCode.OK)


def hardware_descriptor_code(desc, cfg, *, window_bytes: int) -> ErrorCode:
    """The code the generated hardware's descriptor checker reports for ``desc``:
    `validate_descriptor` with the hardware's limits checked at the same places of its order.

    * BAD_PARAM: an N:M N that is not a power of two.
    * BAD_FLAGS: ACCUMULATE.  (An avgpool2d with padding runs with INCLUDE_PAD set or clear:
      the tile divides by ``KH*KW`` or by each window's count of real positions, docs/spec.md
      section 8.2; builds before that reported BAD_FLAGS for it clear.)
    * BAD_SHAPE: m, k or n above `HW_DIM_MAX`; a conv2d, maxpool2d or avgpool2d geometry field
      above `HW_GEO_MAX`; a global_avgpool with ``H`` or ``W`` above `HW_GEO_MAX` (the tile
      pools it as one ``H x W`` window, stride 1, no padding).

    Whether the activations fit the tiles' buffers is checked after these (`golden.tiling`:
    `tile_buffer_shortfall`, `pool_buffer_shortfall`)."""
    if not isinstance(desc, Descriptor):
        desc = unpack_descriptor(desc)
    code = validate_descriptor(desc, cfg, window_bytes=window_bytes)
    rank = _CHECK_ORDER.index(code)
    E = ErrorCode
    a = desc.param_a
    if (rank > _CHECK_ORDER.index(E.BAD_PARAM) and desc.format == FORMAT_CODES["nm"]
            and a & (a - 1)):
        return E.BAD_PARAM
    op = desc.opcode
    if rank > _CHECK_ORDER.index(E.BAD_FLAGS) and desc.flags & ~HW_FLAGS:
        return E.BAD_FLAGS
    geo = (desc.kh, desc.kw, desc.stride_h, desc.stride_w, desc.pad_h, desc.pad_w, desc.dil_h,
           desc.dil_w)
    if rank > _CHECK_ORDER.index(E.BAD_SHAPE) and (
            max(desc.m, desc.k, desc.n) > HW_DIM_MAX
            or (op in _WINDOWED and max(geo) > HW_GEO_MAX)
            or (op == Opcode.GLOBAL_AVGPOOL and max(desc.h, desc.w) > HW_GEO_MAX)):
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
