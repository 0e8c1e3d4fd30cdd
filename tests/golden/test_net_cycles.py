"""The descriptor cycle model (golden/net_cycles.py): the sequencer's fixed costs counted on the
RTL, the phase rules (serial bodies, 256-cycle tables, single-beat writes) and its argument
checks.  Model against the RTL: tests/sim/test_net_cycles.py."""

from types import SimpleNamespace

import numpy as np
import pytest
from sparsemac.golden import pack_weights, prune
from sparsemac.golden.descriptors import Flags, conv2d_descriptor, matmul_descriptor
from sparsemac.golden.formats import HEADER_BYTES
from sparsemac.golden.net_cycles import (
    HOP_CYCLES,
    PHASES,
    READ_LATENCY,
    READ_TAIL,
    WRITE_RESPONSE,
    checker_cycles,
    checker_holds,
    descriptor_cycles,
)
from sparsemac.golden.ops import im2col
from sparsemac.golden.tiling import tile_row_split

CFG = SimpleNamespace(rows=4, cols=4, tiles=4, axi_data_width=64, mul_pipeline=2,
                      ring_payload_width=64, ring_fifo_depth=4, acc_width=32, out_lanes=4)
REQ_LUT = Flags.REQUANT | Flags.LUT


def _matmul(rng, m, k, n, fmt="dense", *, cfg=CFG, flags=REQ_LUT, density=0.5, nm=(2, 4),
            x_density=1.0):
    w = rng.integers(-127, 128, size=(m, k)).astype(np.int8)
    if fmt == "nm":
        w, _ = prune(w, "nm", nm=nm)
    elif fmt != "dense":
        w, _ = prune(w, "block" if fmt == "block" else "unstructured", density=density)
    x = rng.integers(-127, 128, size=(k, n)).astype(np.int8)
    x[rng.random((k, n)) >= x_density] = 0
    slices = [pack_weights(w[a:b], fmt, group_size=16, block_size=8, nm=nm)
              for a, b in tile_row_split(m, cfg.tiles)]
    d = matmul_descriptor(m=m, k=k, n=n, fmt=fmt, flags=flags, nm=nm)
    return d, slices, x


# DCHECK cycles of these descriptors on the accelerator RTL (default config, the sequencer's
# state sampled every cycle): conv2d (c, h, w, kout, k, stride, pad), matmul (m, k, n).  Since
# session 25 a stride of 1, 2, 4 or 8 is a shift in the DescChecker: 50 cycles fewer per conv
# (re-measured on the DescChecker, whose start-to-valid is DCHECK + 3:
# tests/hw/test_desc_checker.py::test_check_cycles_follow_the_model); a stride of 3 divides
RTL_DCHECK = [
    (("conv", 3, 12, 12, 8, 3, 1, 1), 71), (("conv", 8, 12, 12, 16, 3, 2, 1), 64),
    (("conv", 16, 6, 6, 8, 3, 2, 0), 52), (("conv", 1, 8, 8, 8, 3, 1, 1), 68),
    (("conv", 8, 8, 8, 16, 3, 2, 1), 61), (("conv", 4, 8, 8, 12, 3, 1, 1), 68),
    (("conv", 3, 12, 12, 8, 3, 3, 1), 111),
    (("mm", 16, 16, 36), 47), (("mm", 10, 32, 1), 31), (("mm", 128, 64, 8), 39),
    (("mm", 64, 64, 16), 43), (("mm", 16, 32, 4), 35), (("mm", 24, 48, 20), 43),
]


@pytest.mark.parametrize("shape,cycles", RTL_DCHECK, ids=[str(s) for s, _ in RTL_DCHECK])
def test_checker_cycles_as_measured_on_the_rtl(shape, cycles):
    if shape[0] == "conv":
        _, c, h, w, kout, k, s, p = shape
        d = conv2d_descriptor(c=c, h=h, w=w, kout=kout, kh=k, kw=k, stride=(s, s), pad=(p, p))
    else:
        _, m, k, n = shape
        d = matmul_descriptor(m=m, k=k, n=n)
    assert checker_cycles(d, CFG) == cycles


