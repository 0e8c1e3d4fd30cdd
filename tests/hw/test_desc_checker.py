"""DescChecker (hw/desc_checker.py) against golden.hardware_descriptor_code (validate_descriptor
and the hardware's limits) in amaranth.sim."""

import pytest
from amaranth.sim import Simulator
from sparsemac.golden.desc_rules import hardware_descriptor_code, validate_descriptor
from sparsemac.golden.descriptors import ErrorCode, conv2d_descriptor, matmul_descriptor
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.hub.desc_checker import DescChecker

CFG = AcceleratorConfig.preset("tiny").replace(formats=("dense", "bitmap", "nm"), nm_max_m=16)
WINDOW = 1 << 16


def _base(rng):
    fmt = str(rng.choice(["dense", "bitmap", "nm"]))
    kw = dict(fmt=fmt, group_size=CFG.group_size, nm=(2, 8), weights=0, acts=1024, out=4096,
              quant=8192, lut=12288, flags=int(rng.choice([0, 1, 3, 9, 33, 35])))
    if rng.random() < 0.5:
        return matmul_descriptor(m=int(rng.integers(1, 40)), k=int(rng.integers(1, 40)),
                                 n=int(rng.integers(1, 40)), **kw)
    return conv2d_descriptor(c=int(rng.integers(1, 4)), h=int(rng.integers(3, 9)),
                             w=int(rng.integers(3, 9)), kout=int(rng.integers(1, 9)),
                             kh=int(rng.integers(1, 4)), kw=int(rng.integers(1, 4)),
                             stride=(int(rng.integers(1, 3)), 1), pad=(1, int(rng.integers(0, 2))),
                             dilation=(1, int(rng.integers(1, 3))), **kw)


MUTATIONS = [
    dict(magic=0), dict(opcode=2), dict(format=4), dict(format=2), dict(param_a=5),
    dict(param_b=64), dict(flags=0x10), dict(flags=2), dict(flags=0x20), dict(flags=0x22),
    dict(flags=0x21), dict(flags=0x40), dict(reserved0=1), dict(reserved2=7),
    dict(m=0), dict(k=0), dict(n=0), dict(n=0xFFFFFFFF), dict(acts=3), dict(out=WINDOW - 1),
    dict(quant=WINDOW), dict(lut=WINDOW - 8), dict(c=0), dict(h=1), dict(stride_h=0),
    dict(dil_w=0), dict(kw=9), dict(weights=WINDOW - 16), dict(k=7), dict(col_split=1),
    dict(col_split=CFG.cols), dict(col_split=8 * CFG.cols), dict(col_split=0xFFFF), {},
]


#: Cycles a check may take at most (docs: "450 at most"); every check must end by then.
MAX_CHECK_CYCLES = 450


#: The DescChecker's results, read once ``valid`` is high.
OUTPUTS = ("code", "act_fits", "oh", "ow", "act_bytes", "out_bytes", "ncg", "cg_chunk", "pool",
           "pool_rows")


def check_outputs(descs, cfg=CFG, *, cycles=None, windows=None):
    """Check each descriptor (a ``Descriptor`` or a 512-bit int) on the RTL, one after the
    other, each against ``WINDOW`` or against its own entry of ``windows``: ``{output: value}``
    (`OUTPUTS`) per descriptor; with ``cycles`` (a list) the cycles from ``start`` to
    ``valid`` of each check are appended to it."""
    dut = DescChecker(cfg)
    got = []

    async def tb(ctx):
        for j, d in enumerate(descs):
            ctx.set(dut.window_bytes, WINDOW if windows is None else windows[j])
            ctx.set(dut.desc.as_value(),
                    d if isinstance(d, int) else int.from_bytes(d.pack(), "little"))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            n = 0
            while not ctx.get(dut.valid):
                await ctx.tick()
                n += 1
                assert n <= MAX_CHECK_CYCLES, f"check of {d} still running after {n} cycles"
            if cycles is not None:
                cycles.append(n)
            got.append({name: ctx.get(getattr(dut, name)) for name in OUTPUTS})

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got


def _codes(descs, cfg=CFG, *, cycles=None, windows=None):
    """``code`` of each descriptor on the RTL (`check_outputs`)."""
    return [o["code"] for o in check_outputs(descs, cfg, cycles=cycles, windows=windows)]


