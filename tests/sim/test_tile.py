"""Compute tile on Verilator (cocotb): matmul + conv2d, every format, edges, stalls; two array
shapes in CI (2x2, 4x8), more in the slow set."""

import json

import pytest
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.tile import Tile
from sparsemac.sim.runner import run_cocotb

SHAPES = {
    "2x2": dict(rows=2, cols=2, out_lanes=1, mul_pipeline=2, weight_buf_depth=1024,
                act_buf_depth=1024),
    "4x8": dict(rows=4, cols=8, out_lanes=1, mul_pipeline=1, weight_buf_depth=1024,
                act_buf_depth=512, axi_data_width=128, ring_payload_width=128,
                group_size=32, block_size=4, acc_width=24),
    "3x5": dict(rows=3, cols=5, out_lanes=1, mul_pipeline=0, weight_buf_depth=1024,
                act_buf_depth=512, axi_data_width=32, group_size=8, block_size=16),
    "1x1": dict(rows=1, cols=1, out_lanes=1, mul_pipeline=3, weight_buf_depth=1024,
                act_buf_depth=512, axi_data_width=256, ring_payload_width=256),
}


def _run(shape, cases):
    cfg = AcceleratorConfig(**SHAPES[shape])
    run_cocotb(Tile(cfg), toplevel="tile", test_module="tests.sim.cocotb_tile",
               cfg=cfg, params={"cases": cases}, tag=shape,
               cache_key=json.dumps(cfg.to_dict(), sort_keys=True))


@pytest.mark.parametrize("shape", ["2x2", "4x8"])
def test_tile_matmul(shape):
    _run(shape, 2)


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["3x5", "1x1", "2x2", "4x8"])
def test_tile_matmul_slow(shape):
    _run(shape, 6)
