"""ImageChecker (hw/image_checker.py) in amaranth.sim against golden.parse_weights.

Random shapes, sparsity and AXI widths; every image is packed by ``golden.pack_weights``, then
corrupted by one rule class (or random body bytes); the expected code is golden's
``FormatError.code`` (0 for a valid image).  Seeds are printed by the ``seed`` fixture.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.format_check import parse_weights
from sparsemac.golden.formats import FormatError, FormatErrorCode
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.image_checker import ImageChecker

from sparsemac import golden

C = FormatErrorCode

# (axi_data_width, group_size, block_size): each build fixes G and B
BUILDS = {
    32: dict(group_size=8, block_size=2),
    64: dict(group_size=16, block_size=8),
    128: dict(group_size=32, block_size=4),
}


def _cfg(width, **kw):
    return AcceleratorConfig.preset("tiny").replace(
        axi_data_width=width, ring_payload_width=max(64, width), out_buf_depth=16,
        nm_max_m=32, **dict(BUILDS.get(width, {}), **kw))


def expected_code(img: bytes) -> int:
    """golden's verdict: 0 or the FormatError code."""
    try:
        parse_weights(img)
    except FormatError as exc:
        return int(exc.code)
    return 0


def _words(img, wb):
    total = int.from_bytes(img[28:32], "little")
    n = max(32 // wb, -(-total // wb))
    data = bytes(img) + bytes(n * wb - len(img))
    return [int.from_bytes(data[k * wb:(k + 1) * wb], "little") for k in range(n)]


def run_images(cfg, images, rng, *, gap=0.3, stall=0.3, gaps=None, max_cycles=None):
    """Stream every image through one ImageChecker; returns [(code, held_cycles, cycles)].

    ``gap`` / ``stall``: probability that the producer idles / the consumer is not ready in a
    cycle; ``gaps`` (optional): idle cycles before each word (overrides ``gap``).
    ``held_cycles`` counts cycles where a word was offered, the consumer was ready and the
    checker held it (its own backpressure); ``cycles`` from the first word to ``done``.  The
    words leaving ``o`` are checked against the input (no loss, no duplication, no change).
    """
    dut = ImageChecker(cfg)
    wb = cfg.axi_bytes
    results, out_words, in_words = [], [], []

    async def bench(ctx):
        cur = {"valid": 0, "payload": None, "ready": 0}

        def put(name, sig, value):
            if cur[name] != value:
                ctx.set(sig, value)
                cur[name] = value

        for n_img, img in enumerate(images):
            ws = _words(img, wb)
            in_words.extend(ws)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            k, held, cycles, wait, idle, fresh = 0, 0, 0, 0, 0, True
            limit = max_cycles or (60 + 8 * len(ws))
            while True:
                if fresh and k < len(ws):       # a new word: idle cycles before offering it
                    wait = (gaps[n_img][k] if gaps is not None else
                            (0 if gap == 0 else int(rng.geometric(1 - gap)) - 1))
                    fresh = False
                offer = k < len(ws) and wait <= 0
                wait -= 1
                put("valid", dut.i.valid, int(offer))
                if offer:
                    put("payload", dut.i.payload, ws[k])
                ready = int(stall == 0 or rng.random() >= stall)
                put("ready", dut.o.ready, ready)
                if offer and ready and not ctx.get(dut.i.ready):
                    held += 1
                if ready and ctx.get(dut.o.valid):
                    out_words.append(ws[k])
                if offer and ctx.get(dut.i.ready):
                    k, fresh = k + 1, True
                done = k == len(ws) and ctx.get(dut.done)
                if done:
                    break
                cycles += 1
                idle = idle + 1 if k == len(ws) else 0
                assert cycles < 40 * limit and idle < limit, (
                    f"image {n_img}: checker not done ({k} of {len(ws)} words taken)")
                await ctx.tick()
            results.append((ctx.get(dut.code), held, cycles))
            put("valid", dut.i.valid, 0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert out_words == in_words, "the checker changed, lost or duplicated words"
    return results


# ---------------------------------------------------------------- image generation
def random_matrix(rng, fmt, cfg, *, m=None, k=None):
    """A random int8 matrix that fits ``fmt``: (W, pack keyword arguments)."""
    M = int(m if m is not None else rng.integers(1, cfg.out_buf_depth + 1))
    K = int(k if k is not None else rng.integers(1, 70))
    W = rng.integers(-128, 128, size=(M, K)).astype(np.int8)
    density = float(rng.choice([0.0, 0.1, 0.3, 0.6, 1.0]))
    kw = dict(group_size=cfg.group_size, block_size=cfg.block_size)
    if fmt == "nm":
        mm = int(rng.choice([v for v in (2, 4, 8, 16, 32) if v <= cfg.nm_max_m]))
        nn = int(rng.choice([v for v in (1, 2, 4, 8, 16, 32) if v <= mm]))
        W, _ = golden.prune(W, "nm", nm=(nn, mm))
        if density == 0.0:
            W = np.zeros_like(W)
        kw["nm"] = (nn, mm)
    elif fmt == "block":
        W, _ = golden.prune(W, "block", density=density, block_size=cfg.block_size)
    else:
        W, _ = golden.prune(W, "unstructured", density=density)
    return np.asarray(W, dtype=np.int8), kw


def pack(W, fmt, kw) -> bytearray:
    return bytearray(golden.pack_weights(W, fmt, **kw).image)


def _u32(img, off):
    return int.from_bytes(img[off:off + 4], "little")


def _put32(img, off, v):
    img[off:off + 4] = int(v % (1 << 32)).to_bytes(4, "little")


def _hdr(img):
    rows, cols = _u32(img, 8), _u32(img, 12)
    return dict(fmt=img[4], a=img[5], b=img[6], rows=rows, cols=cols, sec_a=_u32(img, 16),
                sec_b=_u32(img, 20), sec_c=_u32(img, 24), total=_u32(img, 28))


def _build_params_ok(cfg, h) -> bool:
    """The header parameters the build decodes (golden allows any G, B and N): bitmap G =
    ``group_size``, block B = ``block_size``, nm N a power of two <= M <= ``nm_max_m``,
    dense (0, 0)."""
    fmt, a, b = h["fmt"], h["a"], h["b"]
    if fmt == 1:
        return (a, b) == (cfg.group_size, 0)
    if fmt == 2:
        return (a, b) == (cfg.block_size, 0)
    if fmt == 3:
        return b in (2, 4, 8, 16, 32) and b <= cfg.nm_max_m and 1 <= a <= b and not a & (a - 1)
    return (a, b) == (0, 0)


def corrupt(img: bytearray, fmt: str, cls: str, rng) -> bytearray | None:
    """Break one rule class in place (None when the image has no such position)."""
    h = _hdr(img)
    rows, cols, a, b = h["rows"], h["cols"], h["a"], h["b"]
    sa, sb, sc, total = h["sec_a"], h["sec_b"], h["sec_c"], h["total"]
    img = bytearray(img)
    if cls == "body":                           # random bytes anywhere after the header
        for _ in range(int(rng.integers(1, 4))):
            off = int(rng.integers(32, total)) if total > 32 else None
            if off is None:
                return None
            img[off] = int(rng.integers(0, 256))
        return img
    if cls == "bitflip":
        if total <= 32:
            return None
        off = int(rng.integers(32, total))
        img[off] ^= 1 << int(rng.integers(0, 8))
        return img
    if fmt in ("bitmap", "block") and cls == "ptr0":   # the first pointer is not 0
        _put32(img, sa, int(rng.integers(1, 1 << 32)))
        return img
    if fmt in ("bitmap", "block") and cls == "ptr":
        n = rows if fmt == "bitmap" else -(-rows // a)
        ptr = [_u32(img, sa + 4 * j) for j in range(n + 1)]
        how = rng.integers(0, 3)
        if how == 0:
            _put32(img, sa, int(rng.integers(1, 1 << 32)))
        elif how == 1 and n >= 1:
            j = int(rng.integers(1, n + 1))
            if ptr[j - 1] == 0:
                _put32(img, sa + 4 * (j - 1), 1)
                if j - 1 == 0:
                    return img
            _put32(img, sa + 4 * j, max(0, _u32(img, sa + 4 * (j - 1)) - 1))
        else:
            _put32(img, sa + 4 * n, ptr[n] + int(rng.integers(1, 300)))
        return img
    if fmt == "bitmap":
        rb = -(-cols // a) * a // 8
        if cls == "count":                      # a mask bit inside K: count != ptr difference
            r, c = int(rng.integers(0, rows)), int(rng.integers(0, cols))
            img[sb + r * rb + c // 8] ^= 1 << (c % 8)
            return img
        if cls == "pad":
            if cols == rb * 8:
                return None
            r, c = int(rng.integers(0, rows)), int(rng.integers(cols, rb * 8))
            img[sb + r * rb + c // 8] |= 1 << (c % 8)
            return img
        if cls == "ptr_mid":                    # a middle pointer moved, still non-decreasing
            if rows < 2:
                return None
            j = int(rng.integers(1, rows))
            lo, hi = _u32(img, sa + 4 * (j - 1)), _u32(img, sa + 4 * (j + 1))
            cur = _u32(img, sa + 4 * j)
            choices = [v for v in range(lo, hi + 1) if v != cur]
            if not choices:
                return None
            _put32(img, sa + 4 * j, int(rng.choice(choices)))
            return img
    if fmt == "block":
        nbr, nbc = -(-rows // a), -(-cols // a)
        ptr = [_u32(img, sa + 4 * j) for j in range(nbr + 1)]
        nnzb = ptr[-1]
        col = [int.from_bytes(img[sb + 2 * i:sb + 2 * i + 2], "little") for i in range(nnzb)]
        if cls == "index_range":
            if not nnzb:
                return None
            i = int(rng.integers(0, nnzb))
            img[sb + 2 * i:sb + 2 * i + 2] = int(rng.integers(nbc, 1 << 16)).to_bytes(2, "little")
            return img
        if cls == "index_order":
            pairs = [i for i in range(1, nnzb) if np.searchsorted(ptr, i, side="right")
                     == np.searchsorted(ptr, i - 1, side="right")]
            if not pairs:
                return None
            i = int(rng.choice(pairs))
            v = int(rng.integers(0, col[i - 1] + 1))
            img[sb + 2 * i:sb + 2 * i + 2] = v.to_bytes(2, "little")
            return img
        if cls == "pad":
            spots = []
            for i in range(nnzb):
                br = int(np.searchsorted(ptr, i, side="right")) - 1
                for rr in range(a):
                    for cc in range(a):
                        if br * a + rr >= rows or col[i] * a + cc >= cols:
                            spots.append(sc + i * a * a + rr * a + cc)
            if not spots:
                return None
            img[int(rng.choice(spots))] = int(rng.integers(1, 256))
            return img
    if fmt == "nm":
        ng = -(-cols // b)
        slots = rows * ng * a
        if cls == "index_range":
            s = int(rng.integers(0, slots))
            img[sb + s] = int(rng.integers(b, 256))
            return img
        if cls == "index_order":
            if a < 2:
                return None
            g = int(rng.integers(0, rows * ng))
            s = int(rng.integers(1, a))
            img[sb + g * a + s] = int(rng.integers(0, img[sb + g * a + s - 1] + 1))
            return img
        if cls == "pad":
            spots = [(r * ng + ng - 1) * a + s for r in range(rows) for s in range(a)
                     if (ng - 1) * b + img[sb + (r * ng + ng - 1) * a + s] >= cols]
            if not spots:
                return None
            img[sa + int(rng.choice(spots))] = int(rng.integers(1, 256))
            return img
    if cls == "header":                         # offsets/shape that pass the sequencer's checks
        what = int(rng.integers(0, 4))
        if what == 0:
            _put32(img, 8, int(rng.integers(1, 17)))
        elif what == 1:
            _put32(img, 12, int(rng.integers(1, cols + 40)))
        else:
            offs = sorted(int(v) for v in rng.integers(1, total // 32 + 1, size=3) * 32)
            used = {"dense": 1, "bitmap": 3, "block": 3, "nm": 2}[fmt]
            for n in range(3):
                if n < used or rng.random() < 0.3:
                    _put32(img, 16 + 4 * n, offs[n])
        return img
    return None


CLASSES = {
    "bitmap": ["ptr", "count", "pad", "ptr_mid", "body", "bitflip", "header"],
    "block": ["ptr", "index_range", "index_order", "pad", "body", "bitflip", "header"],
    "nm": ["index_range", "index_order", "pad", "body", "bitflip", "header"],
    "dense": ["body", "header"],
}


def _cases(cfg, rng, per_format):
    cases = []
    for fmt in ("bitmap", "block", "nm", "dense"):
        made = 0
        while made < (per_format if fmt != "dense" else 3):
            W, kw = random_matrix(rng, fmt, cfg, k=int(rng.integers(1, 49)))
            img = pack(W, fmt, kw)
            cls = "valid" if rng.random() < 0.2 else str(rng.choice(CLASSES[fmt]))
            if made == 0 and fmt in ("bitmap", "block"):
                cls = "ptr0"      # at least one BAD_PTR per run (test_matches_golden asks)
            bad = img if cls == "valid" else corrupt(img, fmt, cls, rng)
            if bad is not None:
                cases.append((fmt, cls, dict(shape=W.shape, **kw), bad))
                made += 1
    return cases


def _check(cfg, cases, rng, seed, **kw):
    res = run_images(cfg, [c[3] for c in cases], rng, **kw)
    fails = []
    for (fmt, cls, info, img), (code, _, _) in zip(cases, res):
        exp = expected_code(bytes(img))
        if code != exp:
            fails.append(f"{fmt} {cls} {info}: expected {exp} ({C(exp).name}), got {code} "
                         f"image {bytes(img).hex()}")
    assert not fails, (f"seed {seed}, axi {cfg.axi_data_width}: {len(fails)} of {len(cases)} "
                       f"wrong:\n" + "\n".join(fails[:5]))
    return res


@pytest.mark.parametrize("width", [32, 64, 128])
def test_matches_golden(width, rng, seed):
    """Random shapes/sparsity, each corruption class and random byte corruptions."""
    cfg = _cfg(width)
    cases = _cases(cfg, rng, per_format=12)
    res = _check(cfg, cases, rng, seed)
    codes = {code for code, _, _ in res}
    assert {0, C.BAD_PTR, C.BAD_INDEX} <= codes, f"seed {seed}: only codes {sorted(codes)} seen"


def _edge_matrices(cfg):
    """(fmt, W, kw): M = 1, K not a multiple of G / B / M, empty rows, all-zero, K = 1."""
    rng = np.random.default_rng(0)
    G, B = cfg.group_size, cfg.block_size
    out = []
    for M, K in ((1, 1), (1, G + 3), (B + 1, 2 * B - 1), (cfg.out_buf_depth, 3)):
        W = rng.integers(-128, 128, size=(M, K)).astype(np.int8)
        W[1::2] = 0                                     # empty rows (every other one)
        kw = dict(group_size=G, block_size=B)
        out += [("bitmap", W, kw), ("bitmap", np.zeros_like(W), kw), ("block", W, kw),
                ("block", np.zeros_like(W), kw), ("dense", W, kw)]
        Wb, _ = golden.prune(W, "block", density=0.3, block_size=B)
        out.append(("block", np.asarray(Wb, dtype=np.int8), kw))
        for nm in ((1, 2), (2, 8), (32, 32)):
            Wn, _ = golden.prune(W, "nm", nm=nm)
            out.append(("nm", np.asarray(Wn, dtype=np.int8), dict(nm=nm)))
        out.append(("nm", np.zeros_like(W), dict(nm=(2, 4))))
    return out


@pytest.mark.parametrize("width", [32, 64, 128])
def test_edge_cases(width, rng, seed):
    """Valid edge images give 0; two corruption classes of each give golden's code."""
    cfg = _cfg(width)
    cases = []
    for fmt, W, kw in _edge_matrices(cfg):
        img = pack(W, fmt, kw)
        cases.append((fmt, "valid", dict(shape=W.shape, **kw), img))
        for cls in rng.permutation(CLASSES[fmt])[:2]:
            bad = corrupt(img, fmt, str(cls), rng)
            if bad is not None:
                cases.append((fmt, str(cls), dict(shape=W.shape, **kw), bad))
    res = _check(cfg, cases, rng, seed, gap=0.1, stall=0.1)
    for (fmt, cls, info, _), (code, _, _) in zip(cases, res):
        assert cls != "valid" or code == 0, f"seed {seed}: valid {fmt} {info} gave {code}"


def _extra_holds(img, wb):
    """Cycles the checker holds a valid image's body: every word holding ``n > 1`` row ends
    (bitmap masks; nm values and indices when K % M != 0) or block-row boundaries (blk_col,
    an empty block row counts) costs ``n - 1`` (a naive model of the documented rule)."""
    h = _hdr(img)
    fmt = {1: "bitmap", 2: "block", 3: "nm"}.get(h["fmt"])
    ends = []
    if fmt == "bitmap":
        rb = -(-h["cols"] // h["a"]) * h["a"] // 8
        ends = [h["sec_b"] + (r + 1) * rb - 1 for r in range(h["rows"])]
    elif fmt == "nm" and h["cols"] % h["b"]:
        rb = -(-h["cols"] // h["b"]) * h["a"]
        ends = [s + (r + 1) * rb - 1 for s in (h["sec_a"], h["sec_b"]) for r in range(h["rows"])]
    elif fmt == "block":
        nbr = -(-h["rows"] // h["a"])
        ptr = [_u32(img, h["sec_a"] + 4 * j) for j in range(nbr + 1)]
        ends = [h["sec_b"] + 2 * p for p in ptr[1:-1] if h["sec_b"] + 2 * p < h["sec_c"]]
    per = {}
    for e in ends:
        per[e // wb] = per.get(e // wb, 0) + 1
    return sum(n - 1 for n in per.values())


@pytest.mark.parametrize("width", [32, 128])
def test_full_rate(width, rng, seed):
    """Valid images are held exactly as the documented rule says (a naive model): never once
    the set-up cycles after the header have passed, except one cycle per extra row end (or
    block-row boundary) in a word; rows of at least a word never cause a hold."""
    cfg = _cfg(width)
    wb = cfg.axi_bytes
    images, gaps, short = [], [], []
    for fmt in ("bitmap", "block", "nm", "dense"):
        for long_rows in (True, True, False):
            k = int(rng.integers(8 * wb, 12 * wb)) if long_rows else int(rng.integers(1, 9))
            W, kw = random_matrix(rng, fmt, cfg, k=k)
            img = pack(W, fmt, kw)
            images.append(img)
            n = len(_words(img, wb))
            # the body arrives after the set-up cycles (as in the accelerator) or at once
            late = len(images) % 2 == 0
            gaps.append([0] * (32 // wb) + [ImageChecker.setup_cycles if late else 0]
                        + [0] * (n - 32 // wb - 1))
            h = _hdr(img)
            row_bytes = (-(-k // cfg.group_size) * cfg.group_size // 8 if fmt == "bitmap" else
                         -(-k // h["b"]) * h["a"] if fmt == "nm" else k if fmt == "dense" else 0)
            short.append((fmt, W.shape, late, row_bytes, _extra_holds(img, wb)))
    res = run_images(cfg, images, rng, gaps=gaps, stall=0)
    for (fmt, shape, late, row_bytes, extra), (code, held, _) in zip(short, res):
        assert code == 0, f"seed {seed}: valid {fmt} {shape} gave code {code}"
        exp = extra + (0 if late else ImageChecker.setup_cycles)
        assert held == exp, (f"seed {seed}: {fmt} {shape} (body late={late}) held {held} "
                             f"cycles, expected {exp}")
        if row_bytes >= wb:             # rows of at least a word never hold the stream
            assert extra == 0, (fmt, shape, row_bytes, extra)


@pytest.mark.parametrize("width", [32, 128])
def test_any_bytes_never_hang(width, rng, seed):
    """Random bytes anywhere (header included, ``total`` kept): the checker always finishes;
    within the hardware limits (the build's G / B, nm N a power of two, rows <= out_buf_depth,
    cols < 2**16) its code is golden's; other parameters are BAD_PARAM, more rows BAD_SHAPE."""
    cfg = _cfg(width)
    cases = []
    for _ in range(16):
        fmt = str(rng.choice(["bitmap", "block", "nm", "dense"]))
        W, kw = random_matrix(rng, fmt, cfg, m=int(rng.integers(1, 6)), k=int(rng.integers(1, 30)))
        img = pack(W, fmt, kw)
        for _ in range(int(rng.integers(1, 4))):
            off = int(rng.integers(0, len(img)))
            if not 28 <= off < 32:
                img[off] = int(rng.integers(0, 256))
        cases.append((fmt, img))
    res = run_images(cfg, [img for _, img in cases], rng)
    for (fmt, img), (code, _, _) in zip(cases, res):
        h = _hdr(img)
        header_ok = img[0:4] == bytes.fromhex("53504d57") and h["fmt"] <= 3
        params = _build_params_ok(cfg, h)
        within = (params and h["rows"] <= cfg.out_buf_depth and h["cols"] < 1 << 16)
        if within:
            exp = expected_code(bytes(img))
            assert code == exp, f"seed {seed}: {fmt} {bytes(img).hex()}: expected {exp}, got {code}"
        elif header_ok and not params:     # golden allows any G, B, N: the build allows its own
            assert code == C.BAD_PARAM, (f"seed {seed}: params {h['a']}, {h['b']} of format "
                                         f"{h['fmt']} outside the build gave {code}")
        elif h["rows"] > cfg.out_buf_depth and header_ok and img[7] == 0:
            assert code == C.BAD_SHAPE, f"seed {seed}: rows {h['rows']} gave {code}"


def test_rows_beyond_out_buf_depth():
    """A slice with more rows than ``out_buf_depth`` is BAD_SHAPE (the hardware limit)."""
    cfg = _cfg(64)
    rng = np.random.default_rng(1)
    W, kw = random_matrix(rng, "bitmap", cfg, m=cfg.out_buf_depth + 1, k=5)
    res = run_images(cfg, [pack(W, "bitmap", kw)], rng)
    assert res[0][0] == C.BAD_SHAPE, res


def test_rejects_bad_config():
    with pytest.raises(TypeError, match="cfg must be an AcceleratorConfig, not 3"):
        ImageChecker(3)


@pytest.mark.parametrize("width", [32, 128])
def test_nm_duplicate_index_every_m(width, rng, seed):
    """Directed: for every N:M M (and N = 2 and N = M), one index repeated in a group (the
    first group, a middle one, the last group of the last row; the second slot and the last
    slot of the group) is BAD_INDEX on the RTL as in golden, whatever the seed."""
    cfg = _cfg(width)
    cases = []
    for mm in (v for v in (2, 4, 8, 16, 32) if v <= cfg.nm_max_m):
        for nn in sorted({2, mm}):
            W = rng.integers(-128, 128, size=(5, 3 * mm + 1)).astype(np.int8)
            W, _ = golden.prune(W, "nm", nm=(nn, mm))
            kw = dict(group_size=cfg.group_size, block_size=cfg.block_size, nm=(nn, mm))
            img = pack(np.asarray(W, dtype=np.int8), "nm", kw)
            h = _hdr(img)
            ngroups = h["rows"] * -(-h["cols"] // mm)
            for g in (0, ngroups // 2, ngroups - 1):
                for s in sorted({1, nn - 1}):
                    bad = bytearray(img)
                    at = h["sec_b"] + g * nn + s
                    bad[at] = bad[at - 1]                        # a duplicate index
                    assert expected_code(bytes(bad)) == C.BAD_INDEX, (mm, nn, g, s)
                    cases.append(("nm", f"dup {nn}:{mm} group {g} slot {s}",
                                  dict(shape=W.shape, nm=(nn, mm)), bad))
    _check(cfg, cases, rng, seed)


@pytest.mark.parametrize("formats", [("dense", "nm"), ("dense", "bitmap", "block")])
def test_done_latency(formats, rng, seed):
    """``done`` rises exactly ``latency + 1`` cycles after the image's last word is taken
    (3 with nm, whose pad checker takes three steps; else 1), with golden's code."""
    cfg = _cfg(64, formats=formats)
    fmt = formats[-1]
    W, kw = random_matrix(rng, fmt, cfg)
    img = pack(W, fmt, kw)
    ws = _words(img, cfg.axi_bytes)
    dut = ImageChecker(cfg)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.o.ready, 1)
        k = cycle = 0
        while k < len(ws):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, ws[k])
            if ctx.get(dut.i.ready):
                k += 1
            await ctx.tick()
            cycle += 1
        ctx.set(dut.i.valid, 0)
        last = cycle
        while not ctx.get(dut.done) and cycle < last + 20:
            await ctx.tick()
            cycle += 1
        seen.update(after=cycle - last + 1, code=ctx.get(dut.code))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    exp = {"after": dut.latency + 1, "code": expected_code(bytes(img))}
    assert dut.latency == (3 if "nm" in formats else 1)
    assert seen == exp, f"seed {seed}: {fmt} image: expected {exp}, got {seen}"
