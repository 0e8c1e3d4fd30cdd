"""``sparsemac run --engine rtl``: a compiled network on the accelerator top on Verilator.

The network is compiled by :mod:`sparsemac.host.compiler` (the same image the model engine runs),
the image is loaded into cocotbext-axi's ``AxiRam`` by
:class:`sparsemac.sim.accel_driver.AccelDriver`,
the registers are programmed over AXI4-Lite, the run ends on the interrupt, and every output
buffer is read back and compared with the compiler's golden expectations.  Per-layer cycles are
the cycles spent on each descriptor (the sequencer's ``desc_index``, sampled every clock);
the total is the ``BUSY_CYCLES`` performance counter.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["run_network_rtl", "run_rtl", "rtl_job"]


def _run_image(cfg, cn, *, seed: int, max_cycles: int) -> dict:
    from ..hw.top.accelerator import Accelerator
    from .runner import cached_verilog, run_cocotb

    job = {"base": cn.base, "image": bytes(cn.image).hex(), "desc_base": cn.desc_base,
           "count": cn.desc_count, "max_cycles": max_cycles,
           "outputs": [[cn.base + cl.descriptor.out, int(cl.expected.nbytes)]
                       for cl in cn.layers]}
    with tempfile.TemporaryDirectory(prefix="sparsemac-run-") as tmp:
        jpath, opath = Path(tmp) / "job.json", Path(tmp) / "out.json"
        jpath.write_text(json.dumps(job))
        stdout, sys.stdout = sys.stdout, sys.stderr  # keep --json output clean
        try:
            verilog = cached_verilog(lambda: Accelerator(cfg), "accelerator",
                                     json.dumps(cfg.to_dict(), sort_keys=True))
            run_cocotb(None, toplevel="accelerator", test_module="sparsemac.sim.tb.network",
                       cfg=cfg, params={"run_job": str(jpath), "run_out": str(opath)},
                       seed=seed, tag="run", verilog=verilog)
        finally:
            sys.stdout = stdout
        return json.loads(opath.read_text())


def rtl_job(cn, *, seed: int = 1, max_cycles: int = 2_000_000):
    """Run one compiled job on the accelerator top (Verilator) and return a
    `sparsemac.host.run.JobResult`: every output buffer read back from the AXI memory, cycles
    per descriptor and ``BUSY_CYCLES``; the model engine's cycles and roofline of the same
    descriptors come along for the comparison."""
    from ..golden.descriptors import ErrorCode
    from ..host.run import JobResult, model_job

    model = model_job(cn)
    res = _run_image(cn.config, cn, seed=seed, max_cycles=max_cycles)
    outs = []
    for i, cl in enumerate(cn.layers):
        dt = np.int8 if cl.expected.dtype == np.int8 else np.dtype("<i4")
        got = np.frombuffer(bytes.fromhex(res["outputs"][i]), dtype=dt)[:cl.expected.size]
        outs.append(got.astype(np.int64).reshape(cl.expected.shape))
    code = ErrorCode(res["code"])
    lc = [int(c) for c in res["layer_cycles"]]
    return JobResult(outputs=outs, layer_cycles=lc + [None] * (len(cn.layers) - len(lc)),
                     cycles=int(res["busy_cycles"]), roofline=model.roofline,
                     model_cycles=model.model_cycles,
                     status=code.name if res["error"] else "OK",
                     error_desc=res["index"] if res["error"] else None,
                     error=f"error code {code.name} at {res['error_addr']:#x}"
                     if res["error"] else None)


def run_rtl(net, cfg, *, seed=None, base=None, max_cycles: int = 2_000_000, **kw):
    """`sparsemac.host.run.run` on the RTL: every job compiled, checked against the tile
    buffers of ``cfg`` (`check_tile_buffers`: one line naming the parameter) and run on the
    accelerator top."""
    from ..host.compiler import check_tile_buffers
    from ..host.run import run

    rr = run(net, cfg, seed=seed, base=base, engine_name="rtl", check_job=check_tile_buffers,
             engine=lambda cn: rtl_job(cn, seed=1 if seed is None else seed,
                                       max_cycles=max_cycles), **kw)
    rr.report["cycle_model"] = ("RTL: BUSY_CYCLES counter (total), cycles per descriptor "
                                "(layers)")
    return rr


def run_network_rtl(path, cfg, *, seed=None, base=None, max_cycles: int = 2_000_000) -> dict:
    """Compile ``path`` for ``cfg``, run it on the RTL and return the report (the model
    engine's report format, ``engine: rtl``, cycles measured on the RTL, ``model_cycles``
    next to them).

    Raises
    ------
    sparsemac.host.NetworkError
        The network does not compile, or a layer does not fit the tile buffers of ``cfg``
        (`sparsemac.host.compiler.check_tile_buffers`: one line naming the parameter and the value).
    """
    return run_rtl(path, cfg, seed=seed, base=base, max_cycles=max_cycles).report
