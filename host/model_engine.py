"""Functional model of the accelerator's descriptor engine (``sparsemac run --engine model``).

:func:`run_model` reads **only** a memory image and the table registers (``DESC_BASE``,
``DESC_COUNT``, ``MEM_BASE``/``MEM_LIMIT``), like the hardware: it checks the table
(`golden.desc_rules.validate_table`), then for each descriptor in order decodes and validates it
(`validate_descriptor`), reads and validates the per-tile weight images (section 8.1,
`golden.parse_weights`; a body error, codes 7..10, only once every header of the layer passed,
as the hardware reports it), the activations, the requantization records and the table, runs the
golden op and writes the result back into the image.  The first failing check stops the run
with the error code and descriptor index the hardware reports in ``STATUS.error_code`` /
``ERROR_DESC`` (docs/spec.md section 8).  It never sees the compiler's arrays, so it is an
independent check of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sparsemac.golden.depthwise import depthwise_conv2d
from sparsemac.golden.desc_rules import (
    hardware_descriptor_code,
    validate_descriptor,
    validate_table,
)
from sparsemac.golden.descriptors import (
    DESC_BYTES,
    LUT_BYTES,
    Descriptor,
    ErrorCode,
    Flags,
    Opcode,
    unpack_descriptor,
)
from sparsemac.golden.eltwise import MAX_SHIFT_DIFF, add_requant
from sparsemac.golden.format_check import check_header, parse_weights
from sparsemac.golden.formats import HEADER_BYTES, FormatError, PackedWeights
from sparsemac.golden.ops import im2col, matmul
from sparsemac.golden.pool import avgpool2d, global_avgpool, maxpool2d
from sparsemac.golden.quant import apply_lut, requantize, wrap
from sparsemac.golden.quant_record import unpack_quant_records
from sparsemac.golden.tiling import pool_buffer_shortfall, tile_buffer_limits, tile_buffer_use

__all__ = ["run_model", "ModelRun", "LayerRun", "read_output", "read_quant",
           "read_add_records", "architecture_view"]


@dataclass
class LayerRun:
    """What the model read and wrote for one descriptor.

    Members
    -------
    index : int
    descriptor : Descriptor
    slices : list of PackedWeights
        The validated per-tile weight images (spec section 8.1).
    weights : numpy.ndarray
        The int8 matrix ``W[M, K]`` they decode to.
    x : numpy.ndarray
        Input as read: matmul ``(K, N)``; conv2d ``(1, C, H, W)``.
    cols : numpy.ndarray
        The matmul right-hand side ``(K, N)`` (the im2col matrix for conv2d).
    output : numpy.ndarray
        ``(M, N)`` written: int8, or int32 accumulators without REQUANT.
    """

    index: int
    descriptor: Descriptor
    slices: list
    weights: np.ndarray
    x: np.ndarray
    cols: np.ndarray
    output: np.ndarray


@dataclass
class ModelRun:
    """Result of a model run.

    Members
    -------
    image : bytearray
        The window after the run (outputs written).
    error_code : golden.descriptors.ErrorCode
        ``OK`` or the first error (the hardware's ``STATUS.error_code``).
    error_desc : int or None
        Index of the failing descriptor (``ERROR_DESC``); None for a table error or success.
    message : str
        Human-readable reason of the error ("" when OK).
    layers : list of LayerRun
        The descriptors that completed.
    """

    image: bytearray
    error_code: ErrorCode = ErrorCode.OK
    error_desc: int | None = None
    message: str = ""
    layers: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_code == ErrorCode.OK


class _Stop(Exception):
    def __init__(self, code: ErrorCode, msg: str):
        super().__init__(msg)
        self.code, self.msg = ErrorCode(code), msg


def read_output(image, desc: Descriptor) -> np.ndarray:
    """The ``(m, n)`` output buffer of ``desc``: int8 with REQUANT (and for pools and add),
    else int32 accumulators."""
    count = desc.m * desc.n
    int8 = desc.flags & Flags.REQUANT or desc.opcode in _NO_WEIGHT_OPS
    dt = np.dtype(np.int8) if int8 else np.dtype("<i4")
    raw = bytes(image[desc.out:desc.out + count * dt.itemsize])
    return np.frombuffer(raw, dtype=dt).astype(np.int64).reshape(desc.m, desc.n)


def read_quant(image, desc: Descriptor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(bias, mult, shift)`` of the ``quant`` records of ``desc``.

    Raises an internal stop with ``BAD_PARAM`` for a record breaking section 1's ranges
    (``1 <= mult``, ``1 <= shift <= 63``) or with non-zero padding: the spec gives such records
    no code of their own, so the model reports the parameter error (docs/host.md).
    """
    recs = unpack_quant_records(image, desc.quant, desc.m)
    for c, (_, mult, shift, pad) in enumerate(recs):
        if mult < 1 or not 1 <= shift <= 63 or any(pad):
            raise _Stop(ErrorCode.BAD_PARAM, f"quant record {c}: mult must be >= 1, shift "
                        f"1..63 and padding 0, not mult={mult}, shift={shift}")
    bias, mult, shift = (np.array([r[i] for r in recs], dtype=np.int64) for i in range(3))
    return bias, mult, shift


#: Codes of a weight image's body (docs/spec.md section 3): the hardware checks them as the
#: bodies stream to the tiles, after every header of the layer (docs/accelerator.md).
_BODY_CODES = (ErrorCode.BAD_PTR, ErrorCode.BAD_MASK_COUNT, ErrorCode.BAD_INDEX,
               ErrorCode.BAD_PAD)


def _weights(image, d: Descriptor, cfg, limits: str = "hardware") -> list[PackedWeights]:
    """The per-tile weight images at ``d.weights``, back to back (spec section 8.1); with a
    column split (``d.col_split``) the one image of every tile, which must hold all ``m`` rows.

    Each header is checked in the hardware's order (hw/hub/sequencer.py, HCHECK): the header
    inside the window, then per code the header's own rule (`golden.format_check.check_header`)
    or the header against the descriptor: BAD_MAGIC, BAD_FORMAT (or format != the
    descriptor's), BAD_PARAM (or parameters differ), BAD_SHAPE (or cols != k, rows past m;
    with the hardware limits rows > out_buf_depth or cols >= 2**16), BAD_SIZE (with the
    hardware limits: ``total`` larger than the weight buffer), BAD_SECTION, then the image
    inside the window (OUT_OF_WINDOW).  A body error (codes 7..10) is reported only once
    every header of the layer passed, for the first such image: the hardware's order.
    """
    tiles, hw = int(cfg.tiles), limits == "hardware"
    window, off, rows, out = len(image), d.weights, 0, []
    body_error = None
    while rows < d.m:
        t = len(out)
        if t >= tiles:
            raise _Stop(ErrorCode.BAD_SHAPE, f"weight images cover {rows} of m = {d.m} rows "
                        f"with all {tiles} tiles")
        if off + HEADER_BYTES > window:
            raise _Stop(ErrorCode.OUT_OF_WINDOW, f"weight image {t} header at {off:#x} runs "
                        f"past the window ({window:#x} bytes)")
        hdr = bytes(image[off:off + HEADER_BYTES])
        total = int.from_bytes(hdr[28:32], "little")
        fmt, pa, pb = hdr[4], hdr[5], hdr[6]
        shape = (int.from_bytes(hdr[8:12], "little"), int.from_bytes(hdr[12:16], "little"))
        own, own_msg = None, ""
        try:
            check_header(hdr)
        except FormatError as exc:
            own, own_msg = ErrorCode(exc.code), exc.msg
        E = ErrorCode
        rules = [
            (E.BAD_MAGIC, own == E.BAD_MAGIC, own_msg),
            (E.BAD_FORMAT, own == E.BAD_FORMAT or fmt != d.format,
             own_msg or f"format {fmt} differs from the descriptor's {d.format}"),
            (E.BAD_PARAM, own == E.BAD_PARAM or (pa, pb) != (d.param_a, d.param_b),
             own_msg or f"parameters ({pa}, {pb}) differ from the descriptor's "
             f"({d.param_a}, {d.param_b})"),
            (E.BAD_SHAPE, own == E.BAD_SHAPE or shape[1] != d.k or rows + shape[0] > d.m
             or (d.col_split and shape[0] != d.m)
             or (hw and (shape[0] > cfg.out_buf_depth or shape[1] >= 1 << 16)),
             own_msg or f"shape {shape} does not fit (rows {rows}..{rows + shape[0]} of m = "
             f"{d.m}, cols = k = {d.k}, at most {cfg.out_buf_depth} rows per tile)"),
            (E.BAD_SIZE, own == E.BAD_SIZE
             or (hw and total > cfg.weight_buf_depth * (cfg.axi_data_width // 8)),
             own_msg or f"total {total} bytes exceeds the weight buffer"),
            (E.BAD_SECTION, own == E.BAD_SECTION, own_msg),
            (E.OUT_OF_WINDOW, off + total > window,
             f"[{off:#x}, {off + total:#x}) runs past the window ({window:#x} bytes)"),
        ]
        for code, broken, msg in rules:
            if broken:
                raise _Stop(code, f"weight image {t}: {msg}")
        try:
            pw = parse_weights(np.frombuffer(bytes(image[off:off + total]), dtype=np.uint8))
        except FormatError as exc:
            if ErrorCode(exc.code) not in _BODY_CODES:
                raise _Stop(ErrorCode(exc.code), f"weight image {t}: {exc.msg}") from None
            if body_error is None:
                body_error = _Stop(ErrorCode(exc.code), f"weight image {t}: {exc.msg}")
            pw = None
        out.append(pw)
        rows += shape[0]
        off += total
        if d.col_split:     # the one image of every tile (all m rows, checked above)
            break
    if body_error is not None:
        raise body_error
    return out


#: Every opcode of docs/spec.md (sections 8 and 8.2): what the architecture model runs.
_ALL_OPS = tuple(o.name.lower() for o in Opcode)
_NO_WEIGHT_OPS = (Opcode.MAXPOOL2D, Opcode.AVGPOOL2D, Opcode.GLOBAL_AVGPOOL, Opcode.ADD)
_POOL_OPS = (Opcode.MAXPOOL2D, Opcode.AVGPOOL2D, Opcode.GLOBAL_AVGPOOL)


class _WithOps:
    """``cfg`` with the ``ops`` attribute `validate_descriptor` reads (the ops built in)."""

    def __init__(self, cfg, ops):
        self._cfg, self.ops = cfg, ops

    def __getattr__(self, name):
        return getattr(self._cfg, name)


def architecture_view(cfg):
    """``cfg`` as the architecture model sees it: every opcode of docs/spec.md built (the
    ``ops`` attribute `validate_descriptor` reads), everything else unchanged."""
    return _WithOps(cfg, _ALL_OPS)


def _read_image(image, off: int, d: Descriptor) -> np.ndarray:
    """The int8 ``(1, C, H, W)`` tensor of descriptor ``d`` at ``off``."""
    n = d.c * d.h * d.w
    return np.frombuffer(bytes(image[off:off + n]), dtype=np.int8).reshape(1, d.c, d.h, d.w)


def read_add_records(image, d: Descriptor) -> dict[str, int]:
    """The add's two requant records ``(bias, mult_a, shift_a)``, ``(0, mult_b, shift_b)``
    (docs/spec.md section 8.2) as `golden.add_requant`'s keyword arguments.

    Raises an internal stop with ``BAD_PARAM`` for ``mult`` outside 1..2**31-1, ``shift``
    outside 1..63, ``|shift_a - shift_b| > 24``, a non-zero bias in the second record or
    non-zero padding bytes."""
    (bias, ma, sa, pa), (bias_b, mb, sb, pb) = unpack_quant_records(image, d.quant, 2)
    if (not (1 <= ma and 1 <= mb and 1 <= sa <= 63 and 1 <= sb <= 63) or any(pa) or any(pb)
            or bias_b or abs(sa - sb) > MAX_SHIFT_DIFF):
        raise _Stop(ErrorCode.BAD_PARAM, f"add records: mult >= 1, shift 1..63, "
                    f"|shift_a - shift_b| <= {MAX_SHIFT_DIFF}, second bias 0 and padding 0, "
                    f"not ({bias}, {ma}, {sa}), ({bias_b}, {mb}, {sb})")
    return dict(bias=bias, mult_a=ma, shift_a=sa, mult_b=mb, shift_b=sb)


def _run_no_weights(image, i: int, d: Descriptor) -> LayerRun:
    """A pool or an add (docs/spec.md sections 2.3, 2.4 and 8.2): int8 in, int8 out."""
    x = _read_image(image, d.acts, d)
    geo = dict(kernel=(d.kh, d.kw), stride=(d.stride_h, d.stride_w), padding=(d.pad_h, d.pad_w))
    if d.opcode == Opcode.MAXPOOL2D:
        y = maxpool2d(x, **geo)
    elif d.opcode == Opcode.AVGPOOL2D:
        y = avgpool2d(x, **geo, count_include_pad=bool(d.flags & Flags.INCLUDE_PAD))
    elif d.opcode == Opcode.GLOBAL_AVGPOOL:
        y = global_avgpool(x)
    else:
        params = read_add_records(image, d)
        y = add_requant(x, _read_image(image, d.weights, d), **params, lut=_read_lut(image, d))
    out = np.asarray(y, dtype=np.int8).reshape(d.m, d.n)
    raw = out.tobytes()
    image[d.out:d.out + len(raw)] = raw
    empty = np.zeros((0, 0), dtype=np.int64)
    return LayerRun(i, d, [], empty, x, empty, out.astype(np.int64))


def _read_lut(image, d: Descriptor) -> np.ndarray | None:
    """The descriptor's 256-byte activation table (int8), None without the LUT flag."""
    if not d.flags & Flags.LUT:
        return None
    return np.frombuffer(bytes(image[d.lut:d.lut + LUT_BYTES]), dtype=np.int8)


def _run_depthwise(image, i: int, d: Descriptor, cfg, limits: str) -> LayerRun:
    """A depthwise conv2d (docs/spec.md sections 2.5 and 8.2): weight images of ``W[C, KH*KW]``
    split by channel across the tiles, the conv2d epilogue per channel."""
    slices = _weights(image, d, cfg, limits)
    w = np.concatenate([pw.unpack() for pw in slices])
    x = _read_image(image, d.acts, d)
    geo = dict(stride=(d.stride_h, d.stride_w), padding=(d.pad_h, d.pad_w),
               dilation=(d.dil_h, d.dil_w))
    w4 = w.reshape(d.c, 1, d.kh, d.kw)
    if d.flags & Flags.REQUANT:
        bias, mult, shift = read_quant(image, d)
        y = depthwise_conv2d(x, w4, bias=bias, mult=mult, shift=shift, lut=_read_lut(image, d),
                             acc_width=cfg.acc_width, **geo).reshape(d.m, d.n)
        raw = y.astype(np.int8).tobytes()
    else:
        y = wrap(depthwise_conv2d(x, w4, acc_width=cfg.acc_width, **geo).reshape(d.m, d.n), 32)
        raw = y.astype("<i4").tobytes()
    image[d.out:d.out + len(raw)] = raw
    cols, _ = im2col(x, d.kh, d.kw, geo["stride"], geo["padding"], geo["dilation"])
    return LayerRun(i, d, slices, w, x, cols, y.astype(np.int64))


def _run_one(image, i: int, d: Descriptor, cfg, prev_acc,
             limits: str = "hardware") -> tuple[LayerRun, np.ndarray]:
    if d.opcode in _NO_WEIGHT_OPS:
        return _run_no_weights(image, i, d), None
    if d.opcode == Opcode.DEPTHWISE_CONV2D:
        return _run_depthwise(image, i, d, cfg, limits), None
    slices = _weights(image, d, cfg, limits)
    w = np.concatenate([pw.unpack() for pw in slices])
    aw = cfg.acc_width
    if d.opcode == Opcode.MATMUL:
        x = np.frombuffer(bytes(image[d.acts:d.acts + d.k * d.n]), dtype=np.int8)
        x = x.reshape(d.k, d.n)
        cols = x
    else:
        x = np.frombuffer(bytes(image[d.acts:d.acts + d.c * d.h * d.w]), dtype=np.int8)
        x = x.reshape(1, d.c, d.h, d.w)
        cols, _ = im2col(x, d.kh, d.kw, (d.stride_h, d.stride_w), (d.pad_h, d.pad_w),
                         (d.dil_h, d.dil_w))
    acc = matmul(w, cols, acc_width=aw)
    if d.flags & Flags.ACCUMULATE and prev_acc is not None:
        if prev_acc.shape != acc.shape:
            raise _Stop(ErrorCode.BAD_SHAPE, f"ACCUMULATE needs the previous descriptor's shape "
                        f"{prev_acc.shape}, not {acc.shape}")
        acc = wrap(acc + prev_acc, aw)
    if d.flags & Flags.REQUANT:
        bias, mult, shift = read_quant(image, d)
        y = requantize(acc, bias, mult, shift, acc_width=aw, channel_axis=0)
        if d.flags & Flags.LUT:
            y = apply_lut(y, _read_lut(image, d))
        raw = y.astype(np.int8).tobytes()
    else:
        y = wrap(acc, 32)
        raw = y.astype("<i4").tobytes()
    image[d.out:d.out + len(raw)] = raw
    return LayerRun(i, d, slices, w, x, cols, y.astype(np.int64)), acc


def _act_shortfall(d: Descriptor, cfg) -> str:
    """Why the layer's activations do not fit a tile's buffers ("" when they fit): the
    im2col entries, zero-flag words and conv input image of `golden.tiling`, the limits the
    hardware's descriptor checker computes (``act_fits``; the sequencer stops with
    BAD_SHAPE); with a column split, of one tile's share of the column groups; a pool's by
    `golden.tiling.pool_buffer_shortfall`."""
    if d.opcode in _POOL_OPS:
        glob = d.opcode == Opcode.GLOBAL_AVGPOOL
        short = pool_buffer_shortfall(
            cfg, c=d.c, h=d.h, w=d.w, kh=d.h if glob else d.kh, kw=d.w if glob else d.kw,
            sh=1 if glob else d.stride_h, sw=1 if glob else d.stride_w,
            ph=0 if glob else d.pad_h, pw=0 if glob else d.pad_w)
        return "" if short is None else f"{short.check} {short.used} > {short.capacity}"
    image = d.c * d.h * d.w if d.opcode == Opcode.CONV2D else 0
    n = min(d.n, d.col_split) if d.col_split else d.n       # one tile's share of the columns
    use = tile_buffer_use(cfg, k=d.k, n=n, image_bytes=image if image else d.k * d.n)
    cap = tile_buffer_limits(cfg)
    for check in ("act_entries", "flag_words", "image_entries"):
        if use[check] > cap[check]:
            return f"{check} {use[check]} > {cap[check]}"
    return ""


def run_model(image, *, base: int, desc_base: int, desc_count: int, cfg,
              limits: str = "hardware") -> ModelRun:
    """Run the descriptor table of a memory window on the functional model.

    Parameters
    ----------
    image : bytes-like
        The window ``[base, base + len(image))`` (``MEM_BASE``..``MEM_LIMIT``); a copy is made.
    base, desc_base, desc_count : int
        The ``MEM_BASE``, ``DESC_BASE`` and ``DESC_COUNT`` registers.
    cfg : hw.config.AcceleratorConfig
        The build (formats, parameters, ``acc_width``, AXI beat, LUT engine).
    limits : {"hardware", "architecture"}
        ``hardware`` (default): the generated hardware's limits too
        (`golden.desc_rules.hardware_descriptor_code`: 16-bit m/k/n, 4-bit conv geometry,
        no ACCUMULATE, N:M with N a power of two; activations that do not fit a tile's
        buffers are BAD_SHAPE; only the opcodes the build runs, ``cfg.ops``: matmul, conv2d
        and with ``pool_enabled`` the pools), so the run is what the RTL does.
        ``architecture``: the rules of docs/spec.md alone (`validate_descriptor` with every
        opcode, the pools, add and depthwise conv of section 8.2 included; ACCUMULATE adds
        the previous descriptor's accumulators).

    Returns
    -------
    ModelRun
        The image after the run and the status.  Errors the hardware reports are returned as
        ``error_code``/``error_desc``, never raised.
    """
    if limits not in ("hardware", "architecture"):
        raise ValueError(f"limits must be hardware or architecture, not {limits!r}")
    img = bytearray(image)
    run = ModelRun(image=img)
    window = len(img)
    code = validate_table(desc_base, desc_count, mem_base=base, mem_limit=base + window,
                          axi_bytes=cfg.axi_data_width // 8)
    if code != ErrorCode.OK:
        run.error_code, run.message = code, f"descriptor table at {desc_base:#x} x {desc_count}"
        return run
    prev_acc = None
    for i in range(desc_count):
        off = desc_base - base + DESC_BYTES * i
        d = unpack_descriptor(img[off:off + DESC_BYTES])
        if limits == "hardware":
            code = hardware_descriptor_code(d, cfg, window_bytes=window)
            short = _act_shortfall(d, cfg) if code == ErrorCode.OK else ""
            if short:
                run.error_code, run.error_desc = ErrorCode.BAD_SHAPE, i
                run.message = f"descriptor {i}: activations exceed a tile's buffers ({short})"
                return run
        else:
            code = validate_descriptor(d, architecture_view(cfg), window_bytes=window)
        try:
            if code != ErrorCode.OK:
                raise _Stop(code, f"descriptor {i} fails the descriptor checks ({limits})")
            lr, prev_acc = _run_one(img, i, d, cfg, prev_acc, limits)
        except _Stop as stop:
            run.error_code, run.error_desc, run.message = stop.code, i, stop.msg
            return run
        run.layers.append(lr)
    return run
