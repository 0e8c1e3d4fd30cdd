"""HeaderChecker (hw/tile/header_checker.py) in amaranth.sim against golden.parse_weights.

Valid images of every format are packed by ``golden.pack_weights``; then header fields are
mutated one at a time (magic, format, parameters, reserved, rows, cols, total, section
offsets), at and just past every bound, and the checker's ``code`` is compared with the code
``golden.parse_weights`` reports for the image (codes 1..6; a body code 7..10 means the header
passed), plus the hardware limits (parameters of the build, ``rows <= out_buf_depth``,
``cols < 2**16``).  Headers whose image is too large to build (``total`` up to ``2**32``) are
compared with `naive_code`, a model written from docs/spec.md section 3 that is itself checked
against golden on every other header.  Seeds are printed by the ``seed`` fixture.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.format_check import parse_weights
from sparsemac.golden.formats import (
    BLOCK_SIZES,
    GROUP_SIZES,
    MAGIC,
    NM_MS,
    FormatError,
    FormatErrorCode,
)
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.header_checker import HeaderChecker, header_layout

from sparsemac import golden

C = FormatErrorCode
FMTS = ("dense", "bitmap", "block", "nm")
FIELDS = ("magic", "format", "param_a", "param_b", "reserved", "rows", "cols", "sec_a",
          "sec_b", "sec_c", "total")
_HDR = struct.Struct("<IBBBBIIIIII")
_BITS = dict(zip(FIELDS, (32, 8, 8, 8, 8, 32, 32, 32, 32, 32, 32)))
GOLDEN_MAX = 1 << 22            # largest image golden is run on (bytes)
_TINY = AcceleratorConfig.preset("tiny")
CFGS = {
    "g16b8m32": _TINY.replace(out_buf_depth=16, group_size=16, block_size=8, nm_max_m=32),
    "g8b2m8": _TINY.replace(out_buf_depth=32, group_size=8, block_size=2, nm_max_m=8),
    "g32b16m2": _TINY.replace(out_buf_depth=64, group_size=32, block_size=16, nm_max_m=2),
}


def unpack_hdr(raw: bytes) -> dict:
    return dict(zip(FIELDS, _HDR.unpack(bytes(raw[:32]))))


def pack_hdr(h: dict) -> bytes:
    return _HDR.pack(*(int(h[f]) % (1 << _BITS[f]) for f in FIELDS))


def _cdiv(a, b):
    return -(-a // b)


# ---------------------------------------------------------------- oracles
def hw_limit_code(h: dict, cfg) -> int:
    """The hardware's own rules (0 when none breaks): parameters of the build (``BAD_PARAM``,
    for a known format), ``rows <= out_buf_depth`` and ``cols < 2**16`` (``BAD_SHAPE``)."""
    fmt = FMTS[h["format"]] if h["format"] < 4 else None
    a, b = h["param_a"], h["param_b"]
    if (fmt == "bitmap" and a != cfg.group_size or fmt == "block" and a != cfg.block_size
            or fmt == "nm" and (b > cfg.nm_max_m or a & (a - 1))):
        return C.BAD_PARAM
    if h["rows"] > cfg.out_buf_depth or h["cols"] >= 1 << 16:
        return C.BAD_SHAPE
    return 0


def _first(*codes) -> int:
    """The first broken rule: codes 1..6 are numbered in golden's priority."""
    return min((c for c in codes if c), default=0)


def golden_code(hdr: bytes, body: bytes) -> int | None:
    """golden's code for the image ``hdr + body`` cut or zero-padded to ``total`` bytes (at
    least the header); 0 when only body rules (7..10) break; None when too large to build."""
    total = unpack_hdr(hdr)["total"]
    n = max(total, 32) - 32
    if n + 32 > GOLDEN_MAX:
        return None
    img = bytes(hdr) + bytes(body[:n]) + bytes(max(0, n - len(body)))
    try:
        parse_weights(img)
    except FormatError as exc:
        return int(exc.code) if exc.code <= C.BAD_SECTION else 0
    return 0


