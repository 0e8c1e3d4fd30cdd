"""cocotb module behind ``sparsemac run --engine rtl`` (see :mod:`sparsemac.sim.rtl_engine`).

Reads the config from ``SPARSEMAC_CFG`` and the job from the ``run_job`` file of
``SPARSEMAC_PARAMS`` (JSON: window base, image as hex, descriptor table, output buffers), runs
it through :class:`sim.accel_driver.AccelDriver` and writes the result (STATUS fields,
BUSY_CYCLES, cycles per descriptor, output bytes) to the ``run_out`` file; with ``r_trace``
in the parameters also the cycle of every AXI read beat (``r_beats``, bench/pool_report.py).
"""

from __future__ import annotations

import json

import cocotb
from cocotb.triggers import RisingEdge
from sparsemac.sim.accel_driver import AccelDriver, Job
from sparsemac.sim.tb.base import config_from_env, params_from_env


@cocotb.test()
async def run_job(dut):
    p = params_from_env()
    with open(p["run_job"]) as fh:
        job_d = json.load(fh)
    tb = AccelDriver(dut, config_from_env())
    await tb.reset()
    job = Job(base=job_d["base"], image=bytearray(bytes.fromhex(job_d["image"])),
              desc_base=job_d["desc_base"], count=job_d["count"])
    first: dict[int, int] = {}  # descriptor index -> first cycle it was seen
    state = {"running": True, "cycle": 0}
    r_beats: list[int] = []
    trace = bool(p.get("r_trace"))

    async def sample():
        while state["running"]:
            await RisingEdge(dut.clk)
            state["cycle"] += 1
            first.setdefault(int(dut.seq.desc_index.value), state["cycle"])
            if trace and dut.m_axi__rvalid.value and dut.m_axi__rready.value:
                r_beats.append(state["cycle"])

    cocotb.start_soon(sample())
    res = await tb.run(job, max_cycles=job_d["max_cycles"])
    end = state["cycle"]
    state["running"] = False
    # a layer lasts from its descriptor index appearing until the next one (or the interrupt)
    marks = sorted((c, i) for i, c in first.items() if i < job.count)
    per_layer = [0] * job.count
    for (c, i), nxt in zip(marks, [m[0] for m in marks[1:]] + [end]):
        per_layer[i] = nxt - c
    res["busy_cycles"] = await tb.counter("busy_cycles")
    res["layer_cycles"] = per_layer
    if trace:
        res["r_beats"] = r_beats
    res["outputs"] = [tb.ram.read(addr, n).hex() for addr, n in job_d["outputs"]]
    with open(p["run_out"], "w") as fh:
        json.dump(res, fh)