def test_matches_golden(rng, seed):
    descs = []
    for _ in range(300):
        d = _base(rng)
        for _ in range(int(rng.integers(0, 3))):
            mut = MUTATIONS[int(rng.integers(len(MUTATIONS)))]
            if d.opcode == 0 and set(mut) & {"c", "h", "stride_h", "dil_w", "kw"}:
                continue
            d = d.replace(**mut)
        descs.append(d)
    got = _codes(descs)
    for d, g in zip(descs, got):
        exp = hardware_descriptor_code(d, CFG, window_bytes=WINDOW)
        assert g == exp, f"seed {seed}: {d}: expected {exp!r}, got {ErrorCode(g)!r}"


@pytest.mark.parametrize("change,code", [
    (dict(flags=5), ErrorCode.BAD_FLAGS),                      # ACCUMULATE not built
    (dict(format=3, param_a=3, param_b=8), ErrorCode.BAD_PARAM),  # nm N not a power of two
    (dict(m=1 << 16), ErrorCode.BAD_SHAPE),                    # tile dimensions are 16-bit
])
def test_hardware_limits(change, code):
    """Beyond the architecture rules (golden.validate_descriptor accepts these): the RTL and
    golden.hardware_descriptor_code agree."""
    d = matmul_descriptor(m=4, k=4, n=4, out=64, acts=128, quant=256).replace(**change)
    assert validate_descriptor(d, CFG, window_bytes=WINDOW) in (ErrorCode.OK,
                                                                ErrorCode.OUT_OF_WINDOW)
    assert _codes([d]) == [code] == [hardware_descriptor_code(d, CFG, window_bytes=WINDOW)]


def test_hardware_limit_constants_match_the_rtl():
    from sparsemac.golden.desc_rules import HW_DIM_MAX, HW_GEO_MAX
    from sparsemac.hw.hub.desc_checker import MAX_GEO
    from sparsemac.hw.tile.tile import DIM_WIDTH

    assert HW_DIM_MAX == (1 << DIM_WIDTH) - 1 and HW_GEO_MAX == MAX_GEO


@pytest.mark.parametrize("m", [(1 << 16) - 1, 1 << 16])
def test_dimension_limit_at_and_past_the_bound(m):
    """m = 65535 passes the shape check (then OUT_OF_WINDOW: its output is larger than the
    window), 65536 is BAD_SHAPE, in the RTL and in golden."""
    d = matmul_descriptor(m=m, k=4, n=4, out=64, acts=128, quant=256)
    exp = ErrorCode.OUT_OF_WINDOW if m < 1 << 16 else ErrorCode.BAD_SHAPE
    assert _codes([d]) == [exp] == [hardware_descriptor_code(d, CFG, window_bytes=WINDOW)]


def test_conv_geometry_limit():
    d = conv2d_descriptor(c=1, h=40, w=40, kout=2, kh=16, kw=1, out=0, acts=4096, quant=8192)
    assert validate_descriptor(d, CFG, window_bytes=WINDOW) == ErrorCode.OK
    assert _codes([d]) == [ErrorCode.BAD_SHAPE] == [
        hardware_descriptor_code(d, CFG, window_bytes=WINDOW)]


@pytest.mark.parametrize("formats", [("dense",), ("dense", "nm"), ("dense", "block"),
                                     ("dense", "bitmap")])
def test_format_not_built_is_refused(formats):
    """A layer whose weight format is not built is refused before it reaches a tile."""
    cfg = CFG.replace(formats=formats)
    params = {"dense": (0, 0), "bitmap": (cfg.group_size, 0), "block": (cfg.block_size, 0),
              "nm": (2, 4)}
    for code, name in enumerate(("dense", "bitmap", "block", "nm")):
        d = matmul_descriptor(m=4, k=4, n=4, out=64, acts=128, quant=256).replace(
            format=code, param_a=params[name][0], param_b=params[name][1])
        got, exp = _codes([d], cfg)[0], validate_descriptor(d, cfg, window_bytes=WINDOW)
        want = ErrorCode.OK if name in formats else ErrorCode.FORMAT_UNSUPPORTED
        assert got == exp == want, f"{formats}: {name} gave {got!r} (golden {exp!r})"


