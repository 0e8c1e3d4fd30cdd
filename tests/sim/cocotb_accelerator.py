"""cocotb tests of the accelerator top (hw/accelerator.py) through sim/accel_driver.py.

Environment: ``SPARSEMAC_SEED``, ``SPARSEMAC_CFG`` (AcceleratorConfig as JSON),
``SPARSEMAC_NETS`` (random networks per run).
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from golden.descriptors import ErrorCode, validate_descriptor
from hw.config import AcceleratorConfig
from sim.accel_driver import AccelDriver, build_job, random_layer

SEED = int(os.environ.get("SPARSEMAC_SEED", "1"))
CFG = AcceleratorConfig.from_dict(json.loads(os.environ["SPARSEMAC_CFG"]))
NETS = int(os.environ.get("SPARSEMAC_NETS", "2"))
E = ErrorCode


async def _tb(dut, stall=0.0, salt=0):
    tb = AccelDriver(dut, CFG, stall=stall, seed=SEED + salt)
    await tb.reset()
    return tb


def _rng(salt):
    return np.random.default_rng([SEED, salt])


def _check_ok(tb, job, res, what):
    assert res["done"] == 1 and res["error"] == 0, (
        f"{what}: expected done without error, got {res} (seed {SEED})")
    errs = tb.mismatches(job, SEED)
    assert not errs, f"{what}: " + "; ".join(errs)


@cocotb.test()
async def matmul_dense_and_nm(dut):
    """(a) one matmul per format family, descriptors from memory, interrupt, bit-exact."""
    tb = await _tb(dut)
    rng = _rng(1)
    for fmt in ("dense", "nm"):
        for requant in (True, False):
            job = build_job(rng, CFG, [random_layer(rng, CFG, op="matmul", fmt=fmt,
                                                    requant=requant)])
            res = await tb.run(job)
            _check_ok(tb, job, res, f"matmul {fmt} requant={requant}")
            assert res["irq_status"] & 1, f"IRQ_STATUS.done not set: {res}"


@cocotb.test()
async def random_networks(dut):
    """(b, c) random multi-layer networks: every format, matmul + conv2d, requant, LUTs."""
    tb = await _tb(dut, salt=2)
    rng = _rng(2)
    fmts = list(CFG.formats)
    for net in range(NETS):
        layers = []
        for _ in range(int(rng.integers(2, 5))):
            op = str(rng.choice(["matmul", "conv2d"]))
            requant = bool(rng.random() < 0.8)
            lut = str(rng.choice(["relu", "tanh", "sigmoid", "gelu"])) if rng.random() < 0.6 \
                else None
            layers.append(random_layer(rng, CFG, op=op, fmt=str(rng.choice(fmts)),
                                       requant=requant, lut=lut if CFG.lut_enabled else None))
        job = build_job(rng, CFG, layers)
        res = await tb.run(job)
        _check_ok(tb, job, res, f"network {net} {[(L['op'], L['fmt']) for L in layers]}")


@cocotb.test()
async def stalls_on_all_channels(dut):
    """Random pauses on all five AXI channels (and the register port): still bit-exact."""
    tb = await _tb(dut, stall=0.4, salt=3)
    rng = _rng(3)
    layers = [random_layer(rng, CFG, op=op, fmt=f, lut="relu" if CFG.lut_enabled else None)
              for op, f in (("matmul", "bitmap"), ("conv2d", "nm"), ("matmul", "block"))
              if f in CFG.formats]
    job = build_job(rng, CFG, layers)
    res = await tb.run(job, max_cycles=400_000)
    _check_ok(tb, job, res, "stalled network")


@cocotb.test()
async def performance_counters(dut):
    """(d) counters: cycles, busy, MAC-active, bytes read / written against the job."""
    tb = await _tb(dut, salt=4)
    rng = _rng(4)
    job = build_job(rng, CFG, [random_layer(rng, CFG, op="matmul", fmt="dense")])
    await tb.write("CONTROL", 4)     # perf_clear
    res = await tb.run(job)
    _check_ok(tb, job, res, "counters job")
    c = {n: await tb.counter(n) for n in ("cycles", "busy_cycles", "mac_active_cycles",
                                          "bytes_read", "bytes_written", "stall_desc_cycles")}
    exp_written = sum(len(e) for _, e in job.outputs)
    assert c["bytes_written"] == exp_written, f"bytes_written {c} vs {exp_written} (seed {SEED})"
    L = job.layers[0]
    d = L["desc"]
    assert c["bytes_read"] >= 64 + d.k * d.n, f"bytes_read too small: {c} (seed {SEED})"
    assert 0 < c["mac_active_cycles"] <= c["busy_cycles"] <= res["cycles"] + 10 < c["cycles"], (
        f"counter relations broken: {c}, run {res['cycles']} cycles (seed {SEED})")
    assert c["stall_desc_cycles"] > 0, f"descriptor fetch not counted: {c}"
