"""One random residual DAG compiled with ``reuse_buffers`` (activation buffers share bytes
once their last reader ran, docs/host.md section 3) on the accelerator RTL (Verilator, the
default preset): the run ends OK, every buffer no later layer overwrote (the network's output
among them) read back from the AXI memory equals the golden operations in graph order
(tests/host/test_residual.py), and the plan passes the independent checks of
tests/host/test_memory_reuse.py.  The overwritten intermediates cannot be read back after the
table; the model engine checks them as written there."""

import numpy as np
from sparsemac.host import compile_network, network_from_dict
from sparsemac.host.compiler import check_tile_buffers
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.sim.rtl_engine import rtl_job

from ..host.test_memory_reuse import check_plan, check_run
from ..host.test_residual import _random_residual, _reference


def test_residual_graph_with_buffer_reuse_on_the_rtl(rng, seed):
    cfg = AcceleratorConfig.preset("default")
    d, names = _random_residual(rng)
    d["layers"][5]["inputs"] = [str(v) for v in d["layers"][5]["inputs"]]
    names[5] = d["layers"][5]["inputs"]
    cn = compile_network(network_from_dict(d), cfg, reuse_buffers=True, out_fill="random")
    check_tile_buffers(cn)
    check_plan(cn)
    check_run(cn, f"seed={seed}")
    kept = [cl for cl in cn.layers if cl.overwritten_by is None]
    assert len(kept) < len(cn.layers), f"seed={seed}: nothing reused"
    res = rtl_job(cn, seed=seed)
    assert res.status == "OK", f"seed={seed}: {res.error}"
    want = _reference(cn, names, hardware=True)
    for i, (cl, y) in enumerate(zip(cn.layers, want, strict=True)):
        if cl.overwritten_by is None:
            np.testing.assert_array_equal(res.outputs[i].reshape(y.shape), y,
                                          err_msg=f"seed={seed} {cl.spec.name}")
