"""Sequencer (hw/hub/sequencer.py) in amaranth.sim against golden descriptor tables.

The testbench stands in for everything around the sequencer: a DmaReader over a byte memory
(the window image of `sim.accel_driver.build_job`), the hub's ring port (random back-pressure,
every injected flit recorded at the clock edge) and a behavioural tile/result-writer model: a
started node counts as finished (``node_image_done``, one more ``rw_markers``) once it has
received its whole weight image, the layer's activation words and, with REQUANT, its CTRL
words.  So the sequencer only completes a layer when it really sent everything.

The expected flit stream of a layer is derived from the memory image with the golden
functions (`golden.format_check.parse_weights` splits the per-tile images, `buffer_sizes` gives
the activation bytes, `golden.build_lut("identity", ...)` the generated table), the expected
error codes from `validate_descriptor` / `validate_table` / `parse_weights`.
"""

import random
import struct

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.desc_rules import validate_descriptor, validate_table
from sparsemac.golden.descriptors import (
    DESC_BYTES,
    ErrorCode,
    Flags,
    buffer_sizes,
    unpack_descriptor,
)
from sparsemac.golden.format_check import parse_weights
from sparsemac.golden.formats import FormatError
from sparsemac.golden.lut import build_lut
from sparsemac.golden.net_cycles import table_key, tables_held_after
from sparsemac.golden.tiling import tile_col_split
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.hub.sequencer import PLANE_RESET_DELAY, Sequencer
from sparsemac.hw.ring.layouts import FlitType
from sparsemac.sim.accel_driver import build_job, random_layer

from tests.hw.streams import stream_put

TINY = AcceleratorConfig.preset("tiny").replace(watchdog_cycles=4096)
TINY2 = TINY.replace(tiles=2)
FMTS = ("dense", "bitmap", "block", "nm")


def _job(rng, cfg, n_layers, *, irq_every=0):
    # every kind of post-processing (identity table, LUT from memory, raw accumulators) and
    # both ops in the first three layers, in random order
    kinds = [(True, None), (True, "relu"), (False, None)]
    ops = ["matmul", "conv2d", str(rng.choice(["matmul", "conv2d"]))]
    rng.shuffle(kinds)
    rng.shuffle(ops)
    layers = []
    for i in range(n_layers):
        requant, lut = kinds[i % 3]
        layers.append(random_layer(rng, cfg, op=ops[i % 3], fmt=str(rng.choice(FMTS)),
                                   requant=requant, lut=lut, max_dim=8))
    job = build_job(rng, cfg, layers)
    if irq_every:                           # IRQ flag on every other descriptor
        for i in range(0, n_layers, irq_every):
            _patch_desc(job, i, flags=unpack_descriptor(_desc_raw(job, i)).flags | Flags.IRQ)
    return job


def _desc_off(job, i):
    return job.desc_base - job.base + DESC_BYTES * i


def _desc_raw(job, i):
    o = _desc_off(job, i)
    return bytes(job.image[o:o + DESC_BYTES])


def _patch_desc(job, i, **changes):
    d = unpack_descriptor(_desc_raw(job, i)).replace(**changes)
    o = _desc_off(job, i)
    job.image[o:o + DESC_BYTES] = d.pack()
    return d


def _images(job, d):
    """(offset, total, rows, row_base) of each per-tile image of descriptor ``d``."""
    out, o, rs = [], d.weights, 0
    while rs < d.m:
        total = struct.unpack_from("<I", job.image, o + 28)[0]
        pw = parse_weights(bytes(job.image[o:o + total]))       # golden: a consistent image
        out.append((o, total, pw.shape[0], rs))
        rs += pw.shape[0]
        o += total
    return out


def _words(job, off, length, beat):
    raw = bytes(job.image[off:off + length]).ljust(length, b"\0")
    return [int.from_bytes(raw[i:i + beat], "little") for i in range(0, length, beat)]


def _tiles_started(job, cfg, d):
    """How many tiles descriptor ``d`` starts: one per weight image, or a column split's
    shares."""
    if d.col_split:
        return len(tile_col_split(d.n, cfg.cols, d.col_split, cfg.tiles))
    return len(_images(job, d))


