"""DescChecker (hw/hub/desc_checker.py) on the pooling opcodes (docs/spec.md sections 2.3 and
8.2) in amaranth.sim: codes against golden.hardware_descriptor_code, the pool outputs
(``pool``, ``pool_rows``, ``oh``, ``ow``, sizes, ``act_fits``) against golden, every hardware
limit at its bound and just past it, ``pool_enabled=False``, and matmul / conv2d checks that
the pool ops leave alone (same cycles with and without the pools)."""

import pytest
from sparsemac.golden.desc_rules import hardware_descriptor_code, validate_descriptor
from sparsemac.golden.descriptors import (
    ErrorCode,
    Flags,
    Opcode,
    avgpool2d_descriptor,
    buffer_sizes,
    conv2d_descriptor,
    global_avgpool_descriptor,
    matmul_descriptor,
    maxpool2d_descriptor,
)
from sparsemac.golden.pool import pool_output_shape
from sparsemac.golden.tiling import pool_buffer_fits, pool_buffer_use, tile_row_split

from tests.hw.test_desc_checker import CFG, WINDOW, check_outputs

E = ErrorCode
#: Pool builds: one tile (tiny: cols 2, act_buf_depth 64, out_buf_depth 16); three tiles of
#: three columns (the divider computes ``ceil(m / tiles)`` and ``ceil(n / cols)``); four of
#: four (shifts).
CONFIGS = {
    "tiny": CFG,
    "t3c3": CFG.replace(tiles=3, cols=3, out_lanes=1, act_buf_depth=256),
    "t4c4": CFG.replace(tiles=4, cols=4, out_lanes=4, act_buf_depth=128, out_buf_depth=32),
}
POOLS = (Opcode.MAXPOOL2D, Opcode.AVGPOOL2D, Opcode.GLOBAL_AVGPOOL)
ACTS, OUT = 0x100, 0x8000        # beat-aligned buffer offsets inside WINDOW


def _geometry(d):
    """``pool_buffer_use`` keywords of pool descriptor ``d`` (a global pool: one H x W
    window)."""
    if d.opcode == Opcode.GLOBAL_AVGPOOL:
        return dict(c=d.c, h=d.h, w=d.w, kh=d.h, kw=d.w)
    return dict(c=d.c, h=d.h, w=d.w, kh=d.kh, kw=d.kw, sh=d.stride_h, sw=d.stride_w,
                ph=d.pad_h, pw=d.pad_w)


