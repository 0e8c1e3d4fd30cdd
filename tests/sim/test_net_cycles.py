"""The descriptor cycle model (golden/net_cycles.py, host/cycles.py) against the accelerator
RTL: eleven small networks in one descriptor table (four with their columns split across the
tiles, one with residual adds run as matmuls), one Verilator run of the default build;
every descriptor's model cycles within 5 % of the cycles the sequencer spent on it, the
total within 5 % of ``BUSY_CYCLES``.  Measured on more networks:
docs/reports/network_model.md (bench/network_model.py)."""

import numpy as np
import pytest
from sparsemac.golden.descriptors import Flags
from sparsemac.host import compile_network, network_from_dict
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.sim.rtl_engine import rtl_job

TOLERANCE = 0.05
#: Cycles of the RTL engine's count for descriptor 0 before ``CONTROL.start`` (the driver
#: programs the registers; sim/tb/network.py counts from its first sample) and the cycles
#: its last descriptor's count goes on after the sequencer's end (interrupt, STATUS read):
#: testbench time, not accelerator time (sum of the counts - BUSY_CYCLES = both).
HARNESS_BEFORE = 21

NETWORKS = [
    # a conv with every table (requant + activation table), then an int32 matmul
    {"name": "conv_raw", "seed": 11, "input": {"shape": [2, 6, 6]},
     "layers": [{"op": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1,
                 "format": "nm", "nm": "2:4", "activation": "relu"},
                {"op": "matmul", "out_features": 10, "format": "bitmap", "density": 0.5,
                 "requant": False}]},
    # write-back bound: 8 x 64 int8 outputs from a 9-tap conv (tiles wait for the writes)
    {"name": "writes", "seed": 12, "input": {"shape": [1, 8, 8]},
     "layers": [{"op": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1,
                 "format": "dense", "activation": "relu"}]},
    # the bodies of tiles 2 and 3 wait behind tiles 0 and 1's results on the ring
    {"name": "ring", "seed": 13, "input": {"shape": [64, 8]},
     "layers": [{"op": "matmul", "out_features": 128, "format": "nm", "nm": "1:4",
                 "activation": "relu"}]},
    # weight-bound matrix-vector product, the identity table
    {"name": "mv", "seed": 14, "input": {"shape": [64, 1]},
     "layers": [{"op": "matmul", "out_features": 64, "format": "nm", "nm": "2:4"}]},
    # depthwise 3x3 (groups = C): the block-diagonal conv, bitmap skips the zeros
    {"name": "depthwise", "seed": 15, "input": {"shape": [8, 6, 6]},
     "layers": [{"op": "conv2d", "groups": 8, "kernel": 3, "padding": 1, "format": "bitmap",
                 "prune": "none", "activation": "relu"}]},
    # a short layer, then a strided conv whose prefetch (read, ~110 checker cycles) outlasts
    # the first layer's wait: the rest is the second descriptor's
    {"name": "short_wait", "seed": 17, "input": {"shape": [1, 3, 3]},
     "layers": [{"op": "conv2d", "out_channels": 1, "kernel": 1, "format": "dense"},
                {"op": "conv2d", "out_channels": 2, "kernel": 3, "padding": 1, "stride": 2,
                 "format": "dense"}]},
    # column splits (docs/spec.md section 8.1): a conv of few output channels whose gather
    # is shared out, a matmul on three of the four tiles, an int32 conv whose last tile gets
    # a partial share, a bitmap conv (its lanes wait for the whole gather; its 4-byte mask
    # rows hold every mask word a cycle in each tile's ImageChecker, the multicast body too)
    {"name": "cols_conv", "seed": 18, "input": {"shape": [3, 12, 12]},
     "layers": [{"op": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1,
                 "format": "nm", "nm": "2:4", "activation": "relu"}]},
    {"name": "cols_matmul", "seed": 19, "input": {"shape": [32, 24]},
     "layers": [{"op": "matmul", "out_features": 12, "format": "nm", "nm": "2:4"}]},
    {"name": "cols_raw", "seed": 20, "input": {"shape": [2, 7, 7]},
     "layers": [{"op": "conv2d", "out_channels": 4, "kernel": 2, "format": "dense",
                 "requant": False}]},
    {"name": "cols_bitmap", "seed": 21, "input": {"shape": [3, 12, 12]},
     "layers": [{"op": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1,
                 "format": "bitmap", "density": 0.5, "activation": "relu"}]},
    # pools on the tiles (golden/net_pool.py): after a conv, a max pool (write-back bound), an
    # average pool counting its padding (gather bound), a global average pool
    {"name": "pools", "seed": 22, "input": {"shape": [4, 8, 8]},
     "layers": [{"op": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1,
                 "format": "dense", "activation": "relu"},
                {"op": "maxpool2d", "kernel": 2},
                {"op": "avgpool2d", "kernel": 3, "stride": 1, "padding": 1,
                 "count_include_pad": True},
                {"op": "global_avgpool"}]},
    # the same with planes that are not whole bus words (7x7, 3x3): the image multicast to
    # every tile instead of plane by plane (golden.net_pool.pool_unicast)
    {"name": "pools_multicast", "seed": 24, "input": {"shape": [3, 7, 7]},
     "layers": [{"op": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1,
                 "format": "dense", "activation": "relu"},
                {"op": "maxpool2d", "kernel": 2},
                {"op": "global_avgpool"}]},
    # residual adds on the hardware (host/add_matmul.py): matmuls over two tensors side by
    # side, 4 zero rows between them (H*W = 36), the network input as the first of the second
    {"name": "residual", "seed": 23, "input": {"shape": [4, 6, 6]},
     "layers": [{"name": "r0", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1,
                 "format": "dense", "activation": "relu"},
                {"name": "r1", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1,
                 "format": "nm", "nm": "2:4"},
                {"name": "s1", "op": "add", "inputs": ["r1", "r0"], "activation": "relu"},
                {"name": "s2", "op": "add", "inputs": ["network_input", "s1"]}]},
]
#: Networks whose layers are compiled with their columns split across the tiles.
COL_SPLIT = ("cols_conv", "cols_matmul", "cols_raw", "cols_bitmap")