def _expected_layer(job, cfg, i, *, upto_tile=None):
    """Events the sequencer must produce for layer ``i`` (golden view of the memory image).

    ``("start", node, rows, row_base, cg0, cgs)`` (``cg0 = cgs = 0`` for a row split) and
    ``(type, dest or "mcast", word)`` per flit: the headers, the tables (with REQUANT), the
    activations, the bodies; with LATE_TABLES the tables after the bodies.  With
    ``upto_tile``: only the starts and headers of the tiles before it (a header error there).
    """
    beat = cfg.axi_bytes
    d = unpack_descriptor(_desc_raw(job, i))
    imgs = _images(job, d)
    parts = [(0, 0)] * len(imgs)
    if d.col_split:     # one image, its header to every tile of the split (spec 8.1)
        parts = tile_col_split(d.n, cfg.cols, d.col_split, cfg.tiles)
        imgs = imgs[:1] * len(parts)
    ev = []
    if d.col_split:
        # the one header checked once (a bad one stops before any tile starts), the tiles
        # started one after another, then the header multicast to all of them
        if upto_tile is not None:
            assert upto_tile == 0, upto_tile
            return ev
        ev += [("start", t, rows, rb, *parts[t]) for t, (_, _, rows, rb) in enumerate(imgs)]
        ev += [(FlitType.DATA, "mcast", w) for w in _words(job, imgs[0][0], 32, beat)]
    for t, (o, _, rows, rb) in enumerate([] if d.col_split else imgs):
        if upto_tile is not None and t == upto_tile:
            return ev
        ev.append(("start", t, rows, rb, *parts[t]))
        ev += [(FlitType.DATA, t + 1, w) for w in _words(job, o, 32, beat)]
    tables = []
    # the table every tile holds from a layer before in this run (golden's
    # `tables_held_after`): the sequencer sends none, only the records
    held = None
    for j in range(i):
        dj = unpack_descriptor(_desc_raw(job, j))
        held = tables_held_after(held, dj, _tiles_started(job, cfg, dj), cfg.tiles)
    kept = table_key(d) is not None and table_key(d) == held
    if d.flags & Flags.REQUANT and not kept:
        if d.flags & Flags.LUT:
            lut = _words(job, d.lut, 256, beat)
        else:                               # generated identity table
            ident = build_lut("identity", 1.0, 1.0).astype(np.int8).tobytes()
            lut = [int.from_bytes(ident[j:j + beat], "little") for j in range(0, 256, beat)]
        tables += [(FlitType.CTRL, "mcast", w) for w in lut]
    if d.flags & Flags.REQUANT:
        qlen = -(-d.m * 16 // beat) * beat
        tables += [(FlitType.CTRL, "mcast", w) for w in _words(job, d.quant, qlen, beat)]
    late = bool(d.flags & Flags.LATE_TABLES)    # the tables after the bodies
    if not late:
        ev += tables
    act_len = -(-buffer_sizes(d)["acts"] // beat) * beat
    ev += [(FlitType.ACTS, "mcast", w) for w in _words(job, d.acts, act_len, beat)]
    for t, (o, total, _, _) in enumerate(imgs):
        if d.col_split:     # the one body, multicast to every tile of the split
            ev += [(FlitType.DATA, "mcast", w) for w in _words(job, o + 32, total - 32, beat)]
            break
        ev += [(FlitType.DATA, t + 1, w) for w in _words(job, o + 32, total - 32, beat)]
    if late:
        ev += tables
    return ev


def _run(cfg, job, *, seed, desc_base=None, count=None, limit=None, stall=0.3,
         max_cycles=30_000, bad_reads=None, runs=1):
    """Run the table (``runs`` times, each start after the one before has ended); return
    (per-layer event lists, final status, pulse counts, dma commands).

    ``bad_reads``: {address: status code} of reads the DMA stand-in answers with an error."""
    dut = Sequencer(cfg=cfg)
    beat, T = cfg.axi_bytes, cfg.tiles
    desc_base = job.desc_base if desc_base is None else desc_base
    count = job.count if count is None else count
    limit = job.limit if limit is None else limit
    prng = random.Random(seed)
    layers = []                 # one event list per rw_clear (CHECK state = a layer begins)
    st = {"end": False, "cmds": [], "irq_done": 0, "irq_error": 0, "irq_desc": 0,
          "plane_reset": 0, "rd_abort": 0, "starts_before_clear": 0, "abort_trace": [],
          "now": 0, "cmd_at": [], "flit_at": [], "clear_at": []}

    def mem_word(addr):
        o = addr - job.base
        raw = bytes(job.image[max(o, 0):o + beat]) if 0 <= o < len(job.image) else b""
        return int.from_bytes(raw.ljust(beat, b"\0"), "little")

    async def dma(ctx):         # DmaReader stand-in: command -> words -> status
        while not st["end"]:
            ctx.set(dut.rcmd.ready, 1)
            _, _, v, addr, length, tag = await ctx.tick().sample(
                dut.rcmd.valid, dut.rcmd.payload.addr, dut.rcmd.payload.length,
                dut.rcmd.payload.tag)
            if not v:
                continue
            ctx.set(dut.rcmd.ready, 0)
            st["cmds"].append((addr, length))
            st["cmd_at"].append(st["now"])
            assert addr % beat == 0 and length % beat == 0 and length > 0, (addr, length)
            # nothing is read outside the window (a prefetch included)
            assert job.base <= addr and addr + length <= limit, \
                f"seed {seed}: read of {length} bytes at {addr:#x} leaves the window " \
                f"[{job.base:#x}, {limit:#x})"
            n = length // beat
            for w in range(n):
                await stream_put(ctx, dut.rdata, {"data": mem_word(addr + w * beat),
                                                  "last": w == n - 1, "tag": tag},
                                 prng=prng, stall=stall)
            ctx.set(dut.rdata.valid, 0)
            ctx.set(dut.rstatus.valid, 1)
            ctx.set(dut.rstatus.payload.tag, tag)
            ctx.set(dut.rstatus.payload.code, (bad_reads or {}).get(addr, 0))
            ctx.set(dut.rstatus.payload.addr, addr)
            while True:
                _, _, rdy = await ctx.tick().sample(dut.rstatus.ready)
                if rdy:
                    break
            ctx.set(dut.rstatus.valid, 0)

    async def bench(ctx):       # control, ring port and the tile / result-writer model
        ctx.set(dut.desc_base, desc_base)
        ctx.set(dut.desc_count, count)
        ctx.set(dut.mem_base, job.base)
        ctx.set(dut.mem_limit, limit)
        for _run_i in range(runs):     # the table started `runs` times
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            nodes = [None] * T      # per started node: received DATA bytes, ACTS / CTRL words
            markers = 0
            ip = dut.inject.payload
            for _ in range(max_cycles):
                ctx.set(dut.inject.ready, int(prng.random() >= stall))
                (_, _, iv, ir, itype, idest, imcast, imask, idata, nstart, nrows, nrb, ncg0, ncgs,
                 clear,
                 irq_d, irq_e, irq_desc, prst, rab, act_b, q_b, l_b, busy, wab) = \
                    await ctx.tick().sample(
                        dut.inject.valid, dut.inject.ready, ip.type, ip.dest, ip.mcast, ip.mask,
                        ip.payload, dut.node_start, dut.node_rows, dut.node_row_base,
                        dut.node_cg0, dut.node_cgs,
                        dut.rw_clear, dut.irq_done, dut.irq_error, dut.irq_desc, dut.plane_reset,
                        dut.rd_abort, dut.layer.act_beats, dut.layer.quant_beats,
                        dut.layer.lut_beats, dut.busy, dut.wr_abort)
                st["now"] += 1
                st["irq_done"] += irq_d
                st["irq_error"] += irq_e
                st["irq_desc"] += irq_desc
                st["plane_reset"] += prst
                st["rd_abort"] += rab
                st["abort_trace"].append((prst, rab, wab, busy))
                if clear:
                    st["clear_at"].append(st["now"])
                    if not layers or layers[-1]:
                        layers.append([])
                    markers, nodes = 0, [None] * T
                for t in range(T):
                    if nstart >> t & 1:
                        if not layers:
                            st["starts_before_clear"] += 1
                            layers.append([])
                        layers[-1].append(("start", t, nrows, nrb, ncg0, ncgs))
                        nodes[t] = {"data": b"", "acts": 0, "ctrl": 0, "done": False}
                        ctx.set(dut.node_image_done[t], 0)
                if iv and ir:
                    ftype = FlitType(itype)
                    word = idata & ((1 << 8 * beat) - 1)
                    st["flit_at"].append((st["now"], ftype, idest))
                    if imcast:
                        layers[-1].append((ftype, "mcast", word))
                        for t in range(T):
                            if imask >> (t + 1) & 1:
                                assert nodes[t] is not None, f"mcast to node {t + 1} not started"
                                if ftype == FlitType.DATA:      # a split's one body
                                    nodes[t]["data"] += word.to_bytes(beat, "little")
                                else:
                                    nodes[t]["acts" if ftype == FlitType.ACTS else "ctrl"] += 1
                    else:
                        layers[-1].append((ftype, idest, word))
                        assert 1 <= idest <= T and nodes[idest - 1] is not None, idest
                        nodes[idest - 1]["data"] += word.to_bytes(beat, "little")
                for t, nd in enumerate(nodes):      # a node is finished once it has everything
                    if nd is None or nd["done"] or len(nd["data"]) < 32:
                        continue
                    total = struct.unpack_from("<I", nd["data"], 28)[0]
                    if (len(nd["data"]) >= total and nd["acts"] >= act_b
                            and nd["ctrl"] >= q_b + l_b):
                        nd["done"] = True
                        markers += 1
                        ctx.set(dut.node_image_done[t], 1)
                        ctx.set(dut.node_image_code[t], 0)
                ctx.set(dut.rw_markers, markers)
                if not busy and (ctx.get(dut.done) or ctx.get(dut.error)):
                    break
            else:
                pytest.fail(f"seed {seed}: sequencer still busy after {max_cycles} cycles")
        st.update(done=ctx.get(dut.done), error=ctx.get(dut.error),
                  code=ctx.get(dut.error_code), addr=ctx.get(dut.error_addr),
                  index=ctx.get(dut.desc_index), busy=ctx.get(dut.busy))
        st["end"] = True

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(dma, background=True)
    sim.add_testbench(bench)
    sim.run()
    return layers, st


def _compare(got, exp, what, seed):
    assert len(got) == len(exp) and got == exp, (
        f"seed {seed}: {what}: {len(got)} events, expected {len(exp)}; first difference at "
        f"{next((i for i, (g, e) in enumerate(zip(got, exp)) if g != e), min(len(got), len(exp)))}"
        f": got {got[:3]}..., expected {exp[:3]}...")


@pytest.mark.parametrize("cfg", [TINY, TINY2], ids=["tiles1", "tiles2"])
def test_valid_table_dispatches_every_layer(cfg, rng, seed):
    """A valid 3-layer table (random ops, formats, REQUANT / LUT / identity table): every
    layer's starts and flits, in order and bit-exact from memory; then done, OK, irq_done once
    and one irq_desc per IRQ descriptor.

    Catches e.g.: the identity table not being ``i ^ 0x80`` (planted: ``^ 0x7F``), the quant
    read length rounded wrongly, bodies sent before the activations, a wrong unicast dest
    (``t`` instead of ``t + 1``), ``LAYER_DONE`` not advancing ``idx`` (a layer runs twice).
    """
    job = _job(rng, cfg, 3, irq_every=2)
    layers, st = _run(cfg, job, seed=seed)
    assert st["starts_before_clear"] == 0
    assert len(layers) == job.count, f"seed {seed}: {len(layers)} layers, expected {job.count}"
    for i in range(job.count):
        _compare(layers[i], _expected_layer(job, cfg, i), f"layer {i}", seed)
    assert (st["done"], st["error"], st["code"], st["index"]) == (1, 0, 0, job.count), \
        f"seed {seed}: {st}"
    assert st["irq_done"] == 1 and st["irq_error"] == 0 and st["plane_reset"] == 0, st
    assert st["irq_desc"] == 2, f"seed {seed}: IRQ flag on descriptors 0 and 2, {st}"


@pytest.mark.parametrize("cfg", [TINY, TINY2], ids=["tiles1", "tiles2"])
def test_tables_the_tiles_hold_are_not_sent_again(cfg, rng, seed):
    """Tables kept (docs/accelerator.md): in a table of LUT at A, LUT at A again, LUT at B,
    identity, raw accumulators, identity again, LUT at A, the tables of the second and the
    sixth layer are not sent (the raw layer keeps what the tiles hold), every other one is
    (B is another address; the identity table replaced B; A was replaced); the records are
    always sent.  The table runs twice: the second start sends layer 0's table again
    (forgotten at every start).

    Catches e.g.: `held` not cleared at start (planted: the second run sends no table for
    layer 0), the address compare ignored (B kept), a raw layer forgetting the held table."""
    kinds = [(True, "relu"), (True, "relu"), (True, "relu"), (True, None), (False, None),
             (True, None), (True, "relu")]

    def every_tile(r, f):       # rows for every tile (else the table stays in a few)
        while True:
            L = random_layer(rng, cfg, op=str(rng.choice(["matmul", "conv2d"])),
                             fmt=str(rng.choice(FMTS)), requant=r, lut=f, max_dim=8)
            if L.get("m", L.get("kout")) >= cfg.tiles:
                return L

    layers = [every_tile(r, f) for r, f in kinds]
    job = build_job(rng, cfg, layers)
    a = unpack_descriptor(_desc_raw(job, 0)).lut
    for i in (1, 6):
        _patch_desc(job, i, lut=a)
    # B: any other 256 bytes of the window (the job builder stores one copy of a table)
    b = _patch_desc(job, 2, lut=unpack_descriptor(_desc_raw(job, 2)).weights).lut
    assert b != a and validate_descriptor(unpack_descriptor(_desc_raw(job, 2)), cfg,
                                          window_bytes=job.limit - job.base) == ErrorCode.OK
    got, st = _run(cfg, job, seed=seed, runs=2)
    assert len(got) == 2 * job.count, f"seed {seed}: {len(got)} layers"
    beat = cfg.axi_bytes
    for r in range(2):
        for i in range(job.count):
            exp = _expected_layer(job, cfg, i)
            _compare(got[r * job.count + i], exp, f"run {r}, layer {i}", seed)
            d = unpack_descriptor(_desc_raw(job, i))
            ctrl = sum(1 for e in exp if e[0] == FlitType.CTRL)
            records = -(-d.m * 16 // beat) if d.flags & Flags.REQUANT else 0
            table = 256 // beat if i in (0, 2, 3, 6) else 0
            assert ctrl == records + table, f"seed {seed}: layer {i}: {ctrl} CTRL flits"
    assert (st["done"], st["error"]) == (1, 0), f"seed {seed}: {st}"


def test_a_table_some_tiles_missed_is_sent_again(rng, seed):
    """Two tiles; layer 0 (LUT at A) starts one of them, layer 1 (LUT at A) both: the table
    is sent again (the tile layer 0 did not start holds no table), and a layer 2 at A is
    kept.  Catches `held` set whatever tiles were started (planted: ``held.eq(1)``)."""
    cfg = TINY2
    for _ in range(200):
        layers = [random_layer(rng, cfg, op="matmul", fmt=str(rng.choice(FMTS)),
                               requant=True, lut="relu", max_dim=8) for _ in range(3)]
        layers[0]["m"] = 1
        job = build_job(rng, cfg, layers)
        d = [unpack_descriptor(_desc_raw(job, i)) for i in range(3)]
        if (_tiles_started(job, cfg, d[0]) == 1
                and all(_tiles_started(job, cfg, x) == 2 for x in d[1:])):
            break
    else:
        raise AssertionError(f"seed {seed}: no job with one tile in layer 0 and two after "
                             "it in 200 draws")
    a = d[0].lut
    for i in (1, 2):
        _patch_desc(job, i, lut=a)
    got, st = _run(cfg, job, seed=seed)
    beat = cfg.axi_bytes
    for i in range(3):
        exp = _expected_layer(job, cfg, i)
        _compare(got[i], exp, f"layer {i}", seed)
        ctrl = sum(1 for e in exp if e[0] == FlitType.CTRL)
        table = 256 // beat if i < 2 else 0
        assert ctrl == -(-d[i].m * 16 // beat) + table, f"seed {seed}: layer {i}: {ctrl}"
    assert (st["done"], st["error"]) == (1, 0), f"seed {seed}: {st}"


MUTATIONS = [dict(magic=0), dict(magic=0x444D5054), dict(opcode=2), dict(opcode=255),
             dict(format=4), dict(flags=0x10), dict(flags=Flags.LUT), dict(m=0),
             dict(acts=3)]


@pytest.mark.parametrize("mut", MUTATIONS, ids=lambda m: "-".join(f"{k}={v}" for k, v in m.items()))
def test_bad_descriptor_stops_with_golden_code(mut, rng, seed):
    """Descriptor ``j`` of 3 is malformed: layers before it run in full, nothing of layer ``j``
    is dispatched (no start, no flit), and the run ends with error, golden's code, error_addr =
    the descriptor's address, desc_index = ``j`` and one irq_error.

    Catches e.g.: the checker's code ignored (planted: ``with m.If(chk.code != 0)`` ->
    ``with m.If(0)``: layer ``j`` gets dispatched), error_addr = ``img`` instead of
    ``desc_addr``, or the later layers still running after the error.
    """
    cfg = TINY
    job = _job(rng, cfg, 3)
    j = int(rng.integers(0, 3))
    d = _patch_desc(job, j, **mut)
    exp = validate_descriptor(d, cfg, window_bytes=job.limit - job.base)
    assert exp != ErrorCode.OK
    layers, st = _run(cfg, job, seed=seed)
    # the CHECK state of the bad descriptor still pulses rw_clear (an empty event list)
    assert len(layers) in (j, j + 1) and layers[j:] in ([], [[]]), \
        f"seed {seed}: bad descriptor {j}: {len(layers)} layers, last {layers[-1][:4]}"
    for i in range(j):
        _compare(layers[i], _expected_layer(job, cfg, i), f"layer {i}", seed)
    assert (st["done"], st["error"], st["busy"]) == (0, 1, 0), f"seed {seed}: {st}"
    assert st["code"] == exp, f"seed {seed}: {d}: expected {exp!r}, got {ErrorCode(st['code'])!r}"
    assert st["addr"] == job.desc_base + DESC_BYTES * j and st["index"] == j, f"seed {seed}: {st}"
    assert st["irq_error"] == 1 and st["irq_done"] == 0 and st["plane_reset"] >= 1, st
    _check_abort_contract(st["abort_trace"], seed)


def _check_abort_contract(trace, seed):
    """The plane sees ``plane_reset`` up to PLANE_RESET_DELAY cycles late (a registered copy in
    the accelerator): the sequencer aborts both DMAs for the first PLANE_RESET_DELAY + 1 cycles
    of the reset (so no command the still-running plane presents is taken), and stays busy for
    PLANE_RESET_DELAY cycles after its last reset cycle (the plane is out of reset before the
    sequencer is idle)."""
    first = next(i for i, t in enumerate(trace) if t[0])
    last = max(i for i, t in enumerate(trace) if t[0])
    assert all(t[0] for t in trace[first:last + 1]), f"seed {seed}: plane_reset has a gap"
    for i in range(first, first + PLANE_RESET_DELAY + 1):
        assert trace[i][0] and trace[i][1] and trace[i][2], \
            f"seed {seed}: cycle {i - first} of the abort: (plane, rd_abort, wr_abort, busy) " \
            f"= {trace[i]}"
    for i in range(last + 1, last + 1 + PLANE_RESET_DELAY):
        assert trace[i][3], f"seed {seed}: idle {i - last} cycle(s) after the plane reset"


HEADER_MUTATIONS = [  # (byte offset, bytes) in the 32-byte image header
    (0, b"SPMX"),               # magic
    (4, b"\x07"),               # format code unknown
    (7, b"\x01"),               # reserved byte
    (8, b"\0\0\0\0"),           # rows = 0
    (28, None),                 # total + 8: not a multiple of 32
]


@pytest.mark.parametrize("off,patch", HEADER_MUTATIONS, ids=["magic", "format", "reserved",
                                                              "rows0", "total"])
def test_bad_image_header_stops_with_golden_code(off, patch, rng, seed):
    """The header of one tile's weight image is broken: the hardware reports golden's
    `parse_weights` code at that image's address; earlier tiles of the layer were started and
    sent their headers, the broken tile is never started and nothing else of the layer goes out.

    Catches e.g.: a partial magic compare (planted: ``hb.magic[:16]`` only: "SPMX" passes),
    ``error_addr`` = the body address, or the node started before the check.
    """
    cfg = TINY2
    job = _job(rng, cfg, 2)
    j = int(rng.integers(0, 2))
    d = unpack_descriptor(_desc_raw(job, j))
    imgs = _images(job, d)
    t = int(rng.integers(0, len(imgs)))
    o, total = imgs[t][0], imgs[t][1]
    exp_broken = _expected_layer(job, cfg, j, upto_tile=t)      # before the patch
    if patch is None:
        patch = struct.pack("<I", total + 8)
    job.image[o + off:o + off + len(patch)] = patch
    with pytest.raises(FormatError) as e:
        parse_weights(bytes(job.image[o:o + total]))
    exp = ErrorCode(int(e.value.code))
    layers, st = _run(cfg, job, seed=seed)
    for i in range(j):
        _compare(layers[i], _expected_layer(job, cfg, i), f"layer {i}", seed)
    _compare(layers[j] if len(layers) > j else [], exp_broken, f"broken layer {j} (tile {t})",
             seed)
    assert len(layers) <= j + 1
    assert (st["done"], st["error"]) == (0, 1), f"seed {seed}: {st}"
    assert st["code"] == exp, f"seed {seed}: expected {exp!r}, got {ErrorCode(st['code'])!r}"
    assert st["addr"] == job.base + o and st["index"] == j, f"seed {seed}: {st} image at {o}"
    assert st["irq_error"] == 1


@pytest.mark.parametrize("case", ["count0", "misaligned", "below_window", "past_limit",
                                  "last_fits"])
def test_table_registers(case, rng, seed):
    """The table registers are checked first (golden `validate_table`): a bad table issues no
    DMA command at all, error_addr = desc_base.  ``last_fits``: a table ending exactly at
    mem_limit is accepted (off-by-one edge of the bound; planted ``end >= mem_limit`` fails).
    """
    cfg = TINY
    job = _job(rng, cfg, 1)
    desc_base, count, limit = job.desc_base, job.count, job.limit
    if case == "count0":
        count = 0
    elif case == "misaligned":
        desc_base += 4
    elif case == "below_window":
        desc_base = job.base - 64
    elif case == "past_limit":
        count = (limit - desc_base) // DESC_BYTES + 1
    else:   # a copy of the one descriptor in the last 64 bytes of the window
        desc_base = job.limit
        job.image.extend(_desc_raw(job, 0))
        limit = job.limit
    exp = validate_table(desc_base, count, mem_base=job.base, mem_limit=limit,
                         axi_bytes=cfg.axi_bytes)
    layers, st = _run(cfg, job, seed=seed, desc_base=desc_base, count=count, limit=limit)
    if case == "last_fits":
        assert exp == ErrorCode.OK
        assert (st["done"], st["error"]) == (1, 0), f"seed {seed}: {st}"
        job.desc_base = desc_base
        _compare(layers[0], _expected_layer(job, cfg, 0), "layer 0", seed)
        return
    assert exp != ErrorCode.OK
    assert st["cmds"] == [] and layers == [], f"seed {seed}: {st['cmds']} {layers}"
    assert (st["done"], st["error"], st["code"], st["addr"]) == (0, 1, exp, desc_base), \
        f"seed {seed}: expected {exp!r}: {st}"


@pytest.mark.parametrize("groups", [5, 6], ids=["partial-last-share", "even-shares"])
def test_column_split_dispatch(groups, rng, seed):
    """Layers with their columns split over three tiles (spec 8.1): one header read, every
    tile started with its rows = M and its column groups ``(cg0, cgs)``, then the header
    multicast to them (the last share short
    when the groups do not divide evenly), one body multicast; bit-exact from memory."""
    cfg = TINY.replace(tiles=3)
    layers = []
    for _ in range(3):
        L = random_layer(rng, cfg, op="matmul", fmt=str(rng.choice(FMTS)), max_dim=8)
        L["n"] = groups * cfg.cols      # 2 groups per tile, the last gets 1 or 2
        layers.append(L)
    job = build_job(rng, cfg, layers, split="cols")
    splits = [unpack_descriptor(_desc_raw(job, i)).col_split for i in range(job.count)]
    assert all(splits), f"seed {seed}: not every layer split by columns: {splits}"
    layers_ev, st = _run(cfg, job, seed=seed)
    assert len(layers_ev) == job.count, f"seed {seed}: {len(layers_ev)} layers"
    for i in range(job.count):
        exp = _expected_layer(job, cfg, i)
        assert [e for e in exp if e[0] == "start"][-1][5] == groups - 4
        _compare(layers_ev[i], exp, f"layer {i}", seed)
    assert (st["done"], st["error"], st["code"]) == (1, 0, 0), f"seed {seed}: {st}"


@pytest.mark.parametrize("past", [0, 1], ids=["header-at-limit", "header-past-limit"])
def test_header_prefetch_stays_in_the_window(past, rng, seed):
    """Tile 1's weight image starts 32 bytes (``past`` = 1: 31 bytes) before ``mem_limit``, so
    its header just fits (just does not), and its body never does: the layer stops with
    OUT_OF_WINDOW at that image either way, after tile 0 was started and sent its header.  At
    the bound the header is prefetched while tile 0's is checked (a read ending exactly at
    ``mem_limit``); one byte past it, it is never read.  The DMA stand-in asserts that no read
    of the run leaves the window.

    Catches e.g.: the prefetch's window compare off by one (planted ``<`` for ``<=``: the
    header at the bound goes through W_START instead, no prefetch read), or no window compare
    (a read past ``mem_limit``)."""
    cfg = TINY2
    for _ in range(50):         # a layer with two tile images
        job = _job(rng, cfg, 1)
        d = unpack_descriptor(_desc_raw(job, 0))
        imgs = _images(job, d)
        if len(imgs) == 2:
            break
    assert len(imgs) == 2, f"seed {seed}: no two-image layer drawn"
    # the images moved to the end of the memory image (everything else stays inside)
    o0, tot0 = imgs[0][0], imgs[0][1]
    size = sum(t for _, t, _, _ in imgs)
    new = -(-len(job.image) // 64) * 64
    job.image.extend(bytes(new - len(job.image)))
    job.image.extend(bytes(job.image[o0:o0 + size]))
    _patch_desc(job, 0, weights=new)
    img1 = job.base + new + tot0
    limit = img1 + 32 - past
    assert validate_table(job.desc_base, job.count, mem_base=job.base, mem_limit=limit,
                          axi_bytes=cfg.axi_bytes) == ErrorCode.OK
    assert validate_descriptor(unpack_descriptor(_desc_raw(job, 0)), cfg,
                               window_bytes=limit - job.base) == ErrorCode.OK
    exp = _expected_layer(job, cfg, 0, upto_tile=1)
    layers, st = _run(cfg, job, seed=seed, limit=limit)
    _compare(layers[0], exp, "layer 0 (tile 0 only)", seed)
    assert (st["done"], st["error"], st["code"], st["addr"]) == \
        (0, 1, ErrorCode.OUT_OF_WINDOW, img1), f"seed {seed}: {st}"
    assert ((img1, 32) in st["cmds"]) == (past == 0), f"seed {seed}: {st['cmds']}"
    if not past:    # a prefetch: read before tile 0's header has gone out
        at = st["cmd_at"][st["cmds"].index((img1, 32))]
        hdr0 = [c for c, ft, dest in st["flit_at"] if ft == FlitType.DATA and dest == 1]
        assert len(hdr0) == 32 // cfg.axi_bytes and at < hdr0[-1], \
            f"seed {seed}: tile 1's header read at cycle {at}, tile 0's header sent {hdr0}"


@pytest.mark.parametrize("tile", [0, 1], ids=["first-header", "second-header"])
def test_failing_header_read_stops_its_own_layer(tile, rng, seed):
    """The read of layer 1's tile-``tile`` image header answers SLVERR.  Both headers are
    prefetched (tile 0's during layer 0's wait, once descriptor 1 is read and checked; tile 1's
    while tile 0's is checked and sent), yet layer 0 runs in full and the error is layer 1's:
    AXI_SLVERR at the header's address, ``desc_index`` 1, tile ``tile`` never started.

    Catches e.g.: a failed prefetch taken as a header (planted: ``hpf.failed`` ignored in
    W_HEADER: the layer waits for a header that never comes), or the error reported in
    layer 0's wait (layer 0 cut short)."""
    cfg = TINY2
    for _ in range(50):
        job = _job(rng, cfg, 2)
        d = unpack_descriptor(_desc_raw(job, 1))
        imgs = _images(job, d)
        if len(imgs) == 2 and not d.col_split:
            break
    assert len(imgs) == 2, f"seed {seed}: no two-image layer 1 drawn"
    addr = job.base + imgs[tile][0]
    layers, st = _run(cfg, job, seed=seed, bad_reads={addr: int(ErrorCode.AXI_SLVERR)})
    _compare(layers[0], _expected_layer(job, cfg, 0), "layer 0", seed)
    _compare(layers[1], _expected_layer(job, cfg, 1, upto_tile=tile), "layer 1", seed)
    assert (st["done"], st["error"], st["code"], st["addr"], st["index"]) == \
        (0, 1, ErrorCode.AXI_SLVERR, addr, 1), f"seed {seed}: {st}"
    assert st["irq_error"] == 1
    # tile 0's header read was prefetched: issued at the latest with layer 1's CHECK (the read
    # in W_HEADER would come 3 cycles after it)
    at = st["cmd_at"][st["cmds"].index((job.base + imgs[0][0], 32))]
    clear1 = st["clear_at"][-1]
    assert at <= clear1 + 1, f"seed {seed}: header read at {at}, layer 1's CHECK at {clear1}"