def test_random_bits_end_and_match_golden(rng, seed):
    """Fully random 512-bit descriptors (and random ones with a valid magic): every check ends
    within MAX_CHECK_CYCLES and gives golden's code."""
    from sparsemac.golden.descriptors import DESC_MAGIC, unpack_descriptor
    raws = []
    for i in range(60):
        v = int.from_bytes(rng.bytes(64), "little")
        if i % 2:
            v = (v & ~0xFFFFFFFF) | DESC_MAGIC
        raws.append(v)
    cycles = []
    got = _codes(raws, cycles=cycles)
    for v, g in zip(raws, got):
        d = unpack_descriptor(v.to_bytes(64, "little"))
        exp = hardware_descriptor_code(d, CFG, window_bytes=WINDOW)
        assert g == exp, f"seed {seed}: {d}: expected {exp!r}, got {ErrorCode(g)!r}"
    print(f"seed {seed}: check cycles min {min(cycles)} max {max(cycles)}")


def test_real_layer_check_is_short():
    """A real conv layer's check takes about a hundred cycles (what docs/accelerator.md says)."""
    d = conv2d_descriptor(c=16, h=32, w=32, kout=32, kh=3, kw=3, pad=(1, 1), out=0,
                          acts=1 << 14, quant=1 << 15)
    cycles = []
    _codes([d], CFG.replace(act_buf_depth=1 << 14), cycles=cycles)
    assert cycles[0] <= 150, cycles


# ---- window edges: every buffer ending exactly at the window end, and 1 .. beat bytes past ----
BEAT = CFG.axi_data_width // 8
EDGE_WINDOWS = (WINDOW, 0x3440)     # a power of two and a beat multiple that is not one


def _edge_descriptor(buf: str, window: int, over: int):
    """A valid matmul whose buffer ``buf`` ends ``over`` bytes past ``window`` (0: exactly at
    its end), every other buffer well inside, every offset beat-aligned.

    ``acts`` and ``out`` reach the edge through their size (``k`` or ``n`` = 4 beats +
    ``over``); ``quant``, ``lut`` and ``weights`` have fixed-size records, so their window
    is what moves (see :func:`_edge_cases`)."""
    kw = dict(flags=3, weights=0, acts=256, out=512, quant=1024, lut=2048)   # REQUANT | LUT
    m, k, n = 2, 4, 4
    if buf == "acts":
        k, n = 4 * BEAT + over, 1
        kw["acts"] = window - 4 * BEAT
    elif buf == "out":
        m, n = 1, 4 * BEAT + over
        kw["out"] = window - 4 * BEAT
    return matmul_descriptor(m=m, k=k, n=n, **kw)


def _edge_cases():
    """(name, descriptor, window, over) for every used buffer and over in 0 .. beat."""
    from sparsemac.golden.descriptors import buffer_sizes
    cases = []
    for window in EDGE_WINDOWS:
        for over in range(BEAT + 1):
            for buf in ("acts", "out"):
                cases.append((buf, _edge_descriptor(buf, window, over), window, over))
            for buf in ("quant", "lut", "weights"):
                d = _edge_descriptor(buf, window, 0)
                end = window - BEAT * 4          # aligned end of the buffer
                d = d.replace(**{buf: end - buffer_sizes(d)[buf]})
                cases.append((buf, d, end - over, over))
    return cases


def test_window_edges():
    """A buffer ending exactly at the window end is accepted; 1 .. beat bytes past it is
    OUT_OF_WINDOW, for every buffer of a descriptor (golden agrees on every case)."""
    cases = _edge_cases()
    got = _codes([d for _, d, _, _ in cases], windows=[w for _, _, w, _ in cases])
    for (buf, d, window, over), g in zip(cases, got):
        want = ErrorCode.OK if over == 0 else ErrorCode.OUT_OF_WINDOW
        exp = validate_descriptor(d, CFG, window_bytes=window)
        assert exp == want, f"golden: {buf} {over} B past window {window:#x}: {exp!r}"
        assert g == want, (f"{buf} ends {over} B past the window end {window:#x}: expected "
                           f"{want!r}, got {ErrorCode(g)!r} ({d})")


def _act_fits(descs, cfg):
    """``(code, act_fits)`` of each descriptor on the RTL (`_split_outputs`)."""
    return [(code, fits) for code, fits, _, _ in _split_outputs(descs, cfg)]


