"""TileNode (hw/tile/tile_node.py) in amaranth.sim: ring flits in, RESULT flits out, vs golden.

The testbench plays the hub: it sets ``layer`` as the sequencer does for a matmul (the 1x1
conv of a ``K x 1 x N`` image), pulses ``start`` and sends the flits in the sequencer's order
(image header as DATA, activation table and requant records as CTRL, activations as ACTS,
the image body as DATA), with random gaps on the input and random back-pressure on the output.
The RESULT flits are written into a byte array and compared with `golden.matmul`.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.format_check import parse_weights
from sparsemac.golden.formats import FORMAT_CODES, FormatError
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.ring.layouts import FlitType
from sparsemac.hw.tile.tile_node import DONE_MARKER, QUANT_BYTES, TileNode, result_data_bytes

from sparsemac import golden
from tests.hw.streams import stream_put

CFG = AcceleratorConfig.preset("tiny")
FMTS = ("dense", "bitmap", "block", "nm")


def _weights(rng, fmt, M, K):
    W = rng.integers(-128, 128, size=(M, K)).astype(np.int8)
    if fmt in ("dense", "bitmap"):
        W, _ = golden.prune(W, "unstructured", density=float(rng.uniform(0.2, 0.9)))
    elif fmt == "block":
        W, _ = golden.prune(W, "block", density=0.5, block_size=CFG.block_size)
    else:
        W, _ = golden.prune(W, "nm", nm=(2, 4))
    return np.asarray(W, dtype=np.int8)


def _words(raw, beat):
    raw = bytes(raw).ljust(-(-len(raw) // beat) * beat, b"\0")
    return [int.from_bytes(raw[i:i + beat], "little") for i in range(0, len(raw), beat)]


def _run(cfg, *, image, X, M, fmt_code, requant, lut=None, quant=b"", seed, stall=0.3,
         max_cycles=20_000, until_image_done=False, late_gap=None):
    """One layer through the node; returns (rows of result bytes, status dict).

    ``late_gap``: the LATE_TABLES order (the table and records after the body, ``late_gap``
    idle cycles after it); ``status["early_results"]`` counts RESULT flits that left before
    the last record was sent."""
    dut = TileNode(cfg, node=1)
    beat = cfg.axi_bytes
    K, N = X.shape
    es = 1 if requant else 4
    D = result_data_bytes(cfg)
    prng = random.Random(seed)
    out = {}
    st = {"end": False, "markers": 0, "after_marker": 0}
    flits = [(FlitType.DATA, w) for w in _words(image[:32], beat)]
    tables = []
    if requant:
        tables += [(FlitType.CTRL, w) for w in _words(lut, beat)]
        tables += [(FlitType.CTRL, w) for w in _words(quant, beat)]
    if late_gap is None:
        flits += tables
    act_words = _words(X.tobytes(), beat)
    flits += [(FlitType.ACTS, w) for w in act_words]
    flits += [(FlitType.DATA, w) for w in _words(image[32:], beat)]
    if late_gap is not None:
        flits += [("gap", late_gap)] + tables
    st["tables_in"] = not tables
    st["early_results"] = 0

    async def hub(ctx):
        lay = dut.layer
        g = lay.geo
        for sig, v in ((lay.fmt, fmt_code), (lay.k, K), (lay.n, N), (g.c, K), (g.h, 1),
                       (g.w, N), (g.oh, 1), (g.ow, N), (g.kh, 1), (g.kw, 1), (g.sh, 1),
                       (g.sw, 1), (g.ph, 0), (g.pw, 0), (g.dh, 1), (g.dw, 1),
                       (lay.requant, requant), (lay.lg_esize, 2),
                       (lay.act_beats, len(act_words)),
                       (lay.quant_beats, len(quant) // beat if requant else 0),
                       (lay.lut_beats, 256 // beat if requant else 0)):
            ctx.set(sig, v)
        await ctx.tick()
        ctx.set(dut.start, 1)
        ctx.set(dut.rows, M)
        ctx.set(dut.row_base, 0)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for ftype, w in flits:
            if ftype == "gap":
                ctx.set(dut.flits_in.valid, 0)
                await ctx.tick().repeat(w)
                continue
            await stream_put(ctx, dut.flits_in, {"type": ftype, "payload": w}, prng=prng,
                             stall=stall)
        st["tables_in"] = True
        ctx.set(dut.flits_in.valid, 0)

    async def sink(ctx):
        fo = dut.flits_out
        for _ in range(max_cycles):
            ctx.set(fo.ready, int(prng.random() >= stall))
            _, _, v, r, ftype, p, idone = await ctx.tick().sample(
                fo.valid, fo.ready, fo.payload.type, fo.payload.payload, dut.image_done)
            if until_image_done and idone:
                break
            if not (v and r):
                continue
            assert FlitType(ftype) == FlitType.RESULT
            st["early_results"] += not st["tables_in"]
            m, eoff, data = p & 0xFFFF, p >> 16 & 0xFFFF, (p >> 32).to_bytes(D, "little")
            if m == DONE_MARKER:
                st["markers"] += 1
                break
            assert m < M and eoff < N * es, f"seed {seed}: flit for m={m}, eoff={eoff}"
            row = out.setdefault(m, bytearray(N * es))
            n = min(D, N * es - eoff)
            row[eoff:eoff + n] = data[:n]
            st.setdefault("written", set()).update((m, eoff + b) for b in range(n))
        else:
            pytest.fail(f"seed {seed}: no end marker after {max_cycles} cycles")
        for _ in range(20):     # nothing after the marker; the node is idle again
            ctx.set(fo.ready, 1)
            _, _, v = await ctx.tick().sample(fo.valid)
            st["after_marker"] += v
        st.update(done=ctx.get(dut.done), error=ctx.get(dut.error),
                  image_done=ctx.get(dut.image_done), image_code=ctx.get(dut.image_code))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(hub, background=True)
    sim.add_testbench(sink)
    sim.run()
    return out, st


#: Configurations of the node: out_lanes = cols (one pipeline beat per result row) and
#: out_lanes < cols (a row goes through the output pipeline in cols / out_lanes beats).
NODE_CFGS = {"2x2/2": CFG, "2x4/2": CFG.replace(cols=4, out_lanes=2),
             "2x4/1": CFG.replace(cols=4, out_lanes=1),
             # no result buffer (``result_buf_depth`` 0: the tile's results straight on) and
             # the smallest one
             "2x2/2 nobuf": CFG.replace(result_buf_depth=0),
             "2x2/2 buf1": CFG.replace(result_buf_depth=1)}


@pytest.mark.parametrize("build,fmt,mode", [
    *(("2x2/2", f, mo) for f in FMTS for mo in ("raw", "identity", "lut")),
    *((b, f, mo) for b in ("2x4/2", "2x4/1", "2x2/2 nobuf", "2x2/2 buf1")
      for f, mo in (("dense", "lut"), ("nm", "identity"), ("bitmap", "raw"), ("block", "lut")))])
def test_matmul_results_match_golden(build, fmt, mode, rng, seed):
    """Random ``W[M, K] @ X[K, N]`` (M up to out_buf_depth, N not a multiple of cols): the
    result bytes of every output row equal golden.matmul -- int32 accumulators (``raw``), or
    requantized int8 through the generated identity table or a random table -- each byte is
    written exactly once, then one end marker and nothing after it; image_done with code 0.

    Catches e.g.: the packer's last-segment length (planted: ``nb = cols << lg_es``:
    a segment past ``n`` is sent), a requant record kept for the wrong row
    (``local`` off by one), the activation table written at ``lut_addr + 1``, or the marker
    sent before the last result.
    """
    _check_layer(NODE_CFGS[build], fmt, mode, rng, seed)


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("gap", [1, 40])
@pytest.mark.parametrize("build", ["2x2/2", "2x2/2 nobuf"])
def test_late_tables_hold_the_results(build, fmt, gap, rng, seed):
    """The LATE_TABLES order (docs/accelerator.md): header, activations, body, ``gap`` idle
    cycles, then the table and the records.  No RESULT flit leaves before the last record is
    in (the node's ``tables_in`` gate; the lanes stop at their second pending result), and
    every byte equals golden with the records that came last (planted: the gate removed, mutant
    TABLES-GATE-OPEN, gives results requantized with the power-on records)."""
    _check_layer(NODE_CFGS[build], fmt, "lut", rng, seed, late_gap=gap)


def _check_layer(cfg, fmt, mode, rng, seed, *, late_gap=None):
    M = int(rng.integers(1, cfg.out_buf_depth + 1))
    K = int(rng.integers(1, 9))
    N = 2 * int(rng.integers(0, 2 * cfg.cols)) + 1     # odd: the last segment is partial
    assert -(-N // cfg.cols) * K <= cfg.act_buf_depth
    W = _weights(rng, fmt, M, K)
    X = rng.integers(-128, 128, size=(K, N)).astype(np.int8)
    pw = golden.pack_weights(W, fmt, group_size=cfg.group_size, block_size=cfg.block_size,
                             nm=(2, 4))
    image = bytes(pw.image)
    requant = mode != "raw"
    kw, lut, quant = {}, b"", b""
    if requant:
        acc = np.asarray(golden.matmul(W, X, acc_width=cfg.acc_width), dtype=np.int64)
        amax = int(np.abs(acc).max(initial=1)) + 1
        bias = rng.integers(-amax // 4 - 1, amax // 4 + 1, size=M)
        mult = rng.integers(1 << 20, 1 << 22, size=M)
        shift = np.maximum(max(1, min(63, amax.bit_length() + 15)) - rng.integers(0, 3, size=M),
                           1)
        quant = b"".join(int(b).to_bytes(4, "little", signed=True) + int(mu).to_bytes(4, "little")
                         + bytes([int(s)]) + bytes(QUANT_BYTES - 9)
                         for b, mu, s in zip(bias, mult, shift))
        table = (golden.build_lut("identity", 1.0, 1.0) if mode == "identity" else
                 rng.integers(-128, 128, size=256))
        table = np.asarray(table, dtype=np.int8)
        lut = table.tobytes()
        kw = dict(bias=bias, mult=mult, shift=shift, lut=table)
    Y = np.asarray(golden.matmul(W, X, acc_width=cfg.acc_width, **kw))
    exp = Y.astype(np.int8) if requant else Y.astype(np.int64).astype("<i4")
    out, st = _run(cfg, image=image, X=X, M=M, fmt_code=FORMAT_CODES[fmt],
                   requant=requant, lut=lut, quant=quant, seed=seed, late_gap=late_gap)
    if late_gap is not None:
        assert st["early_results"] == 0, f"seed {seed}: {st['early_results']} results early"
    es = 1 if requant else 4
    assert len(st.get("written", ())) == M * N * es, (
        f"seed {seed}: {len(st.get('written', ()))} result bytes written, expected {M * N * es}")
    for m in range(M):
        got = np.frombuffer(bytes(out[m]), dtype=exp.dtype)
        assert np.array_equal(got, exp[m]), f"seed {seed}: {fmt} row {m}: {got} != {exp[m]}"
    assert st["markers"] == 1 and st["after_marker"] == 0, f"seed {seed}: {st}"
    assert (st["done"], st["error"], st["image_done"], st["image_code"]) == (1, 0, 1, 0), \
        f"seed {seed}: {st}"


@pytest.mark.parametrize("fmt,where", [("bitmap", "ptr"), ("bitmap", "mask"), ("block", "ptr"),
                                       ("block", "index"), ("nm", "index")])
def test_broken_image_body_gives_golden_code(fmt, where, rng, seed):
    """One byte of the image body (row/block pointers, bitmap masks, block columns or nm
    indices) is changed so that golden `parse_weights` refuses the image: the node's
    ``image_done`` rises with ``image_code`` = golden's code (what the sequencer reports).

    Catches e.g.: the ImageChecker not seeing the words through the 2-word FIFO (planted:
    ``chk.i.payload.eq(wslice.r_data)`` -> ``.eq(0)``: a zero body breaks the pointer / mask
    checks differently), or ``image_code`` wired to the wrong checker output.
    """
    cfg = CFG
    M, K, N = int(rng.integers(2, 9)), int(rng.integers(8, 17)), 2
    W = _weights(rng, fmt, M, K)
    if fmt == "block":
        W[0, 0] = W[0, 0] or 1              # row 0 holds something (a block is stored)
    pw = golden.pack_weights(W, fmt, group_size=cfg.group_size, block_size=cfg.block_size,
                             nm=(2, 4))
    img = bytearray(pw.image)
    sec_a, sec_b = pw.sec_a, pw.sec_b
    for _ in range(200):                    # a random corruption golden refuses
        bad = bytearray(img)
        if where == "ptr":
            i = sec_a + 4 * int(rng.integers(1, 3))
            bad[i] = (bad[i] + int(rng.integers(1, 200))) & 0xFF
        elif where == "mask" or fmt == "block":
            i = sec_b + int(rng.integers(0, 2 if fmt == "block" else 4))
            bad[i] ^= 1 << int(rng.integers(0, 8))
        else:                               # nm index section
            i = sec_b + int(rng.integers(0, 2 * M))
            bad[i] = (bad[i] + int(rng.integers(1, 4))) & 0xFF
        try:
            parse_weights(bytes(bad))
        except FormatError as e:
            if e.code >= 7:                 # a body rule (header / section rules: the hub's)
                code = int(e.code)
                break
    else:
        pytest.fail(f"seed {seed}: no body corruption that golden refuses in 200 tries")
    X = rng.integers(-128, 128, size=(K, N)).astype(np.int8)
    _, st = _run(cfg, image=bytes(bad), X=X, M=M, fmt_code=FORMAT_CODES[fmt], requant=False,
                 seed=seed, until_image_done=True, max_cycles=5000)
    assert st["image_done"] == 1 and st["image_code"] == code, \
        f"seed {seed}: {fmt} byte {i}: expected code {code}, got {st}"
