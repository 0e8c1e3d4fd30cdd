"""Verilator + cocotb regression of the output pipeline (requant -> activation LUT)."""

import pytest
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.post.output_pipeline import OutputPipeline
from sparsemac.sim.runner import run_cocotb


def run_pipeline(lanes, acc_width, channels, segments, out_width, *, testcase=None, extra=None,
                 tag=""):
    dut = OutputPipeline(lanes=lanes, acc_width=acc_width, max_channels=channels,
                         pwl_segments=segments, pwl_out_width=out_width)
    params = {"lanes": lanes, "acc_width": acc_width, "channels": channels,
              "latency": dut.latency, "pwl_latency": dut.pwl_latency, "pwl_segments": segments,
              "out_width": out_width, **(extra or {})}
    return run_cocotb(dut, toplevel="output_pipeline",
                      test_module="sparsemac.sim.tb.output_pipeline", testcase=testcase,
                      params=params,
                      tag=tag or f"{lanes}-{acc_width}-{channels}-{segments}-{out_width}")


@pytest.mark.parametrize("lanes,acc_width,channels,segments,out_width", [
    (4, 32, 8, 32, 8),
    (1, 24, 3, 8, 16),
])
def test_output_pipeline_against_golden(lanes, acc_width, channels, segments, out_width):
    run_pipeline(lanes, acc_width, channels, segments, out_width)


def test_output_pipeline_from_config():
    cfg = AcceleratorConfig(rows=8, cols=8, out_lanes=2, acc_width=24)
    p = OutputPipeline(cfg)
    assert (p.lanes, p.acc_width, p.max_channels) == (2, 24, 8)
    assert p.latency == p._requant.latency + p._lut.latency == 10
    assert p.pwl_latency == 15 and p.pwl_segments == cfg.pwl_segments
    assert OutputPipeline(cfg, pwl=False).pwl_latency is None


@pytest.mark.parametrize("kw,exc,msg", [
    ({"lanes": 0}, ValueError, "lanes must be between 1 and 64, not 0"),
    ({"acc_width": 7}, ValueError, "acc_width must be between 8 and 64, not 7"),
    ({"max_channels": 1 << 17}, ValueError, "max_channels must be between 1 and 65536, not 131072"),
    ({"cfg": "default"}, TypeError, "cfg must be an AcceleratorConfig, not 'default'"),
    ({"pwl_segments": 48}, ValueError,
     "segments must be a power of two between 4 and 256, not 48"),
    ({"pwl_out_width": 32}, ValueError, "out_width must be 8 or 16, not 32"),
    ({"pwl": 1}, TypeError, "pwl must be a bool, not 1"),
])
def test_output_pipeline_rejects_impossible_parameters(kw, exc, msg):
    kw = dict(kw)
    cfg = kw.pop("cfg", None)
    with pytest.raises(exc, match=f"^{msg}$"):
        OutputPipeline(cfg, **kw)
