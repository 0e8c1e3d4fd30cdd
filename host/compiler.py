"""Compile a layer list into descriptors and one memory image (docs/host.md).

Per layer: weights (given float -> int8 per output channel, given int8, or random int8 from the
seed), magnitude pruning (`golden.prune`) and packing (`golden.pack_weights`) in the layer's
format, bias, requantization parameters calibrated on the network input so the layer's outputs
use the int8 range, an activation table (`golden.build_lut`) and the expected output of the
golden model (`golden.matmul` / `golden.conv2d`, chained: layer ``i + 1`` reads layer ``i``'s
output buffer in place).  A pooling layer (`golden.maxpool2d`, `avgpool2d`, `global_avgpool`)
has no weights or parameters: its descriptor (docs/spec.md section 8.2) reads the previous
int8 output and writes int8 at the same scale.  A residual add (`golden.add_requant`,
docs/spec.md sections 2.4 and 8.2) reads two earlier outputs (a layer names its inputs: the
layers form a graph, each reading earlier layers only).  Buffers are placed in one window by
`sparsemac.host.placement`; the descriptor table (docs/spec.md section 8) sits at the window
base; a layer's weights are one image per tile, back to back (section 8.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from sparsemac.golden.desc_rules import HW_GEO_MAX, validate_descriptor, validate_table
from sparsemac.golden.descriptors import (
    DESC_BYTES,
    HW_OPS,
    LUT_BYTES,
    POOL_GEO_MAX,
    Descriptor,
    ErrorCode,
    Flags,
    add_descriptor,
    avgpool2d_descriptor,
    conv2d_descriptor,
    global_avgpool_descriptor,
    matmul_descriptor,
    maxpool2d_descriptor,
)
from sparsemac.golden.eltwise import add_matmul_params, add_params, add_requant
from sparsemac.golden.formats import PackedWeights, pack_weights, packed_size
from sparsemac.golden.lut import FUNCTIONS, build_lut
from sparsemac.golden.net_cycles import table_key, tables_held_after
from sparsemac.golden.ops import conv2d, im2col, matmul
from sparsemac.golden.perf import LayerStats, layer_stats
from sparsemac.golden.pool import avgpool2d, global_avgpool, maxpool2d
from sparsemac.golden.prune import prune
from sparsemac.golden.quant import fixed_point, wrap
from sparsemac.golden.quant_record import pack_quant_records
from sparsemac.golden.tiling import (
    TILE_BUFFER_CHECKS,
    BufferShortfall,
    pool_buffer_shortfall,
    pool_buffer_use,
    tile_buffer_limits,
    tile_buffer_minimum,
    tile_buffer_shortfall,
    tile_buffer_use,
    tile_col_split,
    tile_row_split,
)

from .add_matmul import add_format, add_weights, pair_rows, pairs
from .network import LayerSpec, Network, NetworkError
from .placement import ALIGN, MemoryPlan, Region

__all__ = ["compile_network", "CompiledNetwork", "CompiledLayer", "requant_params",
           "quant_records", "split_weights", "DEFAULT_BASE", "DEFAULT_INPUT_SCALE",
           "tile_buffer_needs", "check_tile_buffers", "SPLITS", "col_split_of",
           "col_split_fits", "layer_buffer_shortfall", "QUANT_MODES", "TABLES",
           "OUT_FILLS", "RANDOM_LUT_SCALES", "calibrate", "freeze", "batch_networks",
           "random_input", "BIAS_LIMIT", "LIMITS", "activation_blocks"]

#: Default window base address (non-zero, so offset arithmetic is exercised).
DEFAULT_BASE = 0x0001_0000
#: Real value of one LSB of an int8 input when none is given.
DEFAULT_INPUT_SCALE = 1 / 64
#: ``quant`` of `compile_network`: requantization calibrated on the input, or random parameters.
QUANT_MODES = ("calibrate", "random")
#: ``out_fill`` of `compile_network`: what the output buffers hold before the run.
OUT_FILLS = ("zero", "random")
#: Input and output LSB of the activation tables under ``quant="random"``.
RANDOM_LUT_SCALES = (1 / 20, 1 / 50)
#: ``limits`` of `compile_network`: refuse what the generated hardware of the configuration
#: cannot run (``hardware``), or only what docs/spec.md forbids (``architecture``, for the
#: model engine's architecture mode).
LIMITS = ("hardware", "architecture")
#: Largest quantized float bias magnitude: the weight scale of a channel is floored so that its
#: bias stays within it (2**30, headroom below int32 for the accumulation).
BIAS_LIMIT = 2.0**30


@dataclass
class CompiledLayer:
    """One compiled layer.

    Members
    -------
    spec : LayerSpec
    descriptor : golden.descriptors.Descriptor
    weights : numpy.ndarray
        Pruned int8 weights, ``spec.weight_shape`` (OIHW for conv2d; depthwise: the expanded
        block-diagonal ``(C, C, KH, KW)``); empty for a pool.
    packed : golden.formats.PackedWeights or None
        The whole matrix as one image (for `golden.perf` statistics); None for a pool.
    slices : list of golden.formats.PackedWeights
        The per-tile images stored back to back at ``descriptor.weights`` (spec section 8.1);
        empty for a pool.
    bias, mult, shift : numpy.ndarray or None
        Per output channel (None without requantization; without it ``bias`` is the given
        bias the host adds to the int32 accumulators it reads, see `values`); an add: its two
        records, ``a``'s and ``b``'s (bias 0).
    lut : numpy.ndarray or None
        The 256-entry activation table.
    x : numpy.ndarray
        The layer's int8 input as the op sees it: matmul ``(K, N)``, conv2d and pools
        ``(1, C, H, W)``; an add: its first input ``a`` (``(1, C, H, W)`` or ``(M, N)``).
    x_b, in_scale_b : numpy.ndarray and float, or None
        An add: its second input ``b`` and that input's LSB (``in_scale`` is ``a``'s).
    as_matmul : LayerSpec or None
        An add compiled for the hardware (host/add_matmul.py): the matmul that runs it (its
        ``in_shape`` is ``(R + C, N)``, its ``inputs`` the first input); ``weights``,
        ``packed``, ``slices``, the records and ``x`` are that matmul's.
    add_weights : (int, int) or None
        That add's int8 weights ``(w_a, w_b)`` (`golden.add_matmul_params`).
    expected : numpy.ndarray
        Golden output ``(M, N)``: int8, or the int32 accumulators without requantization
        (a pool: ``(C, OH*OW)`` int8).
    in_scale, out_scale : float
        Real value of one LSB of the input and of the output (equal for a pool).
    requant_scale : float or None
        Real value of one LSB of the requantized output before the activation table.
    chain : int
        Index of the network (chain of layers) the layer belongs to in the window.
    weight_scale : numpy.ndarray
        Real value of one weight LSB per output channel.
    stats : golden.perf.LayerStats or None
        None for a pool (no MACs).
    regions : dict of str to Region
        ``weights``, ``acts``, ``out`` and, when used, ``quant`` and ``lut`` (a pool: ``acts``
        and ``out``).
    overwritten_by : int or None
        With ``reuse_buffers``: the index (in the descriptor table) of the first later
        descriptor whose output shares bytes with this layer's output buffer, so the buffer no
        longer holds `expected` when the table ends; None: it still does (always without
        reuse).
    tables : str
        `TABLES`: ``compile_network``'s choice for the layer (``auto``: the descriptor's
        ``LATE_TABLES`` flag says what the cycle model chose).
    """

    spec: LayerSpec
    descriptor: Descriptor
    weights: np.ndarray
    packed: PackedWeights | None
    slices: list
    bias: np.ndarray | None
    mult: np.ndarray | None
    shift: np.ndarray | None
    lut: np.ndarray | None
    x: np.ndarray
    expected: np.ndarray
    in_scale: float
    out_scale: float
    weight_scale: np.ndarray
    stats: LayerStats | None
    regions: dict = field(default_factory=dict)
    requant_scale: float | None = None
    chain: int = 0
    x_b: np.ndarray | None = None
    in_scale_b: float | None = None
    as_matmul: LayerSpec | None = None
    add_weights: tuple | None = None
    overwritten_by: int | None = None
    tables: str = "auto"    # `TABLES`: the compiler's choice for the LATE_TABLES flag

    def values(self, raw=None) -> np.ndarray:
        """Real values of an output buffer (``raw``, default `expected`): int8 times
        `out_scale`; int32 accumulators (``requant`` false) plus the layer's bias, times
        ``in_scale * weight_scale`` per output channel (the bias the accelerator does not add
        without requantization is added here)."""
        y = np.asarray(self.expected if raw is None else raw).reshape(self.spec.out, -1)
        if self.spec.requant:
            return y.astype(np.float64) * self.out_scale
        b = np.zeros(self.spec.out) if self.bias is None else self.bias
        return (y.astype(np.float64) + b[:, None]) * (self.in_scale * self.weight_scale)[:, None]


@dataclass
class CompiledNetwork:
    """Descriptors, memory image and golden expectations of a network.

    Members
    -------
    network : Network
        The network (the first one when several were compiled together).
    config : hw.config.AcceleratorConfig (or any object with its attributes)
    base : int
        Absolute address of the window (``MEM_BASE``); every descriptor offset is relative to it.
    image : bytes
        The whole window ``[base, base + len(image))``: table, input, weights, parameters,
        zeroed output buffers.
    desc_offset : int
        Offset of the descriptor table (``DESC_BASE = base + desc_offset``).
    layers : list of CompiledLayer
        Every layer, in descriptor-table order.
    regions : list of Region
    input : numpy.ndarray
        The int8 network input, flat, as stored (of ``network``).
    networks, inputs, input_scales : tuple
        Every network compiled into the window (a batch of images: one per image), its input
        and the real value of its input LSB.
    reuse_buffers : bool
        Whether activation buffers share bytes once their last reader ran (`compile_network`;
        the layers' ``overwritten_by`` say which outputs do not survive the table).
    """

    network: Network
    config: object
    base: int
    image: bytes
    desc_offset: int
    layers: list
    regions: list
    input: np.ndarray
    networks: tuple = ()
    inputs: tuple = ()
    input_scales: tuple = ()
    reuse_buffers: bool = False

    def chain(self, j: int = 0) -> list:
        """The compiled layers of network ``j`` (in order)."""
        return [cl for cl in self.layers if cl.chain == j]

    @property
    def desc_count(self) -> int:
        return len(self.layers)

    @property
    def desc_base(self) -> int:
        """Absolute address of the descriptor table (the ``DESC_BASE`` register)."""
        return self.base + self.desc_offset

    @property
    def window_bytes(self) -> int:
        return len(self.image)

    @property
    def mem_limit(self) -> int:
        """Exclusive end of the window (the ``MEM_LIMIT`` register)."""
        return self.base + len(self.image)

    @property
    def activation_bytes(self) -> int:
        """Bytes the activation buffers cover (the union of the network inputs and every
        layer's output buffer): what ``reuse_buffers`` shrinks."""
        spans = sorted([(cl.regions["out"].offset, cl.regions["out"].end) for cl in self.layers]
                       + [(r.offset, r.end) for r in self.regions
                          if r.name == "input" or r.name.endswith(".input")])
        total, upto = 0, 0
        for lo, hi in spans:
            total += max(0, hi - max(lo, upto))
            upto = max(upto, hi)
        return total

    def expected_outputs(self) -> list[np.ndarray]:
        return [layer.expected for layer in self.layers]


def requant_params(real) -> tuple[np.ndarray, np.ndarray]:
    """``(mult, shift)`` per channel with ``mult / 2**shift ~= real`` (docs/host.md).

    ``mult`` has 31 significant bits (``2**30 <= mult < 2**31``) where the shift range allows;
    ``1 <= shift <= 63``.  Non-positive or non-finite ``real`` gives ``(1, 1)``.
    """
    real = np.atleast_1d(np.asarray(real, dtype=np.float64))
    mult = np.ones(real.shape, dtype=np.int64)
    shift = np.ones(real.shape, dtype=np.int64)
    for i, r in enumerate(real.tolist()):
        if r > 0 and math.isfinite(r):
            mult[i], shift[i] = fixed_point(r)
    return mult, shift


def hardware_nm(nm) -> tuple[int, int]:
    """The N:M a layer of pattern ``nm`` runs as: N rounded up to a power of two, the only N
    the tiles' N:M datapath takes (docs/tile.md; any other N is BAD_PARAM).  Weights that
    satisfy N:M satisfy the rounded pattern too (the extra slots hold zeros), so the results
    are the same; ``(3, 8)`` runs as ``(4, 8)``."""
    n, m = (int(v) for v in nm)
    return 1 << (n - 1).bit_length(), m


def split_weights(w2, fmt: str, cfg, *, nm=(2, 4)) -> list[PackedWeights]:
    """Per-tile weight images of ``W[M, K]`` (docs/spec.md section 8.1).

    Tile ``t`` gets rows ``[t * c, min(M, (t + 1) * c))`` with ``c = ceil(M / tiles)``; tiles
    past the last row get no image.  The images are stored back to back.
    """
    return [pack_weights(w2[r0:r1], fmt, group_size=cfg.group_size, block_size=cfg.block_size,
                         nm=nm) for r0, r1 in tile_row_split(w2.shape[0], cfg.tiles)]


#: How `compile_network` spreads a layer over the tiles (docs/spec.md section 8.1): ``rows``
#: (output rows, one image per tile), ``cols`` (column groups, one image of all rows that
#: every tile loads), ``auto`` (per layer, the one the network cycle model finds faster among
#: those that fit the tile buffers).
SPLITS = ("rows", "cols", "auto")
#: When a layer's activation table and requant records are read (`compile_network`'s
#: ``tables``; the descriptor's LATE_TABLES flag, docs/spec.md section 8): ``early`` before
#: the activations, ``late`` after the weight image bodies (while the tiles compute; their
#: output pipelines wait for the records), ``auto`` the faster of the two by the network
#: cycle model.
TABLES = ("early", "late", "auto")


def col_split_of(n: int, cfg) -> int:
    """``col_split`` of a layer with ``n`` output columns spread over every tile: column groups
    of ``cols`` shared out evenly, ``ceil(ceil(n / cols) / tiles) * cols`` columns per tile."""
    cols = int(cfg.cols)
    groups = -(-int(n) // cols)
    return -(-groups // int(cfg.tiles)) * cols


def col_split_fits(cl, cfg) -> bool:
    """Whether compiled layer ``cl`` can run with its columns split across the tiles: at least
    two column groups, and the one image of all ``M`` rows inside a tile's weight buffer, the
    ``M`` rows inside its output buffer, one tile's share of the im2col entries and flag
    words and the whole input inside its activation buffers (`golden.tiling`)."""
    sp = cl.as_matmul or cl.spec        # an add: the matmul over its two inputs
    n = sp.mkn[2]
    if not sp.has_weights or cfg.tiles < 2 or -(-n // cfg.cols) < 2:
        return False      # a pool's descriptor has no col_split (docs/spec.md section 8.2)
    use = tile_buffer_use(cfg, **_tile_share(sp, cfg, int(cl.packed.image.nbytes),
                                             col_split=col_split_of(n, cfg)))
    cap = tile_buffer_limits(cfg)
    return all(use[c] <= cap[c] for c in use)


def _use_col_split(cl, cfg, split: str) -> bool:
    if split == "rows" or not col_split_fits(cl, cfg):
        return False
    if split == "cols":
        return True
    from .cycles import prefer_col_split  # auto: the cycle model decides
    sp = cl.as_matmul or cl.spec
    m, _, n = sp.mkn
    fmt = cl.packed.fmt
    nm = (cl.packed.param_a, cl.packed.param_b) if fmt == "nm" else (2, 4)
    rows = split_weights(cl.weights.reshape(m, -1), fmt, cfg, nm=nm)
    if layer_buffer_shortfall(sp, cfg, weight_bytes=max(
            int(pw.image.nbytes) for pw in rows)) is not None:
        return True     # only the column split fits the tile buffers
    return prefer_col_split(cl, cfg, rows, col_split_of(n, cfg))


def _per_layer_choices(name: str, value, allowed, total: int, batch: bool) -> list:
    """``value`` (one of ``allowed``, or a sequence of ``total`` of them: one per layer) as a
    list of ``total`` choices; a sequence only for networks of one image."""
    choices = [value] * total if isinstance(value, str) else list(value)
    if len(choices) != total or any(c not in allowed for c in choices):
        raise ValueError(f"{name} must be one of {', '.join(allowed)} or {total} of them (one "
                         f"per layer), not {value!r}")
    if not isinstance(value, str) and batch:
        raise ValueError(f"{name} must be one string for a batch of images")
    return choices


def _late_tables(cl, d, cfg, table_held: bool = False) -> bool:
    """Whether the requantized layer ``cl`` (descriptor ``d`` as built) reads its tables after
    the bodies: its ``tables`` choice, ``auto`` by the network cycle model (``table_held``:
    the tiles hold its activation table from a layer before, only the records are read)."""
    if cl.tables != "auto":
        return cl.tables == "late"
    from .cycles import prefer_late_tables
    return prefer_late_tables(cl, d, cfg, table_held=table_held)


def quant_records(bias, mult, shift) -> bytes:
    """The ``quant`` buffer: per channel bias i32, mult i32, shift u8, 7 zero bytes (the
    layout is `golden.quant_record`'s)."""
    return pack_quant_records(bias, mult, shift)


def _fail(spec: LayerSpec, net: Network, field_: str, msg: str):
    line = spec.lines.get(field_, spec.line)
    where = f"{net.source}:{line}" if line else net.source
    raise NetworkError(f"{where}: layers[{spec.index}].{field_} {msg}")


def _check_config(net: Network, cfg, limits: str = "hardware") -> None:
    if limits == "hardware":
        pairs(net)      # the adds' inputs side by side (host/add_matmul.py)
    for spec in net.layers:
        if spec.is_add:
            if spec.activation and not cfg.lut_enabled:
                _fail(spec, net, "activation", f"must be none: this configuration has no LUT "
                      f"engine (lut_enabled: false), not {spec.activation!r}")
            continue
        if spec.is_pool:
            if limits == "hardware":
                _check_pool_hardware(spec, net, cfg)
            continue
        if spec.fmt not in tuple(cfg.formats):
            _fail(spec, net, "format", f"must be one of the formats built into this "
                  f"configuration ({', '.join(cfg.formats)}), not {spec.fmt!r}")
        if spec.activation and not cfg.lut_enabled:
            _fail(spec, net, "activation", f"must be none: this configuration has no LUT engine "
                  f"(lut_enabled: false), not {spec.activation!r}")
        if spec.fmt == "nm" and spec.nm[1] > cfg.nm_max_m:
            _fail(spec, net, "nm", f"must have M <= nm_max_m ({cfg.nm_max_m}) of this "
                  f"configuration, not {spec.nm[0]}:{spec.nm[1]}")


def _check_pool_hardware(spec: LayerSpec, net: Network, cfg) -> None:
    """The limits of the generated hardware on a pool (beyond docs/spec.md section 2.3, which
    the schema checks): the build runs pools (``cfg.ops``, ``pool_enabled``), kernel, stride
    and padding at most `HW_GEO_MAX` per axis, a global average pool of an input of at most
    `HW_GEO_MAX` x `HW_GEO_MAX`.  An average pool with padding runs with either
    ``count_include_pad`` (docs/spec.md section 8.2: the tile divides by ``KH*KW`` or by each
    window's count of real positions)."""
    ops = tuple(getattr(cfg, "ops", HW_OPS))
    if spec.op not in ops:
        why = " (pool_enabled: false)" if getattr(cfg, "pool_enabled", True) is False else ""
        _fail(spec, net, "op", f"must be one of the operations built into this configuration "
              f"({', '.join(ops)}), not {spec.op!r}{why}")
    if spec.op == "global_avgpool":
        h, w = spec.in_shape[1:]
        if max(h, w) > HW_GEO_MAX:
            where = f"{net.source}:{spec.line}" if spec.line else net.source
            raise NetworkError(f"{where}: layers[{spec.index}] ({spec.name}) global_avgpool "
                               f"input must be at most {HW_GEO_MAX} x {HW_GEO_MAX} (H x W) on "
                               f"the hardware, not {h} x {w} (an avgpool2d with a smaller "
                               f"kernel first, or limits architecture)")
        return
    for field_ in ("kernel", "stride", "padding"):
        v = getattr(spec, field_)
        if max(v) > HW_GEO_MAX:
            _fail(spec, net, field_, f"must be at most {HW_GEO_MAX} per axis on the hardware "
                  f"(the spec's {POOL_GEO_MAX - (field_ == 'padding')} runs with limits "
                  f"architecture), not {list(v)}")


def tile_buffer_needs(cl: CompiledLayer, cfg) -> dict[str, tuple[int, int]]:
    """What a compiled layer needs of the tile buffers on the RTL (docs/accelerator.md).

    Returns ``{parameter: (needed, entries)}`` for ``act_buf_depth`` (the larger of the
    ``ceil(C*H*W / cols)`` image entries, the ``ceil(N / cols) * K`` im2col entries and eight
    times the ``ceil(N / cols) * ceil(K / axi_data_width)`` flag words), ``weight_buf_depth``
    (bus words of the largest per-tile image) and ``out_buf_depth`` (rows of the largest tile
    slice); ``needed`` is the smallest power of two that fits ``entries``.  The rule is
    `sparsemac.golden.tiling.tile_buffer_minimum`.  An add: its matmul's (``as_matmul``), none
    without one (opcode 5, the model engine's).
    """
    if cl.spec.is_add and cl.as_matmul is None:
        return {}
    if cl.spec.is_pool:
        least = {}
        for check, used in pool_buffer_use(cfg, **_pool_geometry(cl.spec)).items():
            name = TILE_BUFFER_CHECKS[check][0]
            least[name] = max(least.get(name, 0), used)
        return {name: (1 << max(0, v - 1).bit_length(), v) for name, v in least.items()}
    share = _tile_share(cl.as_matmul or cl.spec, cfg,
                        max((int(pw.image.nbytes) for pw in cl.slices), default=0),
                        col_split=cl.descriptor.col_split)
    least = tile_buffer_minimum(cfg, **share)
    return {name: (1 << max(0, v - 1).bit_length(), v) for name, v in least.items()}


def _tile_share(spec: LayerSpec, cfg, weight_bytes: int | None, *, col_split: int = 0) -> dict:
    """The arguments of the `golden.tiling` buffer rules for the largest tile slice of
    ``spec``: ``k``, ``n``, ``rows``, ``image_bytes`` (matmul ``K*N``, conv2d ``C*H*W``) and
    ``weight_bytes`` (the dense image of the slice when not given).  A pool holds only its
    input image (``C*H*W`` bytes, multicast to every tile, as a conv2d's) and the windows of its
    channels (`_pool_geometry`, `golden.tiling.pool_buffer_use`), no weights.  ``col_split``
    (columns a tile, docs/spec.md section 8.1): every row and one tile's share of the columns
    instead of a row slice of all of them."""
    if spec.is_pool:
        return dict(k=0, n=0, weight_bytes=0, rows=0, image_bytes=math.prod(spec.in_shape))
    m, k, n = spec.mkn
    rows = max(r1 - r0 for r0, r1 in tile_row_split(spec.out, cfg.tiles))
    if col_split:
        n, rows = min(n, col_split), m
    if weight_bytes is None:
        weight_bytes = packed_size("dense", (rows, k))
    return dict(k=k, n=n, weight_bytes=int(weight_bytes), rows=rows,
                image_bytes=math.prod(spec.in_shape))


def layer_buffer_shortfall(spec: LayerSpec, cfg, *,
                           weight_bytes: int | None = None) -> BufferShortfall | None:
    """The first tile-buffer limit of ``cfg`` the layer exceeds, or None when it fits
    (`sparsemac.golden.tiling.tile_buffer_shortfall` on its largest tile slice, the same rule
    as `tile_buffer_needs`).  Before compiling, the weights are estimated as dense
    (``weight_bytes`` of the largest slice overrides that).  An add: the matmul over its two
    inputs (host/add_matmul.py) in the format `add_format` takes."""
    if spec.is_add:
        mm = _add_matmul_spec(spec, cfg, 1, 1)
        big = max(int(pw.image.nbytes) for pw in split_weights(
            mm.weights, mm.fmt, cfg, nm=hardware_nm(mm.nm or (2, 4))))
        return tile_buffer_shortfall(cfg, **_tile_share(mm, cfg, big))
    if spec.is_pool:
        return pool_buffer_shortfall(cfg, **_pool_geometry(spec))
    return tile_buffer_shortfall(cfg, **_tile_share(spec, cfg, weight_bytes))


def _pool_geometry(spec: LayerSpec) -> dict:
    """`golden.tiling.pool_buffer_use`'s arguments for pool layer ``spec`` (a global pool is
    its one ``H x W`` window)."""
    c, h, w = spec.in_shape
    (kh, kw), (sh, sw), (ph, pw) = spec.kernel, spec.stride, spec.padding
    return dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw)


def check_tile_buffers(cn: CompiledNetwork) -> None:
    """Raise `NetworkError` (one line) for the first layer that does not fit the tile buffers
    of ``cn.config`` (the RTL would refuse it with ``BAD_SHAPE`` / ``BAD_SIZE``)."""
    cfg, net = cn.config, cn.network
    for cl in cn.layers:
        for name, (need, entries) in tile_buffer_needs(cl, cfg).items():
            have = getattr(cfg, name)
            if entries > have:
                spec = cl.spec
                where = f"{net.source}:{spec.line}" if spec.line else net.source
                raise NetworkError(
                    f"{where}: layers[{spec.index}] ({spec.name}) needs {name} >= {need} "
                    f"({entries} entries) for the rtl engine, this configuration has {have}")


def _input(net: Network, rng) -> tuple[np.ndarray, float]:
    v = net.input_values
    if v is None:
        x = rng.integers(-127, 128, size=net.input_shape)
        x = np.where(rng.random(net.input_shape) < net.input_density, x, 0)
        return x.astype(np.int8), net.input_scale or DEFAULT_INPUT_SCALE
    if np.issubdtype(v.dtype, np.floating):
        s = net.input_scale or float(np.abs(v).max()) / 127 or 1.0
        return np.clip(np.rint(v / s), -127, 127).astype(np.int8), s
    return v.astype(np.int8), net.input_scale or DEFAULT_INPUT_SCALE


def _weights(spec: LayerSpec, cfg, rng, s_x: float) -> tuple[np.ndarray, np.ndarray]:
    """Pruned int8 weights and their per-channel scale.

    Float weights are quantized per output channel with ``max |w| / 127``, floored so that a
    given float bias fits int32 once divided by ``s_x * s_w`` (a near-dead row, all weights
    ~0, gets the scale its bias needs and quantizes to zeros instead of overflowing)."""
    w, given_scale = spec.weights, None
    if w is None:
        w = rng.integers(-127, 128, size=spec.weight_shape).astype(np.int8)
    elif np.issubdtype(w.dtype, np.floating):
        amax = np.abs(w.reshape(spec.out, -1)).max(axis=1).astype(np.float64)
        given_scale = amax / 127
        if isinstance(spec.bias, np.ndarray) and np.issubdtype(spec.bias.dtype, np.floating):
            given_scale = np.maximum(given_scale, np.abs(spec.bias) / (s_x * BIAS_LIMIT))
        given_scale = np.where(given_scale > 0, given_scale, 1.0)
        w = np.clip(np.rint(w / given_scale.reshape(-1, *[1] * (w.ndim - 1))), -127, 127)
        w = w.astype(np.int8)
    else:
        w = w.astype(np.int8)
    if spec.prune != "none":
        w, _ = prune(w, spec.prune, density=spec.density, block_size=cfg.block_size,
                     nm=spec.nm or (2, 4))
    if given_scale is None:
        if spec.weight_scale is not None:
            given_scale = np.broadcast_to(np.asarray(spec.weight_scale, dtype=np.float64),
                                          (spec.out,)).copy()
        else:  # He-like: unit-variance inputs give unit-variance outputs
            sq = float((w.reshape(spec.out, -1).astype(np.float64) ** 2).sum(axis=1).mean())
            given_scale = np.full(spec.out, 1 / math.sqrt(sq) if sq > 0 else 1.0)
    return w, given_scale.astype(np.float64)


def _out_scale(func: str, in_scale: float) -> float:
    """Output LSB of a table so that ``max |f|`` over the int8 input domain maps to 127."""
    with np.errstate(all="ignore"):
        v = FUNCTIONS[func](np.arange(-128, 128, dtype=np.float64) * in_scale)
    v = np.abs(v[np.isfinite(v)])
    top = float(v.max()) if v.size else 0.0
    return top / 127 if top > 0 else in_scale


def _layer(spec: LayerSpec, cfg, curs: list, s_x: float, rng, quant: str
           ) -> tuple[CompiledLayer, list]:
    """Compile one layer for the inputs ``curs`` (flat int8 arrays, one per image of a batch;
    the scales are calibrated over all of them); the compiled layer holds the first one's
    input and output, the list every output."""
    if spec.is_pool:
        return _pool_layer(spec, curs, s_x)
    assert not spec.is_add, "an add is compiled by _add_layer"
    w, s_w = _weights(spec, cfg, rng, s_x)
    if spec.groups > 1:     # depthwise: the block-diagonal conv2d (zeros off the diagonal)
        full = np.zeros((spec.out, spec.in_shape[0], *spec.kernel), dtype=w.dtype)
        full[np.arange(spec.out), np.arange(spec.out)] = w[:, 0]
        w = full
    w2 = w.reshape(spec.out, -1)
    m, k, n = spec.mkn
    aw = cfg.acc_width
    nm = hardware_nm(spec.nm or (2, 4))
    packed = pack_weights(w2, spec.fmt, group_size=cfg.group_size, block_size=cfg.block_size,
                          nm=nm)
    geo = {} if spec.op == "matmul" else dict(stride=spec.stride, padding=spec.padding,
                                               dilation=spec.dilation)
    xs, colss = [], []
    for cur in curs:
        if spec.op == "matmul":
            x = cur.reshape(k, n)
            cols = x
        else:
            x = cur.reshape(1, *spec.in_shape)
            cols, _ = im2col(x, spec.kernel[0], spec.kernel[1], **geo)
        xs.append(x)
        colss.append(cols)
    x, cols = xs[0], colss[0]
    # (M, N) wrapped accumulators of every input, side by side
    acc = np.concatenate([matmul(w2, c, acc_width=aw) for c in colss], axis=1)
    bias = mult = shift = lut = s_y = None
    s_out = s_x
    if spec.requant or not isinstance(spec.bias, bool):
        amax = int(np.abs(acc).max(initial=1)) + 1
        if spec.bias is True and quant == "random":
            bias = rng.integers(-amax // 4 - 1, amax // 4 + 1, size=m).astype(np.int64)
        elif spec.bias is True:
            spread = max(1, int(np.std(acc)) // 2)
            bias = rng.integers(-spread, spread + 1, size=m).astype(np.int64)
        elif spec.bias is False:
            bias = np.zeros(m, dtype=np.int64)
        elif np.issubdtype(spec.bias.dtype, np.floating):
            bias = np.rint(spec.bias / (s_x * s_w)).astype(np.int64)
        else:
            bias = spec.bias.astype(np.int64)
        if bias.size and (bias.min() < -2**31 or bias.max() > 2**31 - 1):
            raise NetworkError(f"layers[{spec.index}].bias must fit int32 once quantized, "
                               f"not range [{int(bias.min())}, {int(bias.max())}]")
    if spec.requant:
        if quant == "random":  # mult / 2**shift scales max |acc| to about 2**7
            # multipliers of 21..31 bits (log-uniform: every bit of the int32 field is used)
            bits = rng.integers(21, 32, size=m)
            mult = rng.integers(1 << (bits - 1), (1 << bits) - 1).astype(np.int64)
            shift = np.clip(amax.bit_length() + bits - 7, 1, 63).astype(np.int64)
            shift = np.maximum(shift - rng.integers(0, 3, size=m), 1)
            s_y, s_out = RANDOM_LUT_SCALES[0], s_x
        else:
            if spec.requant_scale is not None:
                s_y = spec.requant_scale
            else:
                real = wrap(acc + bias[:, None], aw).astype(np.float64) * (s_x * s_w)[:, None]
                top = float(np.abs(real).max()) if real.size else 0.0
                s_y = top / 127 if top > 0 else s_x * float(s_w.mean())
            mult, shift = requant_params(s_x * s_w / s_y)
            s_out = s_y
        if spec.activation:
            if quant == "random":
                s_out = RANDOM_LUT_SCALES[1]
            else:
                s_out = spec.out_scale or _out_scale(spec.activation, s_y)
            lut = build_lut(spec.activation, s_y, s_out)
    kw = dict(bias=bias if spec.requant else None, mult=mult, shift=shift, lut=lut, acc_width=aw)
    ys = []
    for xb in xs:
        if spec.op == "matmul":
            y = matmul(w2, xb, **kw)
        else:
            y = conv2d(xb, w, **geo, **kw).reshape(m, n)
        if not spec.requant:
            y = wrap(y, 32)  # the out buffer holds int32 accumulators (their low 32 bits)
        ys.append(y)
    st = layer_stats(packed, cols, spec.fmt, cfg, bias=spec.requant, requant=spec.requant,
                     lut=lut is not None, act_bytes=int(x.size))
    slices = split_weights(w2, spec.fmt, cfg, nm=nm)
    return CompiledLayer(spec=spec, descriptor=Descriptor(), weights=w, packed=packed,
                         slices=slices,
                         bias=bias, mult=mult, shift=shift, lut=lut, x=x, expected=ys[0],
                         in_scale=s_x, out_scale=s_out, weight_scale=s_w, stats=st,
                         requant_scale=s_y), ys


def _pool(spec: LayerSpec, x: np.ndarray) -> np.ndarray:
    """The golden pool of ``spec`` on the int8 ``(1, C, H, W)`` input ``x``."""
    if spec.op == "maxpool2d":
        return maxpool2d(x, spec.kernel, spec.stride, spec.padding)
    if spec.op == "avgpool2d":
        return avgpool2d(x, spec.kernel, spec.stride, spec.padding,
                         count_include_pad=spec.count_include_pad)
    return global_avgpool(x)


def _pool_layer(spec: LayerSpec, curs: list, s_x: float) -> tuple[CompiledLayer, list]:
    """A pooling layer: the golden pool of every input; the output keeps the input's scale
    (docs/spec.md section 2.3: no bias, no requantization, no table)."""
    xs = [cur.reshape(1, *spec.in_shape) for cur in curs]
    ys = [_pool(spec, x).reshape(spec.out, -1) for x in xs]
    return CompiledLayer(spec=spec, descriptor=Descriptor(),
                         weights=np.zeros(0, dtype=np.int8), packed=None, slices=[],
                         bias=None, mult=None, shift=None, lut=None, x=xs[0], expected=ys[0],
                         in_scale=s_x, out_scale=s_x, weight_scale=np.ones(0), stats=None,
                         requant_scale=None), ys


def _add_layer(spec: LayerSpec, cfg, curs_a: list, s_a: float, curs_b: list, s_b: float,
               hardware: bool = False) -> tuple[CompiledLayer, list]:
    """A residual add of the int8 inputs ``curs_a`` and ``curs_b`` (one flat array per image of
    a batch) at scales ``s_a`` and ``s_b`` (docs/spec.md section 2.4).  The output scale is
    ``requant_scale`` or calibrated as a layer's requantization (step 5: the largest real sum
    ``|a * s_a + b * s_b|`` over every input / 127); ``golden.add_params`` codes the two
    ratios, bias 0; the table as other layers' (step 6).  ``bias``, ``mult``, ``shift`` hold the
    two records ``(0, mult_a, shift_a)``, ``(0, mult_b, shift_b)``.

    ``hardware``: the ratios of `golden.add_matmul_params` and the matmul that computes them
    (`_add_matmul`, host/add_matmul.py): ``as_matmul`` is set, the records are the matmul's."""
    shape = (1, *spec.in_shape) if len(spec.in_shape) == 3 else spec.in_shape
    xa = [c.reshape(shape) for c in curs_a]
    xb = [c.reshape(shape) for c in curs_b]
    if spec.requant_scale is not None:
        s_y = spec.requant_scale
    else:
        top = max(float(np.abs(a.astype(np.float64) * s_a + b.astype(np.float64) * s_b).max(
            initial=0.0)) for a, b in zip(xa, xb, strict=True))
        s_y = top / 127 if top > 0 else max(s_a, s_b)
    try:
        p = (add_matmul_params if hardware else add_params)(s_a, s_b, s_y)
    except ValueError as exc:
        raise NetworkError(f"layers[{spec.index}].requant_scale must keep the input scales "
                           f"below 2**30 output LSBs ({exc}), not {s_y!r}") from None
    lut, s_out = None, s_y
    if spec.activation:
        s_out = spec.out_scale or _out_scale(spec.activation, s_y)
        lut = build_lut(spec.activation, s_y, s_out)
    kw = {k: p[k] for k in ("mult_a", "shift_a", "mult_b", "shift_b")}
    ys = [add_requant(a, b, **kw, lut=lut).reshape(spec.out, -1) for a, b in zip(xa, xb)]
    if hardware:
        return _add_matmul(spec, cfg, p, xa[0], xb[0], ys[0], lut, s_a, s_b, s_y, s_out), ys
    return CompiledLayer(spec=spec, descriptor=Descriptor(),
                         weights=np.zeros(0, dtype=np.int8), packed=None, slices=[],
                         bias=np.zeros(2, dtype=np.int64),
                         mult=np.array([p["mult_a"], p["mult_b"]], dtype=np.int64),
                         shift=np.array([p["shift_a"], p["shift_b"]], dtype=np.int64),
                         lut=lut, x=xa[0], expected=ys[0], in_scale=s_a, out_scale=s_out,
                         weight_scale=np.ones(0), stats=None, requant_scale=s_y,
                         x_b=xb[0], in_scale_b=s_b), ys


def _add_matmul_spec(spec: LayerSpec, cfg, w_first: int, w_second: int) -> LayerSpec:
    """The matmul that runs add ``spec`` on the hardware (host/add_matmul.py): ``W[C, R + C]``
    (``R`` = `pair_rows`) with ``w_first`` / ``w_second`` on its two diagonals as its fixed
    weights, the format `add_format` takes, ``(R + C, N)`` input read from the first input."""
    c, n = spec.out, math.prod(spec.out_shape[1:])
    w2 = add_weights(c, pair_rows(c, n, ALIGN), w_first, w_second)
    fmt, nm = add_format(w2, cfg)
    return replace(spec, op="matmul", in_shape=(w2.shape[1], n), out_shape=(c, n), fmt=fmt,
                   nm=nm, prune="none", weights=w2, bias=False, requant=True,
                   inputs=(min(spec.sources),))


def _add_matmul(spec: LayerSpec, cfg, p: dict, a, b, y, lut, s_a: float, s_b: float,
                s_y: float, s_out: float) -> CompiledLayer:
    """The compiled add that runs as a matmul (host/add_matmul.py): ``W[C, R + C] @
    X[R + C, N]`` over its inputs side by side, the first written at the top (``R`` =
    `pair_rows`), one record ``(0, mult, shift)`` per row; ``as_matmul`` is that matmul's spec
    (the descriptor, buffers and report follow it), ``x`` its input (zeros between the two)."""
    sa, sb = spec.sources
    first, second = (a, b) if sa < sb else (b, a)
    mm = _add_matmul_spec(spec, cfg, *((p["w_a"], p["w_b"]) if sa < sb else
                                       (p["w_b"], p["w_a"])))
    w2, fmt, (c, n) = mm.weights, mm.fmt, mm.out_shape
    rows = mm.in_shape[0] - c
    x = np.zeros((rows + c, n), dtype=np.int8)
    x[:c], x[rows:] = first.reshape(c, n), second.reshape(c, n)
    hnm = hardware_nm(mm.nm or (2, 4))
    packed = pack_weights(w2, fmt, group_size=cfg.group_size, block_size=cfg.block_size,
                          nm=hnm)
    st = layer_stats(packed, x, fmt, cfg, bias=True, requant=True, lut=lut is not None,
                     act_bytes=int(x.size))
    return CompiledLayer(spec=spec, descriptor=Descriptor(), weights=w2, packed=packed,
                         slices=split_weights(w2, fmt, cfg, nm=hnm),
                         bias=np.zeros(c, dtype=np.int64),
                         mult=np.full(c, p["mult"], dtype=np.int64),
                         shift=np.full(c, p["shift"], dtype=np.int64),
                         lut=lut, x=x, expected=y, in_scale=s_a, out_scale=s_out,
                         weight_scale=np.ones(c), stats=st, requant_scale=s_y,
                         x_b=b, in_scale_b=s_b, as_matmul=mm,
                         add_weights=(int(p["w_a"]), int(p["w_b"])))


def _compile_layer(spec: LayerSpec, cfg, tensors: dict, rng, quant: str,
                   limits: str = "architecture") -> tuple[CompiledLayer, list]:
    """`_layer` or `_add_layer` of ``spec`` on the tensors it reads: ``tensors[j]`` is
    ``(inputs, scale)`` of layer ``j``'s output (``-1``: the network input); ``limits``
    ``hardware`` compiles an add as a matmul."""
    if spec.is_add:
        (ca, sa), (cb, sb) = (tensors[j] for j in spec.sources)
        return _add_layer(spec, cfg, ca, sa, cb, sb, hardware=limits == "hardware")
    curs, s_x = tensors[spec.sources[0]]
    return _layer(spec, cfg, curs, s_x, rng, quant)


def global_pool_block(c: int, h: int, w: int, cfg) -> int:
    """Channels per block of a global average pool of ``C x H x W`` compiled as an average
    pool (`_pool_descriptor`): the largest divisor of ``C`` up to ``cfg.cols``; 1 (the
    global_avgpool descriptor itself) when that is 1 or the plane is larger than the
    hardware's kernel (`HW_GEO_MAX` per axis)."""
    if max(h, w) > HW_GEO_MAX:
        return 1
    return max(b for b in range(1, min(c, int(cfg.cols)) + 1) if c % b == 0)


def _pool_descriptor(spec: LayerSpec, cfg, *, acts: int, out: int, flags) -> Descriptor:
    """The descriptor of a pool (docs/spec.md section 8.2).  INCLUDE_PAD is set only where it
    changes the result, an average pool with padding (without padding every window is real
    and both divisors are ``KH*KW``).

    A global average pool of ``C x H x W`` runs as the average pool of the same bytes read as
    ``C / b`` channels of ``b*H x W`` with kernel and stride ``(H, W)`` (``b`` =
    `global_pool_block`): window ``i`` of block ``j`` is exactly channel ``j*b + i``'s plane
    and the outputs land in channel order, so the result is the same bits (spec 2.3: one
    rule, ``count = H*W``), but a tile's gather fills the ``cols`` columns of an entry with
    ``b`` channels' windows instead of one (the global_avgpool descriptor is one window per
    channel: ``cols - 1`` columns of every entry idle), and the tiles pool the blocks
    interleaved as they arrive."""
    c, h, w = spec.in_shape
    if spec.op == "global_avgpool":
        b = global_pool_block(c, h, w, cfg)
        if b > 1:
            return avgpool2d_descriptor(c=c // b, h=b * h, w=w, kernel=(h, w), stride=(h, w),
                                        acts=acts, out=out, flags=flags,
                                        count_include_pad=False)
        return global_avgpool_descriptor(c=c, h=h, w=w, acts=acts, out=out, flags=flags)
    geo = dict(c=c, h=h, w=w, kernel=spec.kernel, stride=spec.stride, pad=spec.padding,
               acts=acts, out=out, flags=flags)
    if spec.op == "maxpool2d":
        return maxpool2d_descriptor(**geo)
    return avgpool2d_descriptor(**geo, count_include_pad=spec.count_include_pad
                                and spec.padding != (0, 0))


def _architecture_view(cfg):
    from .model_engine import architecture_view

    return architecture_view(cfg)


def random_input(net: Network, seed: int) -> np.ndarray:
    """The random input of ``net`` (all images of a batch) drawn from ``[seed, 0]``, as
    `compile_network` draws it for one network."""
    rng = np.random.default_rng([seed, 0])
    shape = (net.batch, *net.input_shape) if net.batch > 1 else net.input_shape
    x = rng.integers(-127, 128, size=shape)
    return np.where(rng.random(shape) < net.input_density, x, 0).astype(np.int8)


def _is_fixed(spec: LayerSpec) -> bool:
    """Every parameter of the layer is given (no random draw, no calibration on the input):
    its compiled weights, records and table do not depend on the chain it is in (a pool has
    none)."""
    if spec.is_pool:
        return True
    if spec.is_add:
        return spec.requant_scale is not None
    return (spec.weights is not None and spec.prune == "none" and spec.bias is not True
            and (not spec.requant or spec.requant_scale is not None))


def _input_scale(net: Network, x0: np.ndarray) -> float:
    v = net.input_values
    if v is not None and np.issubdtype(v.dtype, np.floating) and not net.input_scale:
        return float(np.abs(v).max()) / 127 or 1.0
    return net.input_scale or DEFAULT_INPUT_SCALE


def _frozen(spec: LayerSpec, cl: CompiledLayer) -> LayerSpec:
    if spec.is_pool:        # nothing to fix: no weights, the input's scale
        return spec
    if spec.is_add:         # its output scale (the records follow from the input scales)
        return replace(spec, requant_scale=cl.requant_scale,
                       out_scale=cl.out_scale if spec.activation else None)
    w = cl.weights
    if spec.groups > 1:     # the taps of the block-diagonal matrix, (C, 1, KH, KW) again
        w = w[np.arange(spec.out), np.arange(spec.out)][:, None]
    return replace(spec, weights=w, prune="none", density=None,
                   weight_scale=cl.weight_scale,
                   bias=False if cl.bias is None else cl.bias.astype(np.int64),
                   requant_scale=cl.requant_scale if spec.requant else None,
                   out_scale=cl.out_scale if spec.requant and spec.activation else None)


def freeze(cn: CompiledNetwork, j: int = 0) -> Network:
    """Network ``j`` of a compiled window with every parameter fixed to what was compiled:
    int8 weights (pruned), per-channel weight scales, int32 biases, the input LSB and every
    layer's output LSB.  Compiling it again on another input of the same shape uses the same
    parameters (no random draw, no calibration)."""
    net = cn.networks[j]
    layers = tuple(_frozen(cl.spec, cl) for cl in cn.chain(j))
    return replace(net, layers=layers, input_scale=cn.input_scales[j])


def _as_inputs(net: Network, values, what: str) -> list[np.ndarray]:
    """``values`` as a list of network inputs (one per image of an image network, one matrix of
    columns of a matrix network), checked against the network's input."""
    v = np.asarray(values)
    if v.dtype == object or not (np.issubdtype(v.dtype, np.integer)
                                 or np.issubdtype(v.dtype, np.floating)):
        raise NetworkError(f"{what} must hold numbers, not {v.dtype}")
    if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v)):
        raise NetworkError(f"{what} must hold finite numbers only (no NaN or inf)")
    if np.issubdtype(v.dtype, np.integer) and v.size and (v.min() < -128 or v.max() > 127):
        raise NetworkError(f"{what} must hold int8 values (-128..127) when given as integers, "
                           f"not range [{int(v.min())}, {int(v.max())}]")
    shp = net.input_shape
    if len(shp) == 3:
        if v.shape == shp:
            v = v[None]
        if v.ndim != 4 or v.shape[1:] != shp or not v.shape[0]:
            raise NetworkError(f"{what} must have the shape [N, {', '.join(map(str, shp))}] of "
                               f"the network's input images, not {list(v.shape)}")
        return list(v)
    if v.ndim != 2 or v.shape[0] != shp[0] or not v.shape[1]:
        raise NetworkError(f"{what} must have the shape [{shp[0]}, N] (columns of the "
                           f"network's input matrix), not {list(v.shape)}")
    return [v]


def calibrate(net: Network, cfg, calib=None, *, seed: int | None = None,
              limits: str = "hardware") -> Network:
    """Fix every scale of ``net`` on a calibration set (docs/host.md section 2).

    ``calib``: images ``[B, C, H, W]`` of an image network or columns ``[K, B]`` of a matrix
    network (float: real values; int: int8); default the network's own input (all images of a
    batch).  Layer by layer, the requantization scale is the largest real output over every
    calibration input / 127, as `compile_network` does for one input; the result is
    `freeze`-like: weights, biases and scales fixed, so every image or slice of a later run uses
    the same parameters.  ``limits``: as `compile_network`'s.

    Raises
    ------
    NetworkError
        ``calib`` has the wrong shape or values, or a network with a matrix input feeds a
        conv2d (its columns are no batch).
    """
    _check_config(net, cfg, limits)
    s = net.seed if seed is None else int(seed)
    if calib is None:
        calib = random_input(net, s) if net.input_values is None else net.input_values
    curs = _as_inputs(net, calib, "calibration input")
    v = np.asarray(calib)
    if np.issubdtype(v.dtype, np.floating):
        s_x = net.input_scale or float(np.abs(v).max()) / 127 or 1.0
        curs = [np.clip(np.rint(c / s_x), -127, 127).astype(np.int8) for c in curs]
    else:
        s_x = net.input_scale or DEFAULT_INPUT_SCALE
        curs = [c.astype(np.int8) for c in curs]
    s_x0 = s_x
    run = net if len(net.input_shape) == 3 else net.with_columns(curs[0].shape[1])
    curs = [c.ravel() for c in curs]
    specs = []
    tensors = {-1: (curs, s_x)}
    for spec, orig in zip(run.layers, net.layers, strict=True):
        cl, ys = _compile_layer(spec, cfg, tensors, np.random.default_rng([s, spec.index + 1]),
                                "calibrate", limits)
        specs.append(_frozen(orig, cl))
        tensors[spec.index] = [y.ravel().astype(np.int8) for y in ys], cl.out_scale
    return replace(net, layers=tuple(specs), input_scale=s_x0)


def batch_networks(net: Network, cfg, *, seed: int | None = None,
                   limits: str = "hardware") -> list[Network]:
    """A network whose input is a batch of ``N`` images as ``N`` networks of one image each,
    with the parameters fixed once for the whole batch (`calibrate` on the batch itself unless
    they are fixed already): compiled together they share one copy of every layer's weights,
    records and table."""
    if net.batch == 1:
        return [net]
    fixed = net if all(_is_fixed(sp) for sp in net.layers) and net.input_scale else \
        calibrate(net, cfg, seed=seed, limits=limits)
    values = net.input_values if net.input_values is not None else \
        random_input(net, net.seed if seed is None else int(seed))  # the images calibrate drew
    return [replace(fixed, input_values=values[b], batch=1) for b in range(net.batch)]


def compile_network(net, cfg, *, base: int = DEFAULT_BASE, seed: int | None = None,
                    irq_last: bool = True, quant: str = "calibrate",
                    out_fill: str = "zero", split="auto", tables="auto",
                    limits: str = "hardware", reuse_buffers: bool = False,
                    decisions: dict | None = None) -> CompiledNetwork:
    """Compile ``net`` for the build ``cfg`` into a memory image and a descriptor table.

    Parameters
    ----------
    net : Network or sequence of Network
        A validated layer list (`sparsemac.host.load_network` / `network_from_dict`).  Several
        networks share one window and one descriptor table, one after the other; each chain
        of layers starts from its own input (their region names get a ``net<j>.`` prefix).
    cfg : hw.config.AcceleratorConfig
        The build: formats, G, B, ``nm_max_m``, LUT engine, ``acc_width``, AXI beat.
    base : int
        Absolute address of the memory window (a multiple of 4096).
    seed : int, optional
        Overrides ``net.seed`` (random weights, biases, input).
    irq_last : bool
        Set the IRQ flag on the last descriptor.
    quant : {"calibrate", "random"}
        ``calibrate``: requantization scaled so each layer's outputs use the int8 range
        (docs/host.md).  ``random``: random ``mult`` of ``b`` = 21..31 bits, ``shift`` near
        ``bit_length(max |acc|) + b - 7`` (minus 0..2) and random bias within ``max |acc| / 4``,
        activation tables at the fixed `RANDOM_LUT_SCALES` (RTL regressions: every rounding
        and saturation path, not a meaningful model).
    out_fill : {"zero", "random"}
        Content of the output buffers in the image: zeros, or random bytes (a canary that shows
        an output the accelerator did not write).
    split : {"rows", "cols", "auto"} or sequence of them
        How each layer is spread over the tiles (`SPLITS`, docs/spec.md section 8.1):
        ``cols`` splits the column groups where the layer has at least two of them and the
        one image of all rows fits a tile (`col_split_fits`), else rows; ``auto`` takes the
        faster of the two by the network cycle model (cols where only it fits the tile
        buffers).  A sequence gives one choice per layer
        (every network's layers in order; networks of one image only).
    tables : {"early", "late", "auto"} or sequence of them
        When each requantized layer's activation table and records are read (`TABLES`; the
        descriptor's ``LATE_TABLES`` flag): before the activations (``early``), after the
        weight image bodies while the tiles compute (``late``), or the faster of the two by
        the network cycle model (``auto``, `sparsemac.host.cycles.prefer_late_tables`).  The
        results are the same either way.  A sequence: one choice per layer, as ``split``
        (ignored for a layer without requantization).
    limits : {"hardware", "architecture"}
        ``hardware``: refuse a layer the generated hardware of ``cfg`` cannot run (pools:
        `_check_pool_hardware`); ``architecture``: only what docs/spec.md forbids, every
        opcode of its section 8.2 allowed (for ``run_model(..., limits="architecture")``).
    reuse_buffers : bool
        Let activation buffers (the network inputs and every layer's output) share bytes:
        a buffer may take the bytes of one whose last reader is an earlier descriptor than the
        one that writes it (`activation_blocks`, `MemoryPlan.arena`; docs/host.md section 3).
        The last layer's output of every network is kept until the table ends (the host reads
        it back); an intermediate output may be overwritten by a later layer (its
        ``overwritten_by``), so compare it when it is written, not after the table.  Default
        False: no buffer is reused, every output survives the table.
    decisions : dict, optional
        For a batch of images: the ``auto`` choices of ``split`` and ``tables`` per layer,
        made by the network cycle model on the batch's first image and kept for every other
        image (the model runs twice per layer, not twice per layer and image).  Pass the same
        dict to the compilations of every job of one run (`sparsemac.host.run.run` does) to
        keep the first job's choices for all of them; a new dict per call otherwise.

    Raises
    ------
    NetworkError
        A layer needs something this configuration does not build (format, LUT, N:M, a
        pool or its geometry).
    ValueError
        ``base`` is not a non-negative multiple of 4096, or ``quant`` / ``out_fill`` unknown.
    """
    if isinstance(base, bool) or not isinstance(base, int) or base < 0 or base % 4096:
        raise ValueError(f"base must be a non-negative multiple of 4096, not {base!r}")
    if quant not in QUANT_MODES:
        raise ValueError(f"quant must be one of {', '.join(QUANT_MODES)}, not {quant!r}")
    if out_fill not in OUT_FILLS:
        raise ValueError(f"out_fill must be one of {', '.join(OUT_FILLS)}, not {out_fill!r}")
    if limits not in LIMITS:
        raise ValueError(f"limits must be one of {', '.join(LIMITS)}, not {limits!r}")
    nets = [net] if isinstance(net, Network) else list(net)
    if not nets or not all(isinstance(n, Network) for n in nets):
        raise TypeError(f"net must be a Network or a non-empty sequence of them, not {net!r}")
    for n in nets:
        _check_config(n, cfg, limits)
    total = sum(len(n.layers) for n in nets)
    batch = any(n.batch > 1 for n in nets)
    # a list: one choice per layer, in order
    per_layer = iter(_per_layer_choices("split", split, SPLITS, total, batch))
    table_per_layer = iter(_per_layer_choices("tables", tables, TABLES, total, batch))
    origin = list(range(len(nets)))     # per network compiled: the given network it is of
    if batch:
        if quant != "calibrate":
            raise ValueError("a batch of images (input [N, C, H, W]) needs quant='calibrate'")
        expanded = [batch_networks(n, cfg, seed=seed, limits=limits) for n in nets]
        origin = [i for i, bs in enumerate(expanded) for _ in bs]
        nets = [b for bs in expanded for b in bs]
    # ``auto`` choices (split, tables) of a batch: made by the cycle model on the batch's first
    # image and kept for the others (`decisions`: across the jobs of a run too)
    decisions = {} if decisions is None else decisions
    # random streams: network 0 draws its input from [seed, 0] and layer i from [seed, i + 1];
    # network j > 0 from [seed, j, 0] and [seed, j, i + 1]
    chains = []     # (prefix, input, compiled layers) per network
    for j, n in enumerate(nets):
        s = n.seed if seed is None else int(seed)
        key = [s] if j == 0 else [s, j]
        x0, s_x = _input(n, np.random.default_rng([*key, 0]))
        tensors, layers = {-1: ([x0.ravel()], s_x)}, []
        for spec in n.layers:
            cl, _ = _compile_layer(spec, cfg, tensors,
                                   np.random.default_rng([*key, spec.index + 1]), quant, limits)
            choice = split if isinstance(split, str) else next(per_layer)
            if spec.has_weights or cl.as_matmul is not None:
                key_split = (origin[j], spec.index, "split")
                if not batch or key_split not in decisions:
                    decisions[key_split] = _use_col_split(cl, cfg, choice)
                if decisions[key_split]:
                    cl.slices = [cl.packed]
            cl.chain = j
            cl.tables = tables if isinstance(tables, str) else next(table_per_layer)
            layers.append(cl)
            tensors[spec.index] = [cl.expected.ravel().astype(np.int8)], cl.out_scale
        chains.append((f"net{j}." if len(nets) > 1 else "", x0, layers, _input_scale(n, x0)))
    every = [cl for c in chains for cl in c[2]]
    plan = MemoryPlan()
    desc_off = plan.alloc("descriptors", DESC_BYTES * len(every))
    # with reuse every activation buffer is placed up front (its live range known from the
    # graph), right after the table; weights, records and tables follow and are never shared
    arena = plan.arena(activation_blocks(chains, nets, limits)) if reuse_buffers else None
    blobs: list[tuple[int, bytes]] = []
    outs: list[tuple[int, int]] = []
    shared: dict[int, tuple] = {}   # id(spec) -> (bytes, offsets) of a fixed layer's parameters
    # one copy of each distinct activation table: layers with the same table bytes (a ReLU
    # at its input's scale is max(x, 0) at any scale) point at the same address, and the
    # sequencer does not send a table again that the tiles hold (docs/spec.md section 8)
    tables_at: dict[bytes, tuple] = {}
    held = [None]       # the table every tile holds after the descriptors so far

    def table_alloc(name: str, limg: bytes) -> tuple:
        if limg not in tables_at:
            lo = plan.alloc(f"{name}.lut", LUT_BYTES)
            blobs.append((lo, limg))
            tables_at[limg] = (lo, plan.region(f"{name}.lut"))
        return tables_at[limg]
    for (prefix, x0, layers, _), n in zip(chains, nets, strict=True):
        # where each tensor lives (-1: the input); without reuse no buffer is ever reused, so
        # every output stays in place until the table ends, past its last reader.  The two
        # inputs of an add compiled as a matmul sit side by side: the first one's buffer
        # reserves the rows up to the second's (host/add_matmul.py; with reuse the arena
        # places them as one block)
        after, at = pairs(n) if limits == "hardware" else ({}, {})
        offs: dict[int, int] = {}

        def out_alloc(idx: int, name: str, size: int, _after=after, _at=at, _offs=offs,
                      _layers=layers) -> int:
            if arena is not None:   # placed by the arena already
                assert plan.region(name).size == size, f"compiler bug: size of {name}"
                _offs[idx] = arena[name]
                return arena[name]
            if idx in _at:      # the second input of an add: R rows after the first
                mm = _layers[_after[_at[idx]]].as_matmul
                off = _offs[_at[idx]] + (mm.in_shape[0] - mm.out) * mm.in_shape[1]
                plan.place(name, off, size)
            else:
                off = plan.alloc(name, size)
            if idx in _after:   # the first input: reserve up to the end of the second
                mm = _layers[_after[idx]].as_matmul
                plan.reserve(off + mm.in_shape[0] * mm.in_shape[1] - plan.end)
            _offs[idx] = off
            return off

        out_alloc(-1, f"{prefix}input", x0.size)
        blobs.append((offs[-1], x0.astype(np.int8).tobytes()))
        for cl in layers:
            s = cl.spec
            name = f"{prefix}{s.name}"
            if cl.as_matmul is not None:    # an add as the matmul over both inputs
                s = cl.as_matmul
            acts = offs[s.sources[0]]
            regs = {"acts": Region(f"{name}.acts", acts, int(cl.x.size))}
            if s.is_add:        # a at acts, b at weights, two records, the table
                b = offs[s.sources[1]]
                regs["weights"] = Region(f"{name}.b", b, int(cl.x_b.size))
                qimg = quant_records(cl.bias, cl.mult, cl.shift)
                qo = plan.alloc(f"{name}.quant", len(qimg))
                blobs.append((qo, qimg))
                flags = Flags.REQUANT
                lo = 0
                if cl.lut is not None:
                    lo, regs["lut"] = table_alloc(name, cl.lut.astype(np.int8).tobytes())
                    flags |= Flags.LUT
                if irq_last and cl is every[-1]:
                    flags |= Flags.IRQ
                oo = out_alloc(s.index, f"{name}.out", cl.expected.size)
                outs.append((oo, cl.expected.size))
                c, h, w = s.in_shape if len(s.in_shape) == 3 else (s.in_shape[0], 1,
                                                                    s.in_shape[1])
                cl.descriptor = add_descriptor(c=c, h=h, w=w, a=acts, b=b, out=oo, quant=qo,
                                               lut=lo, flags=flags)
                for part in ("quant", "out"):
                    if plan.has(f"{name}.{part}"):
                        regs[part] = plan.region(f"{name}.{part}")
                cl.regions = regs
                offs[s.index] = oo
                continue
            if s.is_pool:       # no weights, records or table: input and output only
                oo = out_alloc(s.index, f"{name}.out", cl.expected.size)
                outs.append((oo, cl.expected.size))
                flags = Flags.IRQ if irq_last and cl is every[-1] else Flags(0)
                cl.descriptor = _pool_descriptor(s, cfg, acts=acts, out=oo, flags=flags)
                cl.regions = {**regs, "out": plan.region(f"{name}.out")}
                offs[s.index] = oo
                continue
            wimg = b"".join(pw.image.tobytes() for pw in cl.slices)
            qimg = quant_records(cl.bias, cl.mult, cl.shift) if s.requant else b""
            limg = cl.lut.astype(np.int8).tobytes() if cl.lut is not None else b""
            flags = Flags(0) | (Flags.REQUANT if s.requant else 0) | (
                Flags.LUT if cl.lut is not None else 0)
            prev = shared.get(id(s))
            if prev is not None and prev[0] == (wimg, qimg, limg):
                # the same fixed layer in another image of a batch: one copy of its parameters
                wo, qo, lo = prev[1]
                regs.update(prev[2])
            else:
                wo = plan.alloc(f"{name}.weights", len(wimg))
                blobs.append((wo, wimg))
                qo = lo = 0
                if s.requant:
                    qo = plan.alloc(f"{name}.quant", len(qimg))
                    blobs.append((qo, qimg))
                if cl.lut is not None:
                    lo, regs["lut"] = table_alloc(name, limg)
                if _is_fixed(s):
                    shared[id(s)] = ((wimg, qimg, limg), (wo, qo, lo),
                                     {part: regs["lut"] if part == "lut" else
                                      plan.region(f"{name}.{part}")
                                      for part in ("weights", "quant", "lut")
                                      if part in regs or plan.has(f"{name}.{part}")})
            if irq_last and cl is every[-1]:
                flags |= Flags.IRQ
            size = _out_bytes(cl)
            oo = out_alloc(s.index, f"{name}.out", size)
            outs.append((oo, size))
            common = dict(fmt=s.fmt, weights=wo, acts=acts, out=oo, quant=qo, lut=lo,
                          flags=flags, group_size=cfg.group_size, block_size=cfg.block_size,
                          nm=hardware_nm(s.nm or (2, 4)))
            if s.op == "matmul":
                m, k, n = s.mkn
                d = matmul_descriptor(m=m, k=k, n=n, **common)
            else:
                d = conv2d_descriptor(c=s.in_shape[0], h=s.in_shape[1], w=s.in_shape[2],
                                      kout=s.out, kh=s.kernel[0], kw=s.kernel[1],
                                      stride=s.stride, pad=s.padding, dilation=s.dilation,
                                      **common)
            if cl.slices[0] is cl.packed and cfg.tiles > 1:     # columns split (above)
                d = d.replace(col_split=col_split_of(s.mkn[2], cfg))
            key_tables = (origin[cl.chain], cl.spec.index, "tables")
            if s.requant and (not batch or key_tables not in decisions):
                kept = held[0] is not None and table_key(d) == held[0]
                decisions[key_tables] = _late_tables(cl, d, cfg, kept)
            if s.requant and decisions[key_tables]:
                d = d.replace(flags=d.flags | Flags.LATE_TABLES)
            cl.descriptor = d
            started = (len(tile_col_split(d.n, cfg.cols, d.col_split, cfg.tiles))
                       if d.col_split else len(cl.slices))
            held[0] = tables_held_after(held[0], d, started, cfg.tiles)
            for part in ("weights", "quant", "lut", "out"):
                if part not in regs and plan.has(f"{name}.{part}"):
                    regs[part] = plan.region(f"{name}.{part}")
            cl.regions = regs
            offs[s.index] = oo
    window = plan.window_bytes
    plan.check(window)
    if arena is not None:
        _mark_overwritten(every, plan.regions)
    image = bytearray(window)
    view = cfg if limits == "hardware" else _architecture_view(cfg)
    for i, cl in enumerate(every):
        code = validate_descriptor(cl.descriptor, view, window_bytes=window)
        assert code == ErrorCode.OK, f"compiler bug: descriptor {i} is invalid: {code.name}"
        image[desc_off + DESC_BYTES * i: desc_off + DESC_BYTES * (i + 1)] = cl.descriptor.pack()
    if out_fill == "random":
        canary = np.random.default_rng([nets[0].seed if seed is None else int(seed), 0, 0])
        # first, so that an output sharing bytes with the input (reuse) does not cover it
        blobs = [(off, canary.integers(0, 256, size=size, dtype=np.uint8).tobytes())
                 for off, size in outs] + blobs
    for off, raw in blobs:
        image[off:off + len(raw)] = raw
    code = validate_table(base + desc_off, len(every), mem_base=base, mem_limit=base + window,
                          axi_bytes=cfg.axi_data_width // 8)
    assert code == ErrorCode.OK, f"compiler bug: descriptor table is invalid: {code.name}"
    return CompiledNetwork(network=nets[0], config=cfg, base=base, image=bytes(image),
                           desc_offset=desc_off, layers=every, regions=list(plan.regions),
                           input=chains[0][1].ravel(), networks=tuple(nets),
                           inputs=tuple(c[1].ravel() for c in chains),
                           input_scales=tuple(c[3] for c in chains),
                           reuse_buffers=bool(reuse_buffers))


def _out_bytes(cl: CompiledLayer) -> int:
    """Bytes of a compiled layer's output buffer: int8, or int32 accumulators without
    requantization."""
    s = cl.as_matmul or cl.spec
    if s.is_add or s.is_pool:
        return int(cl.expected.size)
    return int(cl.expected.size) * (1 if s.requant else 4)


def activation_blocks(chains, nets, limits: str = "hardware") -> list:
    """The activation buffers of every network of a window with their live ranges, as
    `MemoryPlan.arena` takes them: ``(parts, (first, last))`` per block.

    Descriptor indices count over the whole table (network ``j``'s layers after network
    ``j - 1``'s).  ``first``: the descriptor writing the buffer (-1 for a network input: the
    host writes it before the table).  ``last``: its last reader (a layer naming it as an
    input; the writer itself when none does); the descriptor count for the last layer of every
    network, whose output the host reads after the table.  The two inputs of an add run as a
    matmul (``limits="hardware"``, `pairs`) are one block: the first one at 0, the second
    ``R`` rows on, live from the first one's writer to the later of their last readers (the
    add reads the rows between them too).  ``chains``: ``(prefix, input, compiled layers,
    input scale)`` per network, as `compile_network` builds them."""
    count = sum(len(c[2]) for c in chains)
    blocks, g0 = [], 0
    for (prefix, x0, layers, _), n in zip(chains, nets, strict=True):
        after, at = pairs(n) if limits == "hardware" else ({}, {})
        partner = {first: second for second, first in at.items()}
        where = {cl.spec.index: g0 + k for k, cl in enumerate(layers)}
        by_index = {cl.spec.index: cl for cl in layers}
        name = {-1: f"{prefix}input"} | {
            cl.spec.index: f"{prefix}{cl.spec.name}.out" for cl in layers}
        size = {-1: int(x0.size)} | {cl.spec.index: _out_bytes(cl) for cl in layers}
        first = {-1: -1} | where
        last = dict(first)
        for cl in layers:
            for src in cl.spec.sources:
                last[src] = max(last[src], where[cl.spec.index])
        last[layers[-1].spec.index] = count
        for t in sorted(first):
            if t in at:         # placed with the first input of its add
                continue
            parts, live = [(name[t], 0, size[t])], (first[t], last[t])
            if t in after:
                mm, t2 = by_index[after[t]].as_matmul, partner[t]
                rel = (mm.in_shape[0] - mm.out) * mm.in_shape[1]
                assert rel + size[t2] == mm.in_shape[0] * mm.in_shape[1], "compiler bug: pair"
                parts.append((name[t2], rel, size[t2]))
                live = (first[t], max(last[t], last[t2]))
            blocks.append((parts, live))
        g0 += len(layers)
    return blocks


def _mark_overwritten(every: list, regions) -> None:
    """Set each layer's ``overwritten_by``: the first later descriptor whose output buffer
    shares a byte with the layer's."""
    outs = [cl.regions["out"] for cl in every]
    for g, (cl, r) in enumerate(zip(every, outs, strict=True)):
        later = [h for h in range(g + 1, len(every))
                 if outs[h].offset < r.end and r.offset < outs[h].end]
        cl.overwritten_by = later[0] if later else None