def test_phases_add_up(rng):
    late = Flags.LATE_TABLES
    for fmt, flags in (("dense", REQ_LUT), ("nm", Flags.REQUANT), ("bitmap", 0),
                       ("block", REQ_LUT), ("dense", REQ_LUT | late),
                       ("nm", Flags.REQUANT | late), ("bitmap", REQ_LUT | late)):
        d, slices, x = _matmul(rng, int(rng.integers(1, 40)), int(rng.integers(1, 40)),
                               int(rng.integers(1, 12)), fmt, flags=flags)
        r = descriptor_cycles(d, slices, x, CFG)
        assert sum(r[p] for p in PHASES) == r["cycles"], r
        assert r["fixed_cycles"] + r["load_cycles"] + r["compute_cycles"] \
            + r["writeback_cycles"] == r["cycles"], r
        assert min(r["compute_cycles"], r["writeback_cycles"], r["writes"]) >= 0, r
        assert len(r["tiles"]) == len(slices) and len(r["stall_cycles"]) == len(slices)
        assert descriptor_cycles(d, slices, x, CFG, first=True)["cycles"] == r["cycles"] + 2


def test_bodies_stream_tile_after_tile(rng):
    """One body after the other on the one read port: a tile's weights are in one DMA command
    (READ_LATENCY + beats + READ_TAIL), two sequencer states and one ring hop after the
    previous tile's; each tile starts its im2col pass and its lanes once its own body is in.
    (Bitmap, which skips zero activations: since session 24 its lanes start with the gather,
    a row waiting for its column group's entries; K = 256: no result is on the ring while the
    later bodies stream.)"""
    d, slices, x = _matmul(rng, 16, 256, 8, "bitmap")
    r = descriptor_cycles(d, slices, x, CFG)
    loaded = [t["loaded"] for t in r["tiles"]]
    beats = [-(-(pw.nbytes - HEADER_BYTES) // 8) for pw in slices]
    for t in range(1, len(slices)):
        assert loaded[t] - loaded[t - 1] == \
            2 + READ_LATENCY + beats[t] + READ_TAIL + HOP_CYCLES, (t, loaded, beats)
    for t in r["tiles"]:            # the lanes start with the gather, not after it
        assert t["compute_start"] == t["loaded"], r["tiles"]
        # ... and finish after the last column group's entries are in (2 * 256 entries)
        assert t["compute_end"] - t["compute_start"] > 2 * 256, r["tiles"]


def test_results_of_earlier_tiles_slow_a_body(rng):
    """A matrix-vector product: tile 0 computes its 16 rows while body 2 streams, and its 16
    result flits and its end marker take cycles of the links the later bodies need: a body
    takes longer than its DMA command alone, by at most 17 cycles (the RTL
    check of whole descriptors: tests/sim/test_net_cycles.py)."""
    d, slices, x = _matmul(rng, 64, 64, 1, "nm")
    r = descriptor_cycles(d, slices, x, CFG)
    loaded = [t["loaded"] for t in r["tiles"]]
    base = 2 + READ_LATENCY + 128 + READ_TAIL + HOP_CYCLES
    gaps = [b - a for a, b in zip(loaded, loaded[1:])]
    assert all(base <= g <= base + 17 for g in gaps) and gaps[-1] > base, loaded


# Cycles from the LUT state to the ACTS state on the RTL (default build, 64- and 128-bit
# buses; the sequencer's state from a Verilator VCD of a one-layer job, 16 x 4 input):
# (bus width, M, LUT flag) -> cycles.  The table goes into every node a bus word per cycle.
RTL_TABLES = [((64, 8, True), 64), ((64, 16, True), 80), ((64, 10, False), 61),
              ((64, 128, True), 304), ((128, 8, True), 40), ((128, 16, True), 48),
              ((128, 10, False), 35), ((128, 64, True), 96)]


@pytest.mark.parametrize("key,cycles", RTL_TABLES, ids=[str(k) for k, _ in RTL_TABLES])
def test_tables_as_measured_on_the_rtl(rng, key, cycles):
    """The activation table reaches every node a bus word per cycle (256 / beat words), then
    the M requant records; the identity table has no read latency."""
    width, m, lut = key
    cfg = SimpleNamespace(**{**vars(CFG), "axi_data_width": width,
                             "ring_payload_width": max(64, width)})
    d, slices, x = _matmul(rng, m, 16, 4, cfg=cfg,
                           flags=REQ_LUT if lut else Flags.REQUANT)
    r = descriptor_cycles(d, slices, x, cfg)
    assert r["tables"] == cycles
    assert descriptor_cycles(d.replace(flags=0), slices, x, cfg)["tables"] == 1


def test_late_tables_follow_the_bodies(rng):
    """LATE_TABLES: the activations right after the headers, the bodies, then the tables:
    the same reads with one state more (BODIES once more, then LUT), and WAIT right after the
    records; the layer's other phases keep their lengths.  A bitmap layer of K = 256 gathers
    for 516 cycles after its body, so no result waits for the records: the layer is shorter
    by about what the tables cost before."""
    for key, cycles in RTL_TABLES[:3]:
        width, m, lut = key
        d, slices, x = _matmul(rng, m, 16, 4, flags=REQ_LUT if lut else Flags.REQUANT)
        early = descriptor_cycles(d, slices, x, CFG)
        late = descriptor_cycles(d.replace(flags=d.flags | Flags.LATE_TABLES), slices, x, CFG)
        assert late["tables"] >= cycles + 1 and early["tables"] == cycles, (early, late)
        assert (late["fetch_check"], late["headers"]) == (early["fetch_check"],
                                                          early["headers"])
    d, slices, x = _matmul(rng, 16, 256, 8, "bitmap")
    early = descriptor_cycles(d, slices, x, CFG)
    late = descriptor_cycles(d.replace(flags=d.flags | Flags.LATE_TABLES), slices, x, CFG)
    assert late["tables"] == early["tables"] + 1
    assert late["cycles"] <= early["cycles"] - early["tables"] + 8, (early, late)
    assert sum(late[p] for p in PHASES) == late["cycles"]


def test_a_result_buffer_lets_the_lanes_run_on(rng):
    """``result_buf_depth``: the node holds that many results between its tile and its output
    pipeline.  A compute-bound matmul with LATE_TABLES: without the buffer its lanes stop at
    their second result until the records are in; with 32 entries they run on, so the layer
    is shorter and its lanes stall less (every tile's 16 rows x 1 group fit).  A bad depth is
    refused with its name."""
    d, slices, x = _matmul(rng, 64, 64, 4, "dense")
    d = d.replace(flags=d.flags | Flags.LATE_TABLES)
    none = descriptor_cycles(d, slices, x, CFG)
    buf = descriptor_cycles(d, slices, x, SimpleNamespace(**{**vars(CFG),
                                                             "result_buf_depth": 32}))
    assert buf["cycles"] < none["cycles"], (buf, none)
    assert sum(buf["stall_cycles"]) < sum(none["stall_cycles"]), (buf, none)
    with pytest.raises(ValueError, match=r"cfg.result_buf_depth must be a non-negative int"):
        descriptor_cycles(d, slices, x, SimpleNamespace(**{**vars(CFG),
                                                           "result_buf_depth": -1}))


def test_descriptor_fetch_and_headers_scale_with_the_bus(rng):
    d, slices, x = _matmul(rng, 16, 16, 4)
    for width in (32, 64, 128):
        cfg = SimpleNamespace(**{**vars(CFG), "axi_data_width": width,
                                 "ring_payload_width": max(64, width)})
        r = descriptor_cycles(d, slices, x, cfg)
        beat = width // 8
        assert r["fetch_check"] == 2 + READ_LATENCY + 64 // beat + READ_TAIL \
            + checker_cycles(d, cfg) + 1
        hb = 32 // beat
        read = READ_LATENCY + hb + READ_TAIL
        # the first header: W_START, W_HEADER, RD_ISSUE, the read, HSTART, 4 cycles of
        # checks, HSEND, W_NEXT; each later one is prefetched: requested in cycle 2 after the
        # HSTART before (the second HCHECK cycle), its command in cycle 3, the read, one
        # check cycle, then ready; taken in H_NEXT (after HSTART, HCHECK, HSEND, W_NEXT) once
        # ready, HSTART the cycle after
        first = 3 + read + 1 + 4 + hb + 1
        later = max(1 + 4 + hb + 1, 2 + 1 + read + 1 + 1) + 1
        assert len(slices) > 1
        assert r["headers"] == first + (len(slices) - 1) * later
        assert later < first


def test_single_beat_writes_bound_a_large_output(rng):
    """Every output beat is one write, at most one a cycle, and with ``max_outstanding`` = 1
    one per response round trip (``WRITE_RESPONSE + 1`` cycles): a layer with many outputs
    and little compute then takes at least that long from its first body on, and its tiles
    wait for the writes."""
    d, slices, x = _matmul(rng, 64, 8, 64)
    beats = 64 * 64 // 8
    r = descriptor_cycles(d, slices, x, CFG)
    assert r["writes"] >= beats
    assert r["bodies"] + r["wait"] >= beats
    one = descriptor_cycles(d, slices, x, SimpleNamespace(**{**vars(CFG), "max_outstanding": 1}))
    assert one["writes"] >= beats
    assert one["bodies"] + one["wait"] >= beats * (WRITE_RESPONSE + 1)
    assert one["writeback_cycles"] > one["compute_cycles"]
    assert max(one["stall_cycles"]) > 0                      # the tiles waited for it
    assert one["cycles"] > r["cycles"]


def test_write_counts_of_simple_rows(rng):
    """One row per output beat, written left to right, is one write per beat; one byte is one
    (partial) write when the end marker flushes the lines; int32 results are 4x the beats."""
    cfg = SimpleNamespace(**{**vars(CFG), "tiles": 1})
    for n, flags, beats in ((8, REQ_LUT, 1), (1, REQ_LUT, 1), (16, 0, 8), (64, REQ_LUT, 8)):
        d, slices, x = _matmul(rng, 1, 12, n, cfg=cfg, flags=flags)
        assert descriptor_cycles(d, slices, x, cfg)["writes"] == beats, (n, flags)


def test_conv_reads_its_image(rng):
    x = rng.integers(-127, 128, size=(1, 3, 8, 8)).astype(np.int8)
    w = rng.integers(-127, 128, size=(6, 3, 3, 3)).astype(np.int8)
    cols, _ = im2col(x, 3, 3, (1, 1), (1, 1), (1, 1))
    d = conv2d_descriptor(c=3, h=8, w=8, kout=6, kh=3, kw=3, pad=(1, 1), flags=REQ_LUT)
    slices = [pack_weights(w.reshape(6, -1)[a:b], "dense") for a, b in tile_row_split(6, 4)]
    r = descriptor_cycles(d, slices, cols, CFG, act_bytes=x.size)
    # 192 image bytes, a bus word per cycle into every tile: the read's own time (ACTS state,
    # RD_ISSUE, latency, 24 beats, tail)
    from sparsemac.golden.net_cycles import READ_LATENCY, READ_TAIL
    assert r["acts"] == 2 + READ_LATENCY + 192 // (CFG.axi_data_width // 8) + READ_TAIL
    assert r["acts"] != descriptor_cycles(d, slices, cols, CFG)["acts"]   # im2col is 27 x 64


def test_bad_arguments(rng):
    d, slices, x = _matmul(rng, 8, 8, 2)
    with pytest.raises(TypeError, match=r"^slices must be a non-empty list of PackedWeights"):
        descriptor_cycles(d, [], x, CFG)
    with pytest.raises(ValueError, match=r"^X must be 2-D \(K, N\), not shape \(16,\)"):
        descriptor_cycles(d, slices, x.reshape(-1), CFG)
    with pytest.raises(ValueError, match=r"^cfg\.rows must be a positive int, not None"):
        descriptor_cycles(d, slices, x, SimpleNamespace(cols=4, tiles=4, axi_data_width=64))
    with pytest.raises(ValueError, match=r"^slices must be at most cfg\.tiles \(1\), not 4"):
        descriptor_cycles(d, slices, x, SimpleNamespace(**{**vars(CFG), "tiles": 1}))
    with pytest.raises(ValueError, match=r"^cfg\.ring_payload_width must be at least 64 for the "
                       r"accelerator, not 32"):
        descriptor_cycles(d, slices, x, SimpleNamespace(**{**vars(CFG),
                                                           "ring_payload_width": 32}))
    with pytest.raises(ValueError, match=r"^cfg\.axi_data_width must be a multiple of 8"):
        descriptor_cycles(d, slices, x, SimpleNamespace(**{**vars(CFG), "axi_data_width": 60}))


def test_lane_tokens_order_and_tile_finish(rng):
    """The per-row token times (`golden.tile_model.lane_tokens`, the lane recurrence the network
    model and the tile model share): one per row item, in order, and the slowest lane's last
    token bounds the tile model's compute cycles."""
    from sparsemac.golden import tile_model

    cfg = SimpleNamespace(rows=3, cols=2, tiles=1, axi_data_width=64, mul_pipeline=2)
    for fmt in ("dense", "nm", "bitmap", "block"):
        d, slices, x = _matmul(rng, 11, 37, 5, fmt, cfg=cfg, x_density=0.6)
        last = []
        for items in tile_model.lane_records(slices[0], x, cfg, act_skip=True):
            toks = tile_model.lane_tokens(items, 1)
            assert len(toks) == len(items) and toks == sorted(toks)
            last.append(toks[-1] if toks else 0)
        assert max(last) <= tile_model.tile_cycles(slices[0], x, cfg, act_skip=True)["cycles"]


def test_checker_holds_a_word_per_extra_row_end(rng):
    """The ImageChecker finishes one row end per cycle (hw/tile/row_scan.py): bitmap masks of
    K = 27 (4 bytes a row) put two row ends in every 8-byte word, each mask word held one
    cycle; rows of 8 bytes or more, dense and nm with ``K % M == 0`` hold nothing.  A
    multicast body (column split) waits for every tile's holds: its bodies phase grows by
    them."""
    w = rng.integers(-127, 128, size=(8, 27)).astype(np.int8)
    w, _ = prune(w, "unstructured", density=0.5)
    pw = pack_weights(w, "bitmap", group_size=16)
    holds = checker_holds(pw, 8)
    first = (pw.sec_b - HEADER_BYTES) // 8
    assert holds[first:first + 4] == [1, 1, 1, 1] and sum(holds) == 4
    assert len(holds) == -(-(pw.nbytes - HEADER_BYTES) // 8)
    wide = pack_weights(np.vstack([w, w])[:, :24].repeat(3, axis=1), "bitmap", group_size=16)
    assert sum(checker_holds(wide, 8)) == 0              # 72 columns: 10-byte mask rows
    assert sum(checker_holds(pack_weights(w, "dense"), 8)) == 0
    nm = pack_weights(prune(w[:, :24], "nm", nm=(2, 4))[0], "nm", nm=(2, 4))
    assert sum(checker_holds(nm, 8)) == 0
    d = conv2d_descriptor(c=3, h=12, w=12, kout=8, kh=3, kw=3, pad=(1, 1), fmt="bitmap",
                          flags=REQ_LUT)
    cols, _ = im2col(rng.integers(-127, 128, size=(1, 3, 12, 12)).astype(np.int8), 3, 3,
                     (1, 1), (1, 1), (1, 1))
    split = descriptor_cycles(d.replace(col_split=36), [pw], cols, CFG, act_bytes=3 * 144)
    body = -(-(pw.nbytes - HEADER_BYTES) // 8)
    assert split["bodies"] == 2 + READ_LATENCY + body + READ_TAIL + 1 + 4