def test_act_fits_at_and_past_the_activation_buffer():
    """``act_fits`` is golden's tile-buffer rule (golden.tiling) exactly at the activation
    buffer's depth and one entry past it: im2col entries (matmul K and conv C*KH*KW per column
    group) and the conv input image."""
    from sparsemac.golden.tiling import tile_buffer_shortfall
    cfg = CFG.replace(act_buf_depth=64)
    depth, cols = cfg.act_buf_depth, cfg.cols
    descs = []
    for k in (depth - 1, depth, depth + 1):               # one column group: entries = K
        descs.append(matmul_descriptor(m=2, k=k, n=cols, out=4096, acts=0, quant=8192))
    for c in (depth, depth + 1):                          # 1x1 conv, one group: entries = C
        descs.append(conv2d_descriptor(c=c, h=1, w=cols, kout=2, kh=1, kw=1, out=4096,
                                       acts=0, quant=8192))
    for h in (16, 17):      # stride 4: the input image (C*H*W / cols = 4 H) is the binding rule
        descs.append(conv2d_descriptor(c=1, h=h, w=4 * cols, kout=2, kh=1, kw=1,
                                       stride=(4, 4), out=0, acts=8192, quant=12288))
    got = _act_fits(descs, cfg)
    for d, (code, fits) in zip(descs, got):
        image = d.c * d.h * d.w if d.opcode else 0
        short = tile_buffer_shortfall(cfg, k=d.k, n=d.n, image_bytes=image,
                                      checks=("act_entries", "flag_words", "image_entries"))
        assert code == ErrorCode.OK, (d, ErrorCode(code))
        assert bool(fits) == (short is None), f"{d}: act_fits {fits}, golden {short}"
    assert [f for _, f in got] == [1, 1, 0, 1, 0, 1, 0], (cfg.cols, got)


def _split_outputs(descs, cfg):
    """``(code, act_fits, ncg, cg_chunk)`` of each descriptor on the RTL."""
    return [(o["code"], o["act_fits"], o["ncg"], o["cg_chunk"])
            for o in check_outputs(descs, cfg)]


