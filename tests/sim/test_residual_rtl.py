"""Random network graphs with residual adds on the accelerator RTL (Verilator, the default
preset): three random DAGs (branches, a skip from the network input, two adds each, random
formats and tables, odd ``H*W`` so rows lie between an add's inputs) in one descriptor table,
compiled with the hardware's limits (each add a matmul over its two inputs side by side,
host/add_matmul.py).  Every layer's buffer read back from the AXI memory equals the golden
operations applied in graph order by tests/host/test_residual.py (the add by
`golden.add_requant` with `golden.add_matmul_params`), and the model engine's."""

from types import SimpleNamespace

import numpy as np
from sparsemac.golden.descriptors import Opcode
from sparsemac.host import compile_network, network_from_dict
from sparsemac.host.compiler import check_tile_buffers
from sparsemac.host.model_engine import read_output, run_model
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.sim.rtl_engine import rtl_job

from ..host.test_residual import _random_residual, _reference


def test_random_residual_graphs_on_the_rtl(rng, seed):
    cfg = AcceleratorConfig.preset("default")
    nets, names = [], []
    for _ in range(3):
        d, nm = _random_residual(rng)
        d["layers"][5]["inputs"] = [str(v) for v in d["layers"][5]["inputs"]]
        nm[5] = d["layers"][5]["inputs"]
        nets.append(network_from_dict(d))
        names.append(nm)
    cn = compile_network(nets, cfg)
    check_tile_buffers(cn)
    assert sum(cl.descriptor.opcode == Opcode.MATMUL and cl.spec.is_add
               for cl in cn.layers) == 6
    res = rtl_job(cn, seed=seed)
    ctx = f"seed={seed} networks={[n.layers[0].in_shape for n in nets]}"
    assert res.status == "OK", f"{ctx}: {res.error}"
    model = run_model(cn.image, base=cn.base, desc_base=cn.desc_base,
                      desc_count=cn.desc_count, cfg=cfg)
    assert model.ok, f"{ctx}: {model.message}"
    for j, nm in enumerate(names):
        chain = cn.chain(j)
        view = SimpleNamespace(input=cn.inputs[j], input_scales=(cn.input_scales[j],),
                               layers=chain)
        want = _reference(view, nm, hardware=True)
        for cl, y in zip(chain, want, strict=True):
            i = cn.layers.index(cl)
            got = res.outputs[i].reshape(y.shape)
            np.testing.assert_array_equal(got, y, err_msg=f"{ctx} net {j} {cl.spec.name}")
            np.testing.assert_array_equal(
                read_output(model.image, cl.descriptor).reshape(y.shape), y,
                err_msg=f"{ctx} net {j} {cl.spec.name} (model engine)")