def _compile(cfg):
    split = [("cols" if n["name"] in COL_SPLIT else "rows") for n in NETWORKS
             for _ in n["layers"]]
    # the tables read before the activations or (LATE_TABLES) after the bodies: every other
    # layer, so both orders run with every kind of layer (and a late layer's records are
    # checked against the early layer before it)
    tables = ["late" if i % 2 == 0 else "early" for i in range(len(split))]
    cn = compile_network([network_from_dict(n) for n in NETWORKS], cfg, split=split,
                         tables=tables)
    assert sum(cl.descriptor.col_split != 0 for cl in cn.layers) == len(COL_SPLIT)
    late = [bool(cl.descriptor.flags & Flags.LATE_TABLES) for cl in cn.layers
            if cl.descriptor.flags & Flags.REQUANT]
    assert sum(late) >= 5 and late.count(False) >= 5, late
    return cn


@pytest.fixture(scope="module")
def result():
    cfg = AcceleratorConfig.preset("default")
    cn = _compile(cfg)
    return cn, rtl_job(cn)


def _descriptor_cycles(res):
    """The RTL engine's per-descriptor counts without the testbench's cycles."""
    rtl = list(res.layer_cycles)
    harness = sum(rtl) - res.cycles
    assert HARNESS_BEFORE <= harness <= HARNESS_BEFORE + 20, (rtl, res.cycles)
    rtl[0] -= HARNESS_BEFORE
    rtl[-1] -= harness - HARNESS_BEFORE
    return rtl


def test_outputs_bit_exact(result):
    """Every layer's output read back from the RTL's memory equals golden's (the depthwise
    layer included)."""
    cn, res = result
    assert res.status == "OK", res.error
    for cl, got in zip(cn.layers, res.outputs, strict=True):
        assert np.array_equal(got, cl.expected.reshape(got.shape)), cl.spec.name


def test_model_within_5_percent_of_the_rtl_per_descriptor(result):
    cn, res = result
    assert res.status == "OK", res.error
    rtl = _descriptor_cycles(res)
    errs = []
    for i, (cl, r, m) in enumerate(zip(cn.layers, rtl, res.model_cycles, strict=True)):
        errs.append(f"descriptor {i} ({cl.spec.name} {cl.spec.fmt} {cl.descriptor.m}x"
                    f"{cl.descriptor.k}x{cl.descriptor.n}): RTL {r}, model {m}, "
                    f"{100 * (m - r) / r:+.1f} %")
    bad = [e for e, r, m in zip(errs, rtl, res.model_cycles, strict=True)
           if abs(m - r) > TOLERANCE * r]
    print("\n".join(["model vs RTL per descriptor:", *errs]))
    assert not bad, "\n".join(["more than 5 % off:", *bad, "all:", *errs])
    total = sum(res.model_cycles)
    assert abs(total - res.cycles) <= TOLERANCE * res.cycles, (total, res.cycles, errs)


def test_layer_cycles_reports_the_phases():
    """The model engine's report per descriptor (no RTL): the four phases add up to
    ``cycles``, every output beat is written at least once, the estimate is above the
    roofline and above the slowest tile alone."""
    from sparsemac.host import layer_cycles, run_model

    cfg = AcceleratorConfig.preset("default")
    cn = _compile(cfg)
    run = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                    cfg=cfg)
    assert run.ok, run.message
    for lr, cl in zip(run.layers, cn.layers, strict=True):
        c = layer_cycles(lr, cfg)
        parts = ("fixed_cycles", "load_cycles", "compute_cycles", "writeback_cycles")
        assert sum(c[k] for k in parts) == c["cycles"] == sum(c["phases"].values()), c
        assert c["limited_by"] in ("fixed", "load", "compute", "writeback")
        beats = -(-cl.expected.size * (1 if cl.spec.requant else 4) // cfg.axi_bytes)
        assert c["writes"] >= beats, (c["writes"], beats)
        assert c["cycles"] > max(c["roofline_cycles"], c["tile_cycles"]), c
