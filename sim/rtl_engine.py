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

__all__ = ["run_network_rtl"]


def _run_image(cfg, cn, *, seed: int, max_cycles: int) -> dict:
    from ..hw.top.accelerator import Accelerator
    from .runner import run_cocotb

    job = {"base": cn.base, "image": bytes(cn.image).hex(), "desc_base": cn.desc_base,
           "count": cn.desc_count, "max_cycles": max_cycles,
           "outputs": [[cn.base + cl.descriptor.out, int(cl.expected.nbytes)]
                       for cl in cn.layers]}
    with tempfile.TemporaryDirectory(prefix="sparsemac-run-") as tmp:
        jpath, opath = Path(tmp) / "job.json", Path(tmp) / "out.json"
        jpath.write_text(json.dumps(job))
        stdout, sys.stdout = sys.stdout, sys.stderr  # keep --json output clean
        try:
            run_cocotb(Accelerator(cfg), toplevel="accelerator",
                       test_module="sparsemac.sim.tb.network",
                       cfg=cfg, params={"run_job": str(jpath), "run_out": str(opath)},
                       seed=seed, tag="run")
        finally:
            sys.stdout = stdout
        return json.loads(opath.read_text())


def run_network_rtl(path, cfg, *, seed=None, base=None, max_cycles: int = 2_000_000) -> dict:
    """Compile ``path`` for ``cfg``, run it on the RTL and return the report (the model
    engine's report format, ``engine: rtl``, cycles measured on the RTL).

    Raises
    ------
    sparsemac.host.NetworkError
        The network does not compile, or a layer does not fit the tile buffers of ``cfg``
        (`sparsemac.host.compiler.check_tile_buffers`: one line naming the parameter and the value).
    """
    from ..golden.descriptors import ErrorCode
    from ..host import compile_network, load_network
    from ..host.compiler import DEFAULT_BASE, check_tile_buffers
    from ..host.cycles import layer_cycles
    from ..host.model_engine import run_model
    from ..host.run import run_network

    rep = run_network(path, cfg, seed=seed, base=base)  # compiles; model cycles for reference

    cn = compile_network(load_network(path), cfg, seed=seed,
                         base=DEFAULT_BASE if base is None else base)
    check_tile_buffers(cn)  # the tiles would refuse it (BAD_SHAPE / BAD_SIZE): say which, up front
    model = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                      cfg=cfg)
    res = _run_image(cfg, cn, seed=1 if seed is None else seed, max_cycles=max_cycles)
    mism_total = 0
    for i, (cl, entry) in enumerate(zip(cn.layers, rep["layers"])):
        got = np.frombuffer(bytes.fromhex(res["outputs"][i]), dtype=cl.expected.dtype
                            if cl.expected.dtype == np.int8 else "<i4")
        exp = cl.expected.reshape(-1)
        mism = int(np.count_nonzero(got[:exp.size] != exp))
        entry["model_cycles"] = entry.get("cycles")
        entry["cycles"] = int(res["layer_cycles"][i]) if i < len(res["layer_cycles"]) else 0
        if i < len(model.layers):
            roof = layer_cycles(model.layers[i], cfg)["roofline_cycles"]
            entry["roofline_cycles"] = roof
            entry["achieved_over_roofline"] = entry["cycles"] / max(roof, 1)
        entry["mismatches"] = mism
        mism_total += mism
    code = ErrorCode(res["code"])
    rep.update({
        "engine": "rtl", "cycles": int(res["busy_cycles"]),
        "model_cycles": rep["cycles"],
        "achieved_over_roofline": res["busy_cycles"] / max(rep["roofline_cycles"], 1),
        "mismatches": mism_total, "status": code.name if res["error"] else "OK",
        "error_desc": res["index"] if res["error"] else None,
        "error": f"error code {code.name} at {res['error_addr']:#x}" if res["error"] else None,
        "cycle_model": "RTL: BUSY_CYCLES counter (total), cycles per descriptor (layers)",
    })
    return rep