def naive_code(h: dict) -> int:
    """The header rules of docs/spec.md section 3 as golden orders them, for an image of
    ``total`` bytes (so ``total`` is the image length once it is a multiple of 32 and at least
    the header)."""
    if h["magic"] != MAGIC:
        return C.BAD_MAGIC
    if h["format"] > 3:
        return C.BAD_FORMAT
    fmt, a, b = FMTS[h["format"]], h["param_a"], h["param_b"]
    ok = {"dense": (a, b) == (0, 0), "bitmap": a in GROUP_SIZES and b == 0,
          "block": a in BLOCK_SIZES and b == 0, "nm": b in NM_MS and 1 <= a <= b}[fmt]
    if h["reserved"] or not ok:
        return C.BAD_PARAM
    rows, cols, total = h["rows"], h["cols"], h["total"]
    if rows == 0 or cols == 0 or fmt == "block" and _cdiv(cols, a) > 1 << 16:
        return C.BAD_SHAPE
    if total % 32 or total < 32:
        return C.BAD_SIZE
    offs = [h["sec_a"], h["sec_b"], h["sec_c"]]
    if any(o % 32 or not 32 <= o <= total for o in offs) or not offs[0] <= offs[1] <= offs[2]:
        return C.BAD_SECTION
    used = {"dense": 1, "bitmap": 3, "block": 3, "nm": 2}[fmt]
    if any(o != total for o in offs[used:]):
        return C.BAD_SECTION
    if fmt == "dense":
        need = [rows * cols]
    elif fmt == "bitmap":
        need = [4 * (rows + 1), rows * _cdiv(cols, a) * a // 8]
    elif fmt == "block":
        need = [4 * (_cdiv(rows, a) + 1)]
    else:
        need = [rows * _cdiv(cols, b) * a] * 2
    ends = offs[1:] + [total]
    if any(n > ends[i] - offs[i] for i, n in enumerate(need)):
        return C.BAD_SECTION
    return 0


def expected(hdr: bytes, body: bytes, cfg) -> int:
    h = unpack_hdr(hdr)
    g = golden_code(hdr, body)
    return _first(naive_code(h) if g is None else g, hw_limit_code(h, cfg))


def expected_fields_ok(h: dict, code: int) -> bool:
    """Every rule but the section sizes (and unused sections) holds."""
    if code not in (0, C.BAD_SECTION):
        return False
    offs = [h["sec_a"], h["sec_b"], h["sec_c"]]
    return all(o % 32 == 0 and 32 <= o <= h["total"] for o in offs) and \
        offs[0] <= offs[1] <= offs[2]


def expected_derived(h: dict, cfg) -> dict:
    """nm logarithms, ``row_bytes`` and ``sec_bytes`` of a header with valid fields."""
    fmt, a, b, rows, k = FMTS[h["format"]], h["param_a"], h["param_b"], h["rows"], h["cols"]
    x = (k if fmt == "dense" else _cdiv(k, a) * a // 8 if fmt == "bitmap" else
         _cdiv(k, b) * a if fmt == "nm" else 0)
    d = {"row_bytes": x, "sec_bytes": rows * x}
    if fmt == "nm":
        d.update(nm_lg_m=b.bit_length() - 1, nm_lg_n=a.bit_length() - 1)
    return d


# ---------------------------------------------------------------- headers
def random_image(rng, cfg, fmt, *, m=None, k=None) -> bytes:
    """A valid image of ``fmt`` with the build's parameters (random nm N:M)."""
    M = int(m if m is not None else rng.integers(1, cfg.out_buf_depth + 1))
    K = int(k if k is not None else rng.integers(1, 80))
    W = (rng.integers(-128, 128, size=(M, K)) * (rng.random((M, K)) < rng.random())
         ).astype(np.int8)
    kw = dict(group_size=cfg.group_size, block_size=cfg.block_size)
    if fmt == "nm":
        mm = int(rng.choice([v for v in NM_MS if v <= cfg.nm_max_m]))
        nn = int(rng.choice([v for v in (1, 2, 4, 8, 16, 32) if v <= mm]))
        W = np.asarray(golden.prune(W, "nm", nm=(nn, mm))[0], dtype=np.int8)
        kw["nm"] = (nn, mm)
    return bytes(golden.pack_weights(W, fmt, **kw).image)


def _tight(h: dict, field: str, limit: int) -> list[dict]:
    """``field`` at the largest value (from the image's own, below ``limit``) whose header
    passes, and one past it: a section exactly filled and one byte (or one step) short.  The
    search uses `naive_code`; the verdicts come from golden."""
    v = h[field]
    while v + 1 < limit and naive_code(dict(h, **{field: v + 1})) == 0:
        v += 1
    return [dict(h, **{field: v}), dict(h, **{field: v + 1})]


def mutations(h: dict, cfg, rng) -> list[dict]:
    """Headers derived from a valid one: every field at and past its bounds."""
    obd, total = cfg.out_buf_depth, h["total"]
    out = [dict(h)]
    put = [("magic", 0), ("magic", MAGIC ^ 1 << int(rng.integers(0, 32))),
           ("magic", MAGIC ^ 1 << 31), ("format", 4), ("format", 255),
           ("format", (h["format"] + int(rng.integers(1, 4))) % 4), ("reserved", 1),
           ("reserved", 0x80), ("param_a", 0), ("param_a", 1), ("param_a", 3),
           ("param_a", h["param_a"] * 2), ("param_a", h["param_a"] // 2), ("param_a", 255),
           ("param_b", 0), ("param_b", 1), ("param_b", 3), ("param_b", 64),
           ("param_b", h["param_b"] * 2), ("param_b", h["param_b"] // 2), ("param_b", 255),
           ("rows", 0), ("rows", obd), ("rows", obd + 1), ("rows", 2**32 - 1),
           ("rows", h["rows"] + 1), ("rows", max(1, h["rows"] - 1)),
           ("cols", 0), ("cols", 2**16 - 1), ("cols", 2**16), ("cols", 2**16 + 1),
           ("cols", 2**32 - 1), ("cols", h["cols"] + 1), ("cols", max(1, h["cols"] - 1)),
           ("total", total + 1), ("total", total + 8), ("total", total + 16),
           ("total", total - 16), ("total", total - 32),
           ("total", total + 32), ("total", 0), ("total", 16), ("total", 31), ("total", 32),
           ("total", 33), ("total", GOLDEN_MAX - 32), ("total", 2**32 - 32),
           ("total", 2**32 - 1)]
    for s in ("sec_a", "sec_b", "sec_c"):
        put += [(s, h[s] + 1), (s, h[s] + 16), (s, h[s] - 32), (s, h[s] + 32), (s, 0),
                (s, 16), (s, 31), (s, 32), (s, total), (s, total + 32), (s, 2**32 - 32)]
    out += [dict(h, **{f: v % (1 << 32)}) for f, v in put]
    # nm: N:M pairs around the build's limits (golden-valid N not a power of two, M past
    # nm_max_m, N > M)
    if h["format"] == 3:
        out += [dict(h, param_a=a, param_b=b) for a, b in
                ((3, 4), (1, cfg.nm_max_m), (1, 2 * cfg.nm_max_m), (4, 2), (2, 2), (32, 32))]
    # swapped offsets; section C at total; total cut to section C
    out += [dict(h, sec_a=h["sec_b"], sec_b=h["sec_a"]),
            dict(h, sec_b=h["sec_c"], sec_c=h["sec_b"]),
            dict(h, sec_c=total), dict(h, total=h["sec_c"])]
    # section sizes: exactly filled and one byte short (cols / rows grown to the bound)
    if h["format"] != 2:                # block: no section size depends on cols
        out += _tight(h, "cols", 1 << 16)
    out += _tight(h, "rows", obd + 1)
    return out


def run_headers(cfg, headers, rng):
    """Check every header once on one HeaderChecker; returns per header
    ``(code, fields_ok, done_cycle, values)`` where ``done_cycle`` counts cycles from the
    start cycle (0) to the first with ``done`` and ``values`` holds each derived output at the
    first cycle it is documented valid (nm logarithms 1, ``row_bytes`` 2, ``sec_bytes`` 3)."""
    dut = HeaderChecker(cfg)
    lat = dut.latency
    valid_at = {1: ("nm_lg_m", "nm_lg_n"), 2: ("row_bytes",), 3: ("sec_bytes",)}
    results = []

    async def bench(ctx):
        for hdr in headers:
            ctx.set(dut.hdr.as_value(), int.from_bytes(hdr, "little"))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            values, done_at = {}, None
            for cyc in range(1, lat + 3):
                for name in valid_at.get(cyc, ()):
                    values[name] = ctx.get(getattr(dut, name))
                if ctx.get(dut.done) and done_at is None:
                    done_at = cyc
                    res = (ctx.get(dut.code), ctx.get(dut.fields_ok))
                if done_at is not None:     # done holds, the result too
                    assert ctx.get(dut.done) and (ctx.get(dut.code),
                                                  ctx.get(dut.fields_ok)) == res
                await ctx.tick()
            results.append((*res, done_at, values) if done_at else (None, None, None, values))
            for _ in range(int(rng.integers(0, 3))):     # idle between headers
                await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def _check(cfg, cases, rng, seed):
    """``cases``: (header bytes, body bytes, label)."""
    res = run_headers(cfg, [c[0] for c in cases], rng)
    lat = HeaderChecker(cfg).latency
    fails = []
    for (hdr, body, label), (code, fields_ok, done_at, values) in zip(cases, res):
        h = unpack_hdr(hdr)
        exp = expected(hdr, body, cfg)
        if done_at != lat:
            fails.append(f"{label}: done after {done_at} cycles, latency is {lat}")
            continue
        if code != exp:
            fails.append(f"{label}: expected {exp} ({C(exp).name}), got {code}: {h}")
            continue
        exp_ok = expected_fields_ok(h, exp)
        if fields_ok != exp_ok:
            fails.append(f"{label}: fields_ok {fields_ok}, expected {exp_ok}: {h}")
        elif exp_ok:
            want = expected_derived(h, cfg)
            got = {k: values[k] for k in want}
            if got != want:
                fails.append(f"{label}: derived values {got}, expected {want}: {h}")
    assert not fails, (f"seed {seed}: {len(fails)} of {len(cases)} headers wrong:\n"
                       + "\n".join(fails[:6]))
    return [r[0] for r in res]


def _mutation_cases(cfg, rng):
    cases = []
    for fmt in FMTS:
        shapes = [(1, 1), (None, None), (None, None), (cfg.out_buf_depth, None), (1, 64),
                  (2, 32), (cfg.out_buf_depth, 2**16 - 1)]
        for m, k in shapes:
            img = random_image(rng, cfg, fmt, m=m, k=k)
            h, body = unpack_hdr(img), img[32:]
            muts = mutations(h, cfg, rng)
            if k == 2**16 - 1:          # a large image: a sample of the mutations only
                muts = [muts[0]] + [muts[int(i)] for i in rng.choice(len(muts), 12)]
            cases += [(pack_hdr(x), body, f"{fmt} {h['rows']}x{h['cols']} #{i}")
                      for i, x in enumerate(muts)]
    return cases


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("name", list(CFGS))
def test_matches_golden(name, rng, seed):
    """Valid images of every format (1x1, random, ``out_buf_depth`` rows, ``2**16 - 1``
    columns) and every field mutated at and past its bounds: golden's code, the hardware
    limits at their priority, ``done`` exactly ``latency`` cycles after ``start``, and the
    derived values of every header whose fields are valid."""
    cfg = CFGS[name]
    cases = _mutation_cases(cfg, rng)
    codes = set(_check(cfg, cases, rng, seed))
    assert set(range(7)) <= codes, f"seed {seed}: only codes {sorted(codes)} seen"


def _random_field(rng, h, f):
    v = h[f]
    picks = [0, 1, 31, 32, 33, 63, 64, 2**16 - 1, 2**16, 2**31, 2**32 - 32, 2**32 - 1,
             v + 32, v - 32, v + 1, int(rng.integers(0, 1 << 32))]
    if f in ("sec_a", "sec_b", "sec_c", "total"):
        picks += [h["sec_a"], h["sec_b"], h["sec_c"], h["total"]] * 2
    if f in ("format", "param_a", "param_b", "reserved"):
        picks = [0, 1, 2, 3, 4, 8, 16, 32, 64, 255, v, int(rng.integers(0, 256))]
    return int(picks[int(rng.integers(0, len(picks)))]) % (1 << _BITS[f])


@pytest.mark.parametrize("name", ["g16b8m32", "g8b2m8"])
def test_random_headers(name, rng, seed):
    """Valid headers with one to three random fields replaced by edge or random values."""
    cfg = CFGS[name]
    cases = []
    for n in range(300):
        fmt = FMTS[n % 4]
        img = random_image(rng, cfg, fmt, k=int(rng.integers(1, 40)))
        h, body = unpack_hdr(img), img[32:]
        for f in rng.choice(FIELDS, int(rng.integers(1, 4)), replace=False):
            h[str(f)] = _random_field(rng, h, str(f))
        cases.append((pack_hdr(h), body, f"{fmt} random #{n}"))
    _check(cfg, cases, rng, seed)


def test_naive_model_matches_golden(rng, seed):
    """The model used for headers too large for golden agrees with golden on all others."""
    cfg = CFGS["g16b8m32"]
    fails, n = [], 0
    for hdr, body, label in _mutation_cases(cfg, rng):
        g = golden_code(hdr, body)
        if g is not None:
            n += 1
            if naive_code(unpack_hdr(hdr)) != g:
                fails.append(f"{label}: golden {g}, model {naive_code(unpack_hdr(hdr))}")
    assert n > 500 and not fails, f"seed {seed}: {fails[:5]}"


def test_latency_restart_and_hold(rng, seed):
    """``done`` rises exactly ``latency`` cycles after the last ``start`` (a start during a
    check restarts it) and holds, with ``code``, until the next ``start``."""
    cfg = CFGS["g16b8m32"]
    dut = HeaderChecker(cfg)
    good = random_image(rng, cfg, "bitmap")[:32]
    bad = pack_hdr(dict(unpack_hdr(good), magic=0))
    trace = []

    async def bench(ctx):
        # (cycle of a start, header) pairs: a start 2 cycles into a check, then a gap
        plan = {0: bad, 2: good, 12: bad}
        for cyc in range(20):
            if cyc in plan:
                ctx.set(dut.hdr.as_value(), int.from_bytes(plan[cyc], "little"))
            ctx.set(dut.start, int(cyc in plan))
            trace.append((ctx.get(dut.done), ctx.get(dut.code)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    lat = dut.latency
    done = [d for d, _ in trace]
    exp = [int(2 + lat <= c <= 12 or c >= 12 + lat) for c in range(20)]
    assert done == exp, f"seed {seed}: done {done}, expected {exp} (latency {lat})"
    assert {c for d, c in trace[2 + lat:13]} == {0}, trace
    assert {c for d, c in trace[12 + lat:]} == {C.BAD_MAGIC}, trace


def test_header_layout_is_golden_header(rng, seed):
    """The layout's fields sit where golden's header puts them (little-endian bytes)."""
    img = random_image(rng, CFGS["g8b2m8"], "nm")
    view = header_layout().from_bits(int.from_bytes(img[:32], "little"))
    assert {f: int(getattr(view, f)) for f in FIELDS} == unpack_hdr(img)


def test_rejects_bad_config():
    with pytest.raises(TypeError, match="cfg must be an AcceleratorConfig, not 3"):
        HeaderChecker(3)