def _expect_outputs(d, cfg):
    """What a runnable pool's outputs must be, from golden (not from the checker)."""
    if d.opcode == Opcode.GLOBAL_AVGPOOL:
        oh, ow = 1, 1
    else:
        oh, ow = pool_output_shape((d.h, d.w), (d.kh, d.kw), (d.stride_h, d.stride_w),
                                   (d.pad_h, d.pad_w))
    rows = max(r1 - r0 for r0, r1 in tile_row_split(d.m, cfg.tiles))
    sizes = buffer_sizes(d)
    return dict(code=E.OK, pool=1, pool_rows=rows, oh=oh, ow=ow, act_bytes=sizes["acts"],
                out_bytes=sizes["out"], ncg=-(-d.n // cfg.cols), cg_chunk=0,
                act_fits=int(pool_buffer_fits(cfg, **_geometry(d))))


def _assert_matches(descs, got, cfg, seed=None, windows=None):
    """Every code equals golden's; a runnable pool's outputs equal `_expect_outputs`, any
    other runnable layer's ``pool`` and ``pool_rows`` are 0."""
    for j, (d, o) in enumerate(zip(descs, got)):
        window = WINDOW if windows is None else windows[j]
        exp = hardware_descriptor_code(d, cfg, window_bytes=window)
        assert o["code"] == exp, (f"seed {seed}: {d} (window {window:#x}): expected {exp!r}, "
                                  f"got {E(o['code'])!r}")
        if exp == E.OK and d.opcode in POOLS:
            want = _expect_outputs(d, cfg)
            assert o == want, f"seed {seed}: {d}: expected {want}, got {o}"
        elif exp == E.OK:
            assert (o["pool"], o["pool_rows"]) == (0, 0), f"seed {seed}: {d}: {o}"


def _random_pool(rng, cfg):
    """A pool descriptor, mostly runnable, around the hardware's limits."""
    op = POOLS[int(rng.integers(3))]
    small = rng.random() < 0.7
    c = int(rng.integers(1, 2 * cfg.tiles * cfg.out_buf_depth + 3)) if rng.random() < 0.2 \
        else int(rng.integers(1, 3 * cfg.tiles + 1))
    hw_max = 12 if small else 40
    h, w = (int(v) for v in rng.integers(1, hw_max + 1, size=2))
    flags = int(Flags.IRQ) if rng.random() < 0.3 else 0
    if op == Opcode.GLOBAL_AVGPOOL:
        h, w = min(h, 16), min(w, 16)
        return global_avgpool_descriptor(c=c, h=h, w=w, acts=ACTS, out=OUT, flags=flags)
    kh, kw = (int(v) for v in rng.integers(1, 17, size=2))
    if small:
        kh, kw = min(kh, h + 1), min(kw, w + 1)
    sh, sw = (int(v) for v in rng.integers(1, 17, size=2))
    ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    geo = dict(c=c, h=h, w=w, kernel=(kh, kw), stride=(sh, sw), pad=(ph, pw), acts=ACTS,
               out=OUT, flags=flags)
    if op == Opcode.MAXPOOL2D:
        return maxpool2d_descriptor(**geo)
    return avgpool2d_descriptor(**geo, count_include_pad=bool(rng.random() < 0.8))


#: Corruptions of a pool descriptor, each a rule of section 8.2 or a hardware limit.
MUTATIONS = [
    lambda d: d.replace(magic=0), lambda d: d.replace(opcode=Opcode.ADD),
    lambda d: d.replace(opcode=Opcode.DEPTHWISE_CONV2D), lambda d: d.replace(opcode=7),
    lambda d: d.replace(opcode=Opcode.MAXPOOL2D), lambda d: d.replace(opcode=Opcode.AVGPOOL2D),
    lambda d: d.replace(opcode=Opcode.GLOBAL_AVGPOOL), lambda d: d.replace(opcode=Opcode.CONV2D),
    lambda d: d.replace(format=1), lambda d: d.replace(format=4), lambda d: d.replace(param_a=1),
    lambda d: d.replace(param_b=2),
    lambda d: d.replace(flags=d.flags | Flags.REQUANT),
    lambda d: d.replace(flags=d.flags | Flags.REQUANT | Flags.LUT),
    lambda d: d.replace(flags=d.flags | Flags.ACCUMULATE),
    lambda d: d.replace(flags=d.flags ^ Flags.INCLUDE_PAD),
    lambda d: d.replace(flags=d.flags | 0x20), lambda d: d.replace(reserved0=1),
    lambda d: d.replace(reserved2=1 << 31), lambda d: d.replace(weights=64),
    lambda d: d.replace(quant=64), lambda d: d.replace(lut=64),
    lambda d: d.replace(col_split=CFG.cols),
    lambda d: d.replace(kh=15), lambda d: d.replace(kh=16), lambda d: d.replace(kw=16),
    lambda d: d.replace(stride_h=16), lambda d: d.replace(stride_w=15),
    lambda d: d.replace(stride_w=0), lambda d: d.replace(pad_h=d.kh),
    lambda d: d.replace(pad_w=15), lambda d: d.replace(pad_h=1),
    lambda d: d.replace(dil_h=2), lambda d: d.replace(dil_w=0), lambda d: d.replace(dil_h=1),
    lambda d: d.replace(h=16), lambda d: d.replace(w=15), lambda d: d.replace(h=0),
    lambda d: d.replace(c=0), lambda d: d.replace(c=d.c + 1), lambda d: d.replace(m=d.m + 1),
    lambda d: d.replace(k=d.k + 1), lambda d: d.replace(n=max(d.n - 1, 0)),
    lambda d: d.replace(n=d.n + 1), lambda d: d.replace(m=0), lambda d: d.replace(k=0),
    lambda d: d.replace(n=1 << 16), lambda d: d.replace(k=1 << 16),
    lambda d: d.replace(acts=d.acts + 4), lambda d: d.replace(out=d.out + 1),
    lambda d: d.replace(acts=WINDOW - 8), lambda d: d.replace(out=WINDOW - 8),
]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_random_pools_match_golden(name, rng, seed):
    """Random pool descriptors, runnable and with up to two corruptions (`MUTATIONS`): the
    code is golden's, a runnable one's outputs are golden's (``act_fits`` both ways)."""
    cfg = CONFIGS[name]
    descs = []
    for _ in range(160):
        d = _random_pool(rng, cfg)
        for _ in range(int(rng.choice([0, 0, 1, 2]))):
            d = MUTATIONS[int(rng.integers(len(MUTATIONS)))](d)
        descs.append(d)
    cycles = []
    got = check_outputs(descs, cfg, cycles=cycles)
    _assert_matches(descs, got, cfg, seed)
    codes = [o["code"] for o in got]
    fits = {o["act_fits"] for o in got if o["code"] == E.OK}
    print(f"seed {seed} {name}: {codes.count(E.OK)} runnable (act_fits {sorted(fits)}), "
          f"codes {sorted(set(codes))}, check cycles {min(cycles)}..{max(cycles)}")
    assert codes.count(E.OK) >= 20 and len(set(codes)) >= 6, (seed, sorted(set(codes)))


# ---- the hardware limits, at the bound and just past it ----------------------------------------

def _max(**kw):
    base = dict(c=2, h=20, w=20, kernel=2, stride=2, pad=0, acts=ACTS, out=OUT)
    base.update(kw)
    return maxpool2d_descriptor(**base)


def _avg(include, **kw):
    base = dict(c=2, h=20, w=20, kernel=3, stride=2, pad=1, acts=ACTS, out=OUT)
    base.update(kw)
    return avgpool2d_descriptor(**base, count_include_pad=include)


def _glob(**kw):
    base = dict(c=3, h=8, w=8, acts=ACTS, out=OUT)
    base.update(kw)
    return global_avgpool_descriptor(**base)


#: (name, descriptor, the code the hardware must report)
BOUNDS = [
    ("kernel 15", _max(kernel=(15, 2), h=30), E.OK),
    ("kernel 16", _max(kernel=(16, 2), h=30), E.BAD_SHAPE),
    ("kernel_w 15", _max(kernel=(2, 15), w=30), E.OK),
    ("kernel_w 16", _max(kernel=(2, 16), w=30), E.BAD_SHAPE),
    ("stride 15", _max(stride=(15, 1)), E.OK),
    ("stride 16", _max(stride=(16, 1)), E.BAD_SHAPE),
    ("stride_w 15", _max(stride=(1, 15)), E.OK),
    ("stride_w 16", _max(stride=(1, 16)), E.BAD_SHAPE),
    ("pad kernel-1", _max(kernel=(15, 3), pad=(14, 2), h=4), E.OK),
    ("pad kernel", _max(kernel=(15, 3), pad=(15, 2), h=4), E.BAD_SHAPE),
    ("pad_w kernel", _max(kernel=(3, 3), pad=(2, 3)), E.BAD_SHAPE),
    ("pad 15 kernel 16", _max(kernel=(16, 2), pad=(15, 0), h=4), E.BAD_SHAPE),
    ("kernel fits the padded input", _max(kernel=(6, 2), pad=(1, 0), h=4), E.OK),
    ("kernel past the padded input", _max(kernel=(6, 2), pad=(1, 0), h=3).replace(n=1),
     E.BAD_SHAPE),
    ("dilation 2", _max().replace(dil_w=2), E.BAD_SHAPE),
    ("global 15 x 15", _glob(h=15, w=15), E.OK),
    ("global 16 x 15", _glob(h=16, w=15), E.BAD_SHAPE),
    ("global 15 x 16", _glob(h=15, w=16), E.BAD_SHAPE),
    ("global 1 x 1", _glob(h=1, w=1), E.OK),
    ("global 256 x 256 (H*W 65536)", _glob(h=256, w=256), E.BAD_SHAPE),
    ("global 257 x 256 (H*W past 65536)", _glob(h=257, w=256), E.BAD_SHAPE),
    ("global kernel field set", _glob().replace(kh=1), E.BAD_FLAGS),
    ("global n 2", _glob().replace(n=2), E.BAD_SHAPE),
    ("maxpool n 65535", _max(c=1, h=65535, w=1, kernel=1, stride=1, acts=0, out=0x10000),
     E.OK),
    ("maxpool n 65536", _max(c=1, h=65536 // 4, w=4, kernel=1, stride=1, acts=0,
                             out=0x10000), E.BAD_SHAPE),
    ("avgpool pad 0 without INCLUDE_PAD", _avg(False, pad=0), E.OK),
    # the real count (count_include_pad 0) runs: padding need not count (BAD_FLAGS before)
    ("avgpool pad 1 without INCLUDE_PAD", _avg(False, pad=(1, 0)), E.OK),
    ("avgpool pad_w 1 without INCLUDE_PAD", _avg(False, pad=(0, 1)), E.OK),
    ("avgpool pad kernel-1 without INCLUDE_PAD", _avg(False, kernel=(15, 3), pad=(14, 2), h=4),
     E.OK),
    ("avgpool pad kernel without INCLUDE_PAD", _avg(False, kernel=(15, 3), pad=(15, 2), h=4),
     E.BAD_SHAPE),
    ("avgpool kernel 15 without INCLUDE_PAD", _avg(False, kernel=15, pad=7, h=30), E.OK),
    ("avgpool kernel 16 without INCLUDE_PAD", _avg(False, kernel=16, h=30), E.BAD_SHAPE),
    ("avgpool REQUANT without INCLUDE_PAD", _avg(False).replace(flags=int(Flags.REQUANT)),
     E.BAD_FLAGS),
    ("avgpool flag bit 5 without INCLUDE_PAD", _avg(False).replace(flags=0x20), E.BAD_FLAGS),
    ("avgpool pad 1 with INCLUDE_PAD", _avg(True, pad=1), E.OK),
    ("avgpool pad 0 with INCLUDE_PAD", _avg(True, pad=0), E.OK),
    ("maxpool pad 1 (no count)", _max(kernel=3, pad=1), E.OK),
    ("maxpool INCLUDE_PAD", _max().replace(flags=int(Flags.INCLUDE_PAD)), E.BAD_FLAGS),
    ("global INCLUDE_PAD", _glob().replace(flags=int(Flags.INCLUDE_PAD)), E.BAD_FLAGS),
    ("avgpool IRQ | INCLUDE_PAD", _avg(True).replace(flags=int(Flags.IRQ | Flags.INCLUDE_PAD)),
     E.OK),
    ("avgpool ACCUMULATE", _avg(True).replace(flags=int(Flags.ACCUMULATE | Flags.INCLUDE_PAD)),
     E.BAD_FLAGS),
    # the order: flags before shapes, hardware shapes before alignment
    ("maxpool INCLUDE_PAD and kernel 16",
     _max(kernel=16, h=30).replace(flags=int(Flags.INCLUDE_PAD)), E.BAD_FLAGS),
    ("maxpool INCLUDE_PAD and m != C", _max().replace(flags=int(Flags.INCLUDE_PAD), m=3),
     E.BAD_FLAGS),
    ("no INCLUDE_PAD and m != C", _avg(False).replace(m=3), E.BAD_SHAPE),
    ("kernel 16 and misaligned", _max(kernel=16, h=30).replace(acts=ACTS + 1), E.BAD_SHAPE),
    ("global 16 and outside", _glob(h=16).replace(out=1 << 20), E.BAD_SHAPE),
    ("format before kernel 16", _max(kernel=16, h=30).replace(format=1), E.BAD_FORMAT),
    ("params before flags", _avg(False).replace(param_a=1), E.BAD_PARAM),
    ("weights field", _max().replace(weights=0x4000), E.BAD_FLAGS),
    ("column split", _max().replace(col_split=CFG.cols), E.BAD_FLAGS),
]


#: The window of the `BOUNDS` cases (large enough for the 65535-pixel pools).
BOUNDS_WINDOW = 1 << 18


def test_hardware_limits_at_and_past_the_bound():
    """Each limit of `BOUNDS` on the RTL: the code wanted, golden's
    ``hardware_descriptor_code`` agrees, and a runnable one's outputs are golden's."""
    descs = [d for _, d, _ in BOUNDS]
    windows = [BOUNDS_WINDOW] * len(descs)
    got = check_outputs(descs, CFG, windows=windows)
    for (name, d, want), o in zip(BOUNDS, got):
        exp = hardware_descriptor_code(d, CFG, window_bytes=BOUNDS_WINDOW)
        assert exp == want, f"{name}: golden {exp!r}, wanted {want!r} ({d})"
        assert o["code"] == want, f"{name}: RTL {E(o['code'])!r}, wanted {want!r} ({d})"
    _assert_matches(descs, got, CFG, windows=windows)


def test_limits_beyond_the_architecture():
    """The hardware limits of `BOUNDS` that golden's `validate_descriptor` alone accepts
    (the ones the hardware adds): kernel and stride 16, global H or W 16 (not an average of
    the real positions: it runs since the tile counts them)."""
    added = {"kernel 16", "kernel_w 16", "stride 16", "stride_w 16", "pad 15 kernel 16",
             "global 16 x 15",
             "global 15 x 16", "global 256 x 256 (H*W 65536)", "maxpool n 65536",
             "avgpool kernel 16 without INCLUDE_PAD"}
    for name, d, want in BOUNDS:
        arch = validate_descriptor(d, CFG, window_bytes=BOUNDS_WINDOW)
        assert (arch == E.OK and want != E.OK) == (name in added), (name, arch, want)


# ---- act_fits: the image, the gathered windows, the channels per tile -------------------------

FIT_CFG = CFG.replace(tiles=2, act_buf_depth=64, out_buf_depth=16)     # cols 2


#: (name, descriptor, pool_buffer_use expected, fits) on `FIT_CFG`: depth 64 entries, image
#: 64 * 2 bytes, 16 rows
FITS = [
    # the input image, C*H*W against act_buf_depth * cols = 128 bytes (a plane that is not
    # whole bus words: multicast, every tile holds the image)
    ("image at the bound", _max(c=1, h=128, w=1, kernel=1, stride=15),
     dict(act_entries=5, image_entries=64, rows=1), True),
    ("image one byte past", _max(c=1, h=129, w=1, kernel=1, stride=15),
     dict(act_entries=5, image_entries=65, rows=1), False),
    # the gathered windows, ceil(OH*OW / cols) * pool_rows * KH*KW against 64
    ("entries at the bound", _max(c=1, h=8, w=16, kernel=(8, 1), stride=1),
     dict(act_entries=64, image_entries=64, rows=1), True),
    ("entries one past", _max(c=1, h=13, w=9, kernel=(13, 1), stride=1),
     dict(act_entries=65, image_entries=59, rows=1), False),
    ("entries of two channels per tile", _max(c=3, h=4, w=4, kernel=(2, 2), stride=1,
                                             pad=(1, 1)),
     dict(act_entries=2 * 4 * 13, image_entries=16, rows=2), False),
    ("global entries at the bound", _glob(c=8, h=4, w=4),
     dict(act_entries=64, image_entries=32, rows=4), True),
    # planes of whole bus words go only to their tiles: rows * H * W against 128 bytes
    ("planes at the bound", _max(c=2, h=128, w=1, kernel=1, stride=15),
     dict(act_entries=5, image_entries=64, rows=1), True),
    ("planes one word past", _max(c=2, h=136, w=1, kernel=1, stride=15),
     dict(act_entries=5, image_entries=68, rows=1), False),
    ("global entries past", _glob(c=9, h=4, w=3),
     dict(act_entries=60, image_entries=54, rows=5), True),
    ("global 15 x 15 past", _glob(c=1, h=15, w=15),
     dict(act_entries=225, image_entries=113, rows=1), False),
    # channels per tile against out_buf_depth = 16
    ("rows at the bound", _max(c=32, h=1, w=1, kernel=1, stride=1),
     dict(act_entries=16, image_entries=16, rows=16), True),
    ("rows one past", _max(c=33, h=1, w=1, kernel=1, stride=1),
     dict(act_entries=17, image_entries=17, rows=17), False),
    ("avgpool at every bound", _avg(True, c=4, h=8, w=8, kernel=(8, 1), stride=(1, 4), pad=0),
     dict(act_entries=16, image_entries=64, rows=2), True),
]


def test_act_fits_at_and_past_each_bound():
    """``act_fits`` of a runnable pool exactly at each tile-buffer bound and one past it (the
    case's `pool_buffer_use` is pinned, so it sits where its name says)."""
    got = check_outputs([d for _, d, _, _ in FITS], FIT_CFG)
    for (name, d, use, fits), o in zip(FITS, got):
        assert pool_buffer_use(FIT_CFG, **_geometry(d)) == use, name
        assert o["code"] == E.OK, f"{name}: {E(o['code'])!r} ({d})"
        assert o["act_fits"] == fits, f"{name}: act_fits {o['act_fits']}, wanted {fits}"
    _assert_matches([d for _, d, _, _ in FITS], got, FIT_CFG)


@pytest.mark.parametrize("tiles", [3, 4])
def test_pool_rows_at_and_past_the_output_buffer(tiles):
    """``pool_rows = ceil(C / tiles)`` (3 tiles: the divider, 4: a shift) and its bound,
    ``out_buf_depth`` (16): 16 rows fit, 17 do not."""
    cfg = FIT_CFG.replace(tiles=tiles)
    cs = [16 * tiles - tiles + 1, 16 * tiles, 16 * tiles + 1, 1, tiles + 1]
    descs = [_max(c=c, h=1, w=1, kernel=1, stride=1) for c in cs]
    got = check_outputs(descs, cfg)
    for c, o in zip(cs, got):
        rows = -(-c // tiles)
        assert (o["code"], o["pool_rows"], o["act_fits"]) == (E.OK, rows, int(rows <= 16)), \
            (tiles, c, o)
    _assert_matches(descs, got, cfg)


# ---- buffers: the window edges, alignment, the unused weight buffer ---------------------------

BEAT = CFG.axi_bytes


def _edge_cases():
    """(name, descriptor, window, code wanted) of pools whose ``acts`` or ``out`` buffer ends
    ``over`` bytes past the window (0 .. beat), every offset beat-aligned: a 1 x 1 max pool and
    a global pool of ``4 * beat + over`` bytes in and out."""
    cases = []
    for window in (WINDOW, 0x3440):
        for over in range(BEAT + 1):
            size = 4 * BEAT + over
            want = E.OK if over == 0 else E.OUT_OF_WINDOW
            edge = window - 4 * BEAT
            for kind in ("maxpool", "global"):
                for buf, other in (("acts", "out"), ("out", "acts")):
                    bufs = {buf: edge, other: 0x40}
                    d = (_max(c=1, h=1, w=size, kernel=1, stride=1, **bufs) if kind == "maxpool"
                         else _glob(c=size, h=1, w=1, **bufs))
                    assert buffer_sizes(d)[buf] == size
                    cases.append((f"{kind} {buf} {over} B past {window:#x}", d, window, want))
    return cases


def test_window_edges():
    """A pool's ``acts`` / ``out`` ending exactly at the window end is accepted, 1 .. beat
    bytes past it is OUT_OF_WINDOW (both ways on the RTL and in golden)."""
    cases = _edge_cases()
    assert {want for *_, want in cases} == {E.OK, E.OUT_OF_WINDOW}
    got = check_outputs([d for _, d, _, _ in cases], CFG, windows=[w for _, _, w, _ in cases])
    for (name, d, window, want), o in zip(cases, got):
        assert hardware_descriptor_code(d, CFG, window_bytes=window) == want, (name, d)
        assert o["code"] == want, f"{name}: expected {want!r}, got {E(o['code'])!r} ({d})"


def test_misaligned_buffers():
    descs, wants = [], []
    for off in range(1, BEAT):
        for d in (_max(), _glob(), _avg(True)):
            descs += [d.replace(acts=d.acts + off), d.replace(out=d.out + off)]
            wants += [E.MISALIGNED, E.MISALIGNED]
    got = check_outputs(descs, CFG)
    assert [o["code"] for o in got] == wants
    _assert_matches(descs, got, CFG)


def test_no_weight_buffer_in_a_small_window():
    """A pool reads no weight image: in a window smaller than an image header (32 bytes) a
    pool with ``weights = 0`` runs; a matmul is OUT_OF_WINDOW (its header at 0 does not fit)."""
    window = 2 * BEAT
    pool = _max(c=1, h=1, w=BEAT, kernel=1, stride=1, acts=0, out=BEAT)
    mm = matmul_descriptor(m=1, k=1, n=1, acts=0, out=BEAT, flags=0)
    got = check_outputs([pool, mm], CFG, windows=[window, window])
    assert [o["code"] for o in got] == [E.OK, E.OUT_OF_WINDOW]
    _assert_matches([pool, mm], got, CFG, windows=[window, window])


# ---- builds without the pools; matmul and conv2d untouched --------------------------------------

def test_pools_not_built_are_bad_opcode():
    """``pool_enabled=False``: opcodes 2..4 are BAD_OPCODE (golden agrees through
    ``cfg.ops``); 5 and 6 are BAD_OPCODE in every build."""
    off, on = CFG.replace(pool_enabled=False), CFG
    descs = [_max(), _avg(True), _glob(), _max().replace(opcode=Opcode.ADD),
             _max().replace(opcode=Opcode.DEPTHWISE_CONV2D)]
    for cfg, wants in ((off, [E.BAD_OPCODE] * 5), (on, [E.OK] * 3 + [E.BAD_OPCODE] * 2)):
        got = check_outputs(descs, cfg)
        assert [o["code"] for o in got] == wants, cfg.pool_enabled
        assert wants == [hardware_descriptor_code(d, cfg, window_bytes=WINDOW) for d in descs]


def _layers(rng):
    out = []
    for i in range(40):
        kw = dict(acts=1024, out=4096, quant=8192, flags=int(rng.choice([0, 1, 9])))
        if i % 2:
            out.append(matmul_descriptor(m=int(rng.integers(1, 300)), k=int(rng.integers(1, 300)),
                                         n=int(rng.integers(1, 300)), **kw))
        else:
            out.append(conv2d_descriptor(
                c=int(rng.integers(1, 20)), h=int(rng.integers(3, 20)),
                w=int(rng.integers(3, 20)), kout=int(rng.integers(1, 40)),
                kh=int(rng.integers(1, 6)), kw=int(rng.integers(1, 6)),
                stride=(int(rng.integers(1, 4)), int(rng.integers(1, 4))),
                pad=(int(rng.integers(0, 3)), int(rng.integers(0, 3))), **kw))
    return out


@pytest.mark.parametrize("name", ["tiny", "t3c3"])
def test_matmul_and_conv_checks_unchanged_by_the_pools(name, rng, seed):
    """The pool ops cost a matmul or conv2d nothing: the same outputs and the same cycles
    with and without ``pool_enabled`` (``pool`` 0, ``pool_rows`` 0)."""
    cfg = CONFIGS[name]
    descs = _layers(rng)
    runs = {}
    for enabled in (True, False):
        cycles = []
        got = check_outputs(descs, cfg.replace(pool_enabled=enabled), cycles=cycles)
        runs[enabled] = (got, cycles)
    assert runs[True] == runs[False], f"seed {seed}"
    assert all(o["pool"] == 0 and o["pool_rows"] == 0 for o in runs[True][0])
    for d, o in zip(descs, runs[True][0]):
        assert o["code"] == hardware_descriptor_code(d, cfg, window_bytes=WINDOW), (seed, d)