@pytest.mark.parametrize("cols", [2, 3])
def test_column_split_bounds(cols):
    """``col_split`` (docs/spec.md section 8.1): a multiple of ``cols`` whose tiles cover
    every column group is accepted exactly at the bound (``col_split * tiles`` groups ==
    ``ceil(n / cols)``) and refused with BAD_SHAPE one group past it and one column off a
    multiple; ``ncg`` / ``cg_chunk`` are the groups and the groups per tile (3 columns: the
    divider path)."""
    cfg = CFG.replace(tiles=3, cols=cols, out_lanes=1, act_buf_depth=64)
    cases = []   # (n, col_split)
    for chunk in (1, 2, 3):
        groups = 3 * chunk
        cases += [(groups * cols, chunk * cols),           # exactly covered
                  (groups * cols + 1, chunk * cols),       # one column more: a group short
                  (groups * cols, chunk * cols + 1),       # not a multiple of cols
                  (groups * cols, chunk * cols - 1)]
    descs = [matmul_descriptor(m=2, k=4, n=n, out=4096, acts=0, quant=8192).replace(
        col_split=cs) for n, cs in cases]
    got = _split_outputs(descs, cfg)
    for (n, cs), d, (code, _, ncg, chunk) in zip(cases, descs, got):
        exp = hardware_descriptor_code(d, cfg, window_bytes=WINDOW)
        want = ErrorCode.OK if cs % cols == 0 and cs * 3 >= n else ErrorCode.BAD_SHAPE
        assert code == exp == want, f"n={n} col_split={cs} cols={cols}: RTL {code}, " \
                                    f"golden {exp!r}, rule {want!r}"
        assert ncg == -(-n // cols), (n, ncg)
        if code == ErrorCode.OK:
            assert chunk == cs // cols, (cs, chunk)


def test_column_split_act_fits_counts_one_share():
    """With a column split ``act_fits`` counts one tile's share of the im2col entries (golden
    ``tile_buffer_shortfall`` with ``n = min(n, col_split)``): a conv with two column groups of
    ``K = depth`` entries does not fit one tile, one group on each of two tiles does (exactly
    the depth), two groups per tile do not; the input image (small here) always counts whole."""
    from sparsemac.golden.tiling import tile_buffer_shortfall
    cfg = CFG.replace(tiles=2, act_buf_depth=64)
    depth, cols = cfg.act_buf_depth, cfg.cols
    descs = []
    for cs in (0, cols, 2 * cols):      # C*KH*KW = 4*4*4 = depth; OH = 1, OW = 2 cols
        descs.append(conv2d_descriptor(c=4, h=4, w=2 * cols + 3, kout=2, kh=4, kw=4, out=0,
                                       acts=16384, quant=8192).replace(col_split=cs))
    assert all(d.k == depth and d.n == 2 * cols for d in descs)
    got = _split_outputs(descs, cfg)
    for d, (code, fits, _, _) in zip(descs, got):
        n = min(d.n, d.col_split) if d.col_split else d.n
        short = tile_buffer_shortfall(cfg, k=d.k, n=n, image_bytes=d.c * d.h * d.w,
                                      checks=("act_entries", "flag_words", "image_entries"))
        assert code == ErrorCode.OK, (d, ErrorCode(code))
        assert bool(fits) == (short is None), f"{d}: act_fits {fits}, golden {short}"
    assert [f for _, f, _, _ in got] == [0, 1, 0], got


#: The DescChecker's cycles from ``start`` to ``valid`` minus the sequencer's DCHECK cycles
#: that `golden.net_cycles.checker_cycles` counts (matmul, conv2d), and minus
#: `golden.net_pool.pool_checker_cycles` (pools), as measured.
CHECK_TO_MODEL = {"conv": 3, "pool": -1}


def test_check_cycles_follow_the_model(seed):
    """Random valid convs (strides 1..9 per axis: the shift for 1, 2, 4, 8, the divider for
    the others), matmuls and pools on the default build: the checker's cycles are the cycle
    model's (the network model's fetch-and-check phase) plus a constant, every one."""
    import numpy as np
    from sparsemac.golden.descriptors import (
        Opcode,
        avgpool2d_descriptor,
        global_avgpool_descriptor,
        maxpool2d_descriptor,
    )
    from sparsemac.golden.net_cycles import checker_cycles
    from sparsemac.golden.net_pool import pool_checker_cycles

    cfg = AcceleratorConfig.preset("default")
    rng = np.random.default_rng(seed)
    descs = []
    for i in range(36):
        h, w = int(rng.integers(9, 33)), int(rng.integers(9, 33))
        s = (int(rng.integers(1, 10)), int(rng.integers(1, 10)))
        if i < 12:          # each divider path at least once: shifts 1, 2, 4, 8; 3, 5
            s = [(1, 1), (2, 2), (3, 5), (8, 4)][i // 3]
        if i % 3 == 0:
            k = int(rng.integers(1, 4))
            descs.append(conv2d_descriptor(c=int(rng.integers(1, 9)), h=h, w=w,
                                           kout=int(rng.integers(1, 17)), kh=k, kw=k,
                                           stride=s, pad=(k // 2, k // 2), acts=1024,
                                           out=8192))
        elif i % 3 == 1:
            descs.append(matmul_descriptor(m=int(rng.integers(1, 65)), k=int(rng.integers(1, 65)),
                                           n=int(rng.integers(1, 65)), acts=1024, out=8192))
        elif i % 6 == 2:
            k = int(rng.integers(1, 4))
            make = maxpool2d_descriptor if rng.random() < 0.5 else (
                lambda **kw: avgpool2d_descriptor(count_include_pad=True, **kw))
            descs.append(make(c=int(rng.integers(1, 9)), h=h, w=w, kernel=k, stride=s,
                              acts=1024, out=8192))
        else:
            descs.append(global_avgpool_descriptor(c=int(rng.integers(1, 9)),
                                                   h=int(rng.integers(1, 16)),
                                                   w=int(rng.integers(1, 16)), acts=1024,
                                                   out=8192))
    cycles = []
    outs = check_outputs(descs, cfg, cycles=cycles, windows=[1 << 20] * len(descs))
    for d, n, o in zip(descs, cycles, outs, strict=True):
        assert o["code"] == 0, f"seed {seed}: {d}: code {ErrorCode(o['code'])!r}"
        if d.opcode in (Opcode.MATMUL, Opcode.CONV2D):
            want = checker_cycles(d, cfg) + CHECK_TO_MODEL["conv"]
        else:
            want = pool_checker_cycles(d, cfg) + CHECK_TO_MODEL["pool"]
        assert n == want, f"seed {seed}: {d}: {n} cycles, the model {want}"
